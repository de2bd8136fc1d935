"""The apps the benchmarks measure: one trivial view mounted bare, under ``@rs.require`` and
under Authlib's ``ResourceProtector`` (:func:`flask_app`), and for gunicorn (``apps:create()``)
the same behind ``BearerMiddleware`` too.

For gunicorn the JWK Set to trust comes from the ``LOAD_JWKS`` environment variable (the
benchmark holds the private keys and mints the tokens). Tokens are checked against the real
clock: this is a benchmark, minted seconds before it runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from flask import Flask
from joserfc.jwk import KeySet

from policy import Actors, Requirement, Roles
from resource_server.dpop import DPoPVerifier
from resource_server.flask import ResourceServer
from resource_server.tokens import IntrospectionVerifier, JWTVerifier
from resource_server.wsgi import BearerMiddleware

ISSUER = "https://as.load.test"
AUDIENCE = "https://api.load.test"
ROLES = Roles({"admin": ["project:read", "project:write"]})
SCOPES = {"GET": "project:read"}
#: The same read, asking for a multi-factor sign-in within the hour (RFC 9470): the benchmark's
#: tokens say the person authenticated with "mfa" when they were minted.
STEP_UP = {"GET": Requirement("project:read", acr=["mfa"], max_age=3600)}
#: An agent acting for the person (RFC 8693 ``act``) may read, whatever the person may do.
ACTORS = Actors({"agent:reporting": "project:read"})
#: The ``act`` claim of the benchmark's delegated tokens: one actor.
ACT = {"sub": "agent:reporting"}


def membership(subject: str, org: str | None) -> str | None:
    return "admin" if (subject, org) == ("user-1", "acme") else None


def fresh_tokens(signer: Any, count: int, **claims: Any) -> Iterator[str]:
    """Distinct tokens, minted before timing starts (each has its own jti)."""
    return iter([signer.token(now=int(time.time()), **claims) for _ in range(count)])


def same_token(signer: Any, **claims: Any) -> Iterator[str]:
    token = signer.token(now=int(time.time()), **claims)  # the verifiers check it against the real clock
    while True:
        yield token


def view() -> Callable[[str], dict[str, Any]]:
    """The trivial view, a new function each call: the protected route gets its own, since the
    extension refuses a route that serves the very function ``@rs.require`` wrapped."""

    def projects(org: str) -> dict[str, Any]:
        return {"org": org, "projects": []}

    return projects


def flask_app(jwks: dict[str, Any], *, issuer: str = ISSUER, audience: str = AUDIENCE) -> Flask:
    """The view at ``/bare/orgs/<org>/projects``, ``/rs/...`` (``@rs.require``, with an actor
    ceiling for delegated tokens), ``/rs-step-up/...`` (the same read asking for a recent
    multi-factor sign-in) and ``/authlib/...`` (Authlib's ``ResourceProtector`` with its RFC 9068
    validator, keys imported once so Authlib is not charged for that)."""
    app = Flask(__name__)
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=issuer, audience=audience, jwks=jwks),
        roles=ROLES,
        membership=membership,
        actors=ACTORS,
    )
    keys = KeySet.import_key_set(jwks)

    class Validator(JWTBearerTokenValidator):
        def get_jwks(self) -> KeySet:
            return keys

    authlib = ResourceProtector()
    authlib.register_token_validator(Validator(issuer=issuer, resource_server=audience))

    def projects(org: str) -> dict[str, Any]:
        return {"org": org, "projects": []}

    rule = "/orgs/<org>/projects"
    app.add_url_rule("/bare" + rule, "bare", projects)
    app.add_url_rule("/rs" + rule, "rs", rs.require(SCOPES)(view()))
    app.add_url_rule("/rs-step-up" + rule, "rs_step_up", rs.require(STEP_UP)(view()))
    app.add_url_rule("/authlib" + rule, "authlib", authlib("project:read")(projects))
    app.add_url_rule("/mw" + rule, "mw", projects)  # reached through a BearerMiddleware only
    return app


def dpop_flask_app(
    jwks: dict[str, Any], *, issuer: str = ISSUER, audience: str = AUDIENCE, prefix: str = ""
) -> Flask:
    """The same view bare (``<prefix>/bare/...``) and under ``@rs.require`` with DPoP accepted
    (``<prefix>/rs/...``, RFC 9449: a bound token and a proof per request, replay cache in
    memory)."""
    app = Flask(__name__)
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=issuer, audience=audience, jwks=jwks),
        roles=ROLES,
        membership=membership,
        # The benchmark mints its proofs before timing starts and runs for minutes on a busy
        # machine: proofs stay acceptable for the whole run (the defaults refuse them after 60 s,
        # and more than 10,000 from one key within that window).
        dpop=DPoPVerifier(max_age=3600, max_proofs_per_key=1_000_000),
    )

    def projects(org: str) -> dict[str, Any]:
        return {"org": org, "projects": []}

    rule = "/orgs/<org>/projects"
    app.add_url_rule(prefix + "/bare" + rule, "bare", projects)
    app.add_url_rule(prefix + "/rs" + rule, "rs", rs.require(SCOPES)(view()))
    return app


class IntrospectionEndpoint:
    """An RFC 7662 endpoint on loopback that finds every token active for ``user-1`` in ``acme``:
    ``introspection_endpoint.py`` in a process of its own, answering in tens of microseconds
    (HTTP/1.1 keep-alive, one precomputed answer), so that our verifier's work is what shows
    over one bare POST to it, not the endpoint's (Python's ``http.server`` took most of the
    POST's time)."""

    def __init__(self, audience: str = AUDIENCE) -> None:
        script = Path(__file__).with_name("introspection_endpoint.py")
        self._process = subprocess.Popen(
            [sys.executable, str(script), audience], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self._process.stdout is not None
        port = self._process.stdout.readline().strip()
        if not port.isdigit():
            self.close()
            raise RuntimeError("the introspection endpoint did not start")
        self.url = f"http://127.0.0.1:{port}/introspect"

    def close(self) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()  # the endpoint exits when its stdin closes
        self._process.wait(timeout=30)


def introspection_flask_app(endpoint: str, *, audience: str = AUDIENCE) -> Flask:
    """The same view bare (``/bare/...``) and under ``@rs.require`` with opaque tokens checked
    through RFC 7662 introspection (``/rs/...``)."""
    app = Flask(__name__)
    verifier = IntrospectionVerifier(
        endpoint=endpoint, client_id="api", client_secret="s" * 32, audience=audience
    )
    rs = ResourceServer(app, verifier=verifier, roles=ROLES, membership=membership)

    def projects(org: str) -> dict[str, Any]:
        return {"org": org, "projects": []}

    rule = "/orgs/<org>/projects"
    app.add_url_rule("/bare" + rule, "bare", projects)
    app.add_url_rule("/rs" + rule, "rs", rs.require(SCOPES)(view()))
    return app


def es256_signature_check(public_key: Any) -> Callable[[str], None]:
    """The one thing no library verifying ES256 tokens can skip: the ECDSA P-256 check of a
    token's signature by ``cryptography`` (R‖S made DER), with no claim, cache or policy around
    it; a bad signature raises."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    from resource_server.tokens.jws import b64decode

    ecdsa = ec.ECDSA(hashes.SHA256())

    def check(token: str) -> None:
        signing_input, _, signature = token.rpartition(".")
        raw = b64decode(signature)
        der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
        public_key.verify(der, signing_input.encode("ascii"), ecdsa)

    return check


def floor_view(jwks: dict[str, Any]) -> Callable[[str], dict[str, Any]]:
    """The trivial view after :func:`es256_signature_check` of the request's own token (a
    signature that fails is a 500, which the benchmark counts as a failure). Served under a real
    server, its throughput over the bare view's is the most any library verifying a new ES256
    token every request could reach there."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from flask import request

    from resource_server.tokens.jws import b64decode

    (jwk,) = [key for key in jwks["keys"] if key.get("crv") == "P-256"]
    numbers = ec.EllipticCurvePublicNumbers(
        int.from_bytes(b64decode(jwk["x"]), "big"), int.from_bytes(b64decode(jwk["y"]), "big"), ec.SECP256R1()
    )
    check = es256_signature_check(numbers.public_key())

    def projects(org: str) -> dict[str, Any]:
        check(request.headers["Authorization"][len("Bearer ") :])
        return {"org": org, "projects": []}

    return projects


def create() -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    """For gunicorn: the Flask app, with ``/mw/...`` behind ``BearerMiddleware``,
    ``/dpop/rs/...`` under ``@rs.require`` with DPoP accepted (:func:`dpop_flask_app`) and
    ``/floor/...`` checking each token's signature and nothing else (:func:`floor_view`)."""
    jwks = json.loads(os.environ["LOAD_JWKS"])
    app = flask_app(jwks)
    app.add_url_rule("/floor/orgs/<org>/projects", "floor", floor_view(jwks))
    dpop_wsgi = dpop_flask_app(jwks, prefix="/dpop").wsgi_app
    protected = BearerMiddleware(
        app.wsgi_app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks),
        roles=ROLES,
        membership=membership,
        routes={"/mw/orgs/<org>/projects": SCOPES},
    )
    flask_wsgi = app.wsgi_app

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/mw/"):
            return protected(environ, start_response)
        if environ.get("PATH_INFO", "").startswith("/dpop/"):
            return dpop_wsgi(environ, start_response)
        return flask_wsgi(environ, start_response)

    return dispatch
