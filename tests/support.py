"""Shared test helpers: real keys, real signed tokens, real loopback HTTP servers."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://as.test"
AUDIENCE = "https://api.test"
#: The instant the tests live at (2030-03-17T17:46:40Z) unless they choose another: no test reads
#: the wall clock, so the suite passes on any day. Give a verifier ``clock=FakeClock()`` to agree.
NOW = 1_900_000_000

#: Token ids: unique in a run, and of one fixed width, so that a payload's length (and so its
#: base64 alignment) never depends on uptime or on how many tokens earlier tests minted.
_JTI_SERIAL = itertools.count(1)


def next_jti(prefix: str = "jti-") -> str:
    return f"{prefix}{next(_JTI_SERIAL):012d}"


@dataclass
class Signer:
    """A private key with its public JWK, minting RFC 9068 access tokens."""

    kid: str
    algorithm: str
    private_key: Any
    jwk: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        public = self.private_key.public_key()
        to_jwk = {"ES256": ECAlgorithm, "RS256": RSAAlgorithm, "EdDSA": OKPAlgorithm}[self.algorithm].to_jwk
        self.jwk = {**json.loads(to_jwk(public)), "kid": self.kid, "use": "sig", "alg": self.algorithm}

    def claims(self, now: int | None = None, **overrides: Any) -> dict[str, Any]:
        now = NOW if now is None else now
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "user-1",
            "client_id": "client-1",
            "iat": now,
            "exp": now + 600,
            "scope": "project:read",
            "org_id": "acme",
            "jti": next_jti(),
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not _DROP}

    def token(
        self, *, headers: dict[str, Any] | None = None, now: int | None = None, **overrides: Any
    ) -> str:
        """A signed compact JWS. Built here rather than with ``jwt.encode``, which (rightly)
        refuses to produce some of the malformed tokens the tests need."""
        header = {"alg": self.algorithm, "typ": "at+jwt", "kid": self.kid, **(headers or {})}
        header = {k: v for k, v in header.items() if v is not _DROP}
        return self.sign(json.dumps(header).encode(), json.dumps(self.claims(now, **overrides)).encode())

    def sign(self, header: bytes, payload: bytes) -> str:
        """Sign raw header and payload bytes (duplicate members and bad JSON survive)."""
        signing_input = f"{b64url(header)}.{b64url(payload)}"
        signature = jwt.get_algorithm_by_name(self.algorithm).sign(signing_input.encode(), self.private_key)
        return f"{signing_input}.{b64url(signature)}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_DROP = object()
#: Pass as a claim or header value to leave that member out.
DROP = _DROP


def es256(kid: str = "es-1") -> Signer:
    return Signer(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def rs256(kid: str = "rs-1") -> Signer:
    return Signer(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


def eddsa(kid: str = "ed-1") -> Signer:
    return Signer(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def jwks(*signers: Signer) -> dict[str, Any]:
    return {"keys": [s.jwk for s in signers]}


@dataclass
class ProofSigner:
    """A client's DPoP key (RFC 9449 §4.2) minting proofs, every member overridable for the
    hostile-proof tests (``DROP`` leaves one out)."""

    algorithm: str
    private_key: Any
    jwk: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        public = self.private_key.public_key()
        to_jwk = {"ES256": ECAlgorithm, "RS256": RSAAlgorithm, "PS256": RSAAlgorithm, "EdDSA": OKPAlgorithm}
        self.jwk = json.loads(to_jwk[self.algorithm].to_jwk(public))

    @property
    def jkt(self) -> str:
        from resource_server.dpop import jwk_thumbprint

        return jwk_thumbprint(self.jwk)

    def proof(
        self,
        method: str = "GET",
        url: str = "https://api.test/orgs/acme/projects",
        *,
        access_token: str | None = None,
        now: int | None = None,
        headers: dict[str, Any] | None = None,
        **claims: Any,
    ) -> str:
        header = {"typ": "dpop+jwt", "alg": self.algorithm, "jwk": self.jwk, **(headers or {})}
        body: dict[str, Any] = {
            "jti": next_jti("dpop-"),
            "htm": method,
            "htu": url,
            "iat": NOW if now is None else now,
        }
        if access_token is not None:
            body["ath"] = b64url(hashlib.sha256(access_token.encode()).digest())
        body.update(claims)
        header = {k: v for k, v in header.items() if v is not _DROP}
        body = {k: v for k, v in body.items() if v is not _DROP}
        signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(body).encode())}"
        signature = jwt.get_algorithm_by_name(self.algorithm).sign(signing_input.encode(), self.private_key)
        return f"{signing_input}.{b64url(signature)}"


def dpop_key(algorithm: str = "ES256") -> ProofSigner:
    if algorithm == "ES256":
        return ProofSigner(algorithm, ec.generate_private_key(ec.SECP256R1()))
    if algorithm == "EdDSA":
        return ProofSigner(algorithm, ed25519.Ed25519PrivateKey.generate())
    return ProofSigner(algorithm, rsa.generate_private_key(public_exponent=65537, key_size=2048))


class FakeClock:
    """An injectable Unix-time clock, at :data:`NOW` unless told; tests advance it instead of sleeping."""

    def __init__(self, now: float | None = None) -> None:
        self.now = float(NOW if now is None else now)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[None]:
    """``server`` answering in a thread for the block, then shut down and closed."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


class JWKSServer:
    """A real HTTP server on 127.0.0.1 serving a JWK Set that tests can change, fail, or count."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document: dict[str, Any] | None = document
        self.status = 200
        self.requests = 0
        self.body_override: bytes | None = None
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                body = owner.body_override or json.dumps(owner.document).encode()
                self.send_response(owner.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/.well-known/jwks.json"

    @contextmanager
    def running(self) -> Iterator[JWKSServer]:
        with serving(self._server):
            yield self


class SlowJWKS:
    """A JWK Set on loopback that answers only when released (or after ``delay`` seconds)."""

    def __init__(self, document: dict[str, Any], delay: float) -> None:
        self.asked = threading.Event()
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.asked.set()
                owner.release.wait(delay)
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}/jwks"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def serve_wsgi(app: Callable[..., Any]) -> Iterator[str]:
    """Run a WSGI app on a real loopback port; yields its base URL."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def gunicorn(
    spec: str, *, env: dict[str, str] | None = None, timeout: float = 20.0
) -> Iterator[tuple[str, int]]:
    """``gunicorn -w 1`` serving ``spec`` (``module:callable`` or ``module:factory(...)``,
    imported from the repository's root) on a port the kernel picks; yields (host, port) once its
    worker boots. ``env``: the server's environment (this process's by default)."""
    root = str(Path(__file__).resolve().parents[1])
    command = [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers", "1"]
    command += ["--no-control-socket", "--chdir", root, spec]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        port = None
        assert process.stderr is not None
        for line in process.stderr:
            if found := re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line):
                port = int(found.group(1))
            if "Booting worker" in line:
                break
        assert port is not None, "gunicorn did not start"
        threading.Thread(target=process.stderr.read, daemon=True).start()  # never a full pipe
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(timeout=timeout)
