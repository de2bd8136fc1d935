"""Introspection answers (RFC 7662) an attacker or a broken authorization server could send,
from a real endpoint on 127.0.0.1: an ``aud`` that extends or prefixes this API's identifier, a
compressed answer, and an answer far larger than any real one, streamed. Each is checked where a
caller sees it: the verifier's exception, and the WSGI middleware's ``401`` or ``503``. JWT
access tokens get the same audience cases (RFC 9068 §4)."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
from werkzeug.test import Client

from policy import Roles
from resource_server import JWTVerifier
from resource_server.tokens import InvalidToken, VerificationUnavailable
from resource_server.tokens.introspection import IntrospectionVerifier
from resource_server.wsgi import BearerMiddleware
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, es256, jwks, next_jti

CLIENT_ID = "resource-server"
CLIENT_SECRET = "introspection-secret-0123456789abcdef"
ROLES = Roles({"member": ["project:read"]})
MiB = 1024 * 1024

Respond = Callable[[BaseHTTPRequestHandler, str], None]


class AuthorizationServer:
    """An introspection endpoint on 127.0.0.1 answering each request with ``respond(handler,
    token)``; ``finished`` is set when an answer has been written (or the client hung up)."""

    def __init__(self, respond: Respond) -> None:
        self.respond = respond
        self.finished = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode("ascii"))
                try:
                    owner.respond(self, form["token"][0])
                finally:
                    owner.finished.set()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}/introspect"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def endpoint() -> Iterator[AuthorizationServer]:
    server = AuthorizationServer(lambda handler, token: send(handler, {"active": False}))
    yield server
    server.close()


def active(**overrides: Any) -> dict[str, Any]:
    """An RFC 7662 §2.2 answer for an active access token of user-1 in acme."""
    return {
        "active": True,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "scope": "project:read",
        "org_id": "acme",
        "token_type": "Bearer",
        "iat": NOW - 10,
        "exp": NOW + 600,
        **overrides,
    }


def send(handler: BaseHTTPRequestHandler, answer: Any, encoding: str | None = None) -> None:
    body = json.dumps(answer).encode()
    if encoding == "gzip":
        body = gzip.compress(body)
    elif encoding == "deflate":
        body = zlib.compress(body)
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    if encoding is not None:
        handler.send_header("Content-Encoding", encoding)
    handler.end_headers()
    handler.wfile.write(body)


def verifier_of(server: AuthorizationServer, **options: Any) -> IntrospectionVerifier:
    settings: dict[str, Any] = {
        "endpoint": server.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "audience": AUDIENCE,
        "issuer": ISSUER,
        "clock": FakeClock(),
        "timeout": 5.0,
    }
    return IntrospectionVerifier(**{**settings, **options})


def api(verifier: Any) -> Client:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"reached": true}']

    return Client(
        BearerMiddleware(
            app,
            verifier=verifier,
            roles=ROLES,
            membership=lambda subject, org: "member" if (subject, org) == ("user-1", "acme") else None,
            routes={"/orgs/<org>/projects": {"GET": "project:read"}},
        )
    )


def opaque() -> str:
    return f"op-{next_jti()}"


# -- aud names this API exactly, never by substring or prefix (RFC 7519 §4.1.3, RFC 9068 §4) ------

NOT_OURS = [
    f"{AUDIENCE}.evil.example",  # ours is a substring of it
    f"{AUDIENCE}/",
    f"{AUDIENCE}:443",
    f"{AUDIENCE}https://other.test",
    f"x{AUDIENCE}",
    f"{AUDIENCE} https://other.test",
    AUDIENCE[:-1],  # a prefix of ours
    "https://api",
    "",
    [f"{AUDIENCE}.evil.example"],
    ["https://api"],
    [f"{AUDIENCE}.evil.example", "https://other.test"],
    [f"{AUDIENCE} https://other.test"],
]
OURS = [AUDIENCE, [AUDIENCE], ["https://other.test", AUDIENCE]]


@pytest.mark.parametrize("aud", NOT_OURS, ids=repr)
def test_an_introspected_audience_that_extends_or_prefixes_ours_is_refused(
    aud: Any, endpoint: AuthorizationServer
) -> None:
    endpoint.respond = lambda handler, token: send(handler, active(aud=aud))
    with pytest.raises(InvalidToken, match="audience"):
        verifier_of(endpoint).verify(opaque())
    response = api(verifier_of(endpoint)).get(
        "/orgs/acme/projects", headers={"Authorization": f"Bearer {opaque()}"}
    )
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_token"


@pytest.mark.parametrize("aud", OURS, ids=repr)
def test_an_introspected_audience_naming_us_is_accepted(aud: Any, endpoint: AuthorizationServer) -> None:
    endpoint.respond = lambda handler, token: send(handler, active(aud=aud))
    assert verifier_of(endpoint).verify(opaque()).subject == "user-1"


@pytest.mark.parametrize("configured", [AUDIENCE, [AUDIENCE, "https://second.test"]], ids=["one", "several"])
def test_a_jwt_audience_that_extends_or_prefixes_ours_is_refused(configured: Any) -> None:
    signer = es256("aud-1")
    verifier = JWTVerifier(issuer=ISSUER, audience=configured, jwks=jwks(signer), clock=FakeClock())
    for aud in NOT_OURS:
        with pytest.raises(InvalidToken, match="audience"):
            verifier.verify(signer.token(aud=aud))
    for aud in OURS:
        assert verifier.verify(signer.token(aud=aud)).subject == "user-1"


# -- a compressed answer is not decoded: a small body can inflate to gigabytes ---------------------


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_a_compressed_answer_is_unavailable_not_decoded(encoding: str, endpoint: AuthorizationServer) -> None:
    """RFC 7662 §2.2 answers are JSON; the client asks for no encoding, so a compressed answer is
    an answer it cannot read: 503, never inflated (an inflated answer could be a decompression
    bomb far past the size cap, which is counted on the bytes received)."""
    endpoint.respond = lambda handler, token: send(handler, active(), encoding)
    with pytest.raises(VerificationUnavailable):
        verifier_of(endpoint).verify(opaque())
    response = api(verifier_of(endpoint)).get(
        "/orgs/acme/projects", headers={"Authorization": f"Bearer {opaque()}"}
    )
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert response.get_json()["error"] == "temporarily_unavailable"


# -- an oversized answer is cut off after the cap, not read whole -----------------------------------

HUGE = 64 * MiB
CHUNK = b" " * (256 * 1024)  # built once: the server allocates nothing while it streams


class Streamer:
    """Answers 200 with a body of ``HUGE`` bytes, declared (``Content-Length``) or chunked,
    written until done or the client hangs up; counts the bytes the socket took."""

    def __init__(self, chunked: bool) -> None:
        self.chunked = chunked
        self.sent = 0

    def __call__(self, handler: BaseHTTPRequestHandler, token: str) -> None:
        handler.close_connection = True
        # A small send buffer: what the client has not read waits here, not in a large kernel queue.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        if self.chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        else:
            handler.send_header("Content-Length", str(HUGE))
        handler.end_headers()
        frame = b"%x\r\n" % len(CHUNK) + CHUNK + b"\r\n" if self.chunked else CHUNK
        try:
            while self.sent < HUGE:
                handler.wfile.write(frame)
                self.sent += len(CHUNK)
            if self.chunked:
                handler.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client hung up, as it should
            pass


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_answer_is_cut_off_early(chunked: bool, endpoint: AuthorizationServer) -> None:
    """A 64 MiB answer: 503, after reading just past the 64 KiB cap. Read whole and then
    measured, it would be 503 too, but only after holding all 64 MiB in memory: the peak of
    memory traced during ``verify`` and the bytes the server got rid of tell them apart (the
    kernel's socket buffers hold a few MiB at most)."""
    streamer = Streamer(chunked)
    endpoint.respond = streamer
    verifier = verifier_of(endpoint, timeout=20.0)
    tracing = tracemalloc.is_tracing()  # already on (PYTHONTRACEMALLOC): left on
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        with pytest.raises(VerificationUnavailable, match="larger than"):
            verifier.verify(opaque())
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        if not tracing:
            tracemalloc.stop()
    assert endpoint.finished.wait(20), "the server is still writing"
    assert peak < 8 * MiB, f"{peak / MiB:.1f} MiB held while reading the answer"
    assert streamer.sent < 16 * MiB, f"{streamer.sent / MiB:.1f} MiB of {HUGE / MiB:.0f} MiB taken"
