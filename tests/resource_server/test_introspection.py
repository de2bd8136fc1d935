"""IntrospectionVerifier (RFC 7662) against a real introspection endpoint on 127.0.0.1.

The endpoint below checks the resource server's authentication (HTTP Basic, client credentials in
the form, or a bearer token, RFC 7662 §2.1) and the request's form, counts calls and connections, and can be switched per test to misbehave: slow, trickling, garbage, huge,
duplicate members, any status. Time for token validity comes from a FakeClock; only the bounds on
how long a misbehaving server can hold a request are measured, with generous margins.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus, unquote_plus

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask, jsonify
from werkzeug.test import Client

from policy import Roles, parse_challenges
from resource_server.flask import ResourceServer, current_access, current_token
from resource_server.tokens import InvalidToken, TokenVerifier, VerificationUnavailable, VerifiedToken
from resource_server.tokens.introspection import MAX_RESPONSE_BYTES, BearerAuth, IntrospectionVerifier
from resource_server.wsgi import TOKEN_KEY, BearerMiddleware
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, next_jti

CLIENT_ID = "resource-server"
CLIENT_SECRET = "introspection-secret-0123456789abcdef"
#: Tokens minted in the current test (access tokens, and bearer tokens the resource server
#: authenticates with); no log line may contain one.
MINTED: list[str] = []


def opaque() -> str:
    """A fresh opaque access token (RFC 6750 b64token characters, as real servers mint)."""
    token = f"op.{next_jti()}~Zz+/9-_="
    MINTED.append(token)
    return token


def active(**overrides: Any) -> dict[str, Any]:
    """An RFC 7662 §2.2 answer for an active access token at the tests' instant."""
    answer: dict[str, Any] = {
        "active": True,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-1",
        "client_id": "client-1",
        "token_type": "Bearer",
        "scope": "project:read",
        "org_id": "acme",
        "iat": NOW - 10,
        "exp": NOW + 600,
    }
    answer.update(overrides)
    return {k: v for k, v in answer.items() if v is not DROP}


DROP = object()


class _Listener(ThreadingHTTPServer):
    # socketserver's backlog is 5: more clients connecting at once than that are reset.
    request_queue_size = 64


class IntrospectionServer:
    """A real introspection endpoint. ``answers`` maps tokens to JSON answers (unknown tokens are
    inactive); ``behaviour`` switches how every request is answered."""

    def __init__(
        self,
        client_id: str = CLIENT_ID,
        client_secret: str = CLIENT_SECRET,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.auth = "basic"  # how the resource server must authenticate: basic, post or bearer
        self.bearer_tokens: set[str] = set()  # the bearer tokens accepted with auth="bearer"
        self.received: list[tuple[str | None, list[str]]] = []  # (Authorization, form fields)
        self.answers: dict[str, dict[str, Any]] = {}
        self.behaviour = "normal"
        self.status = 200
        self.headers: dict[str, str] = {}
        self.raw_body: bytes | None = None
        self.calls = 0
        self.connections = 0
        self.problems: list[str] = []  # requests that broke RFC 7662 §2.1; checked at teardown
        self.holds: dict[str, threading.Event] = {}  # token → answered once set
        self.released = threading.Event()  # ends every slow or held answer at teardown
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so connection reuse can be seen

            def setup(self) -> None:
                super().setup()
                # Headers and body leave in two writes: without this, Nagle's algorithm and the
                # client's delayed ACK add 40 ms to every answer.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with owner.lock:
                    owner.connections += 1
                    owner.sockets.append(self.connection)

            def do_POST(self) -> None:
                owner.handle(self)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Listener(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "http" if tls is None else "https"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_port}/introspect"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)

    def start(self) -> None:
        self._thread.start()

    @classmethod
    @contextmanager
    def serving(cls) -> Iterator[IntrospectionServer]:
        """One started for a test and stopped after it; every request it saw must have been as
        RFC 7662 §2.1 asks (its form, headers and path)."""
        running = cls()
        running.start()
        yield running
        running.stop()
        assert not running.problems

    def stop(self) -> None:
        """Stop listening and cut every open connection, pooled keep-alive ones included."""
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        with self.lock:
            for sock in self.sockets:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def hold(self, token: str) -> threading.Event:
        self.holds[token] = threading.Event()
        return self.holds[token]

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length", "0")))
        with self.lock:
            self.calls += 1
        form = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
        authorization = request.headers.get("Authorization")
        with self.lock:
            self.received.append((authorization, sorted(form)))
        if not self.authenticated(authorization, form):
            if self.auth == "bearer":  # RFC 7662 §2.3, RFC 6750 §3
                challenge = 'Bearer realm="as", error="invalid_token"'
                self.send(request, 401, {"error": "invalid_token"}, {"WWW-Authenticate": challenge})
            else:
                self.send(request, 401, {"error": "invalid_client"}, {"WWW-Authenticate": 'Basic realm="as"'})
            return
        self.check(request, form)
        token = form["token"][0]
        if token in self.holds:
            self.holds[token].wait(5)
        behaviour = self.behaviour
        if behaviour == "slow":
            self.released.wait(2)
        elif behaviour == "trickle body":
            self.trickle(request, b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n", b" " * 200)
            return
        elif behaviour == "trickle headers":
            self.trickle(request, b"", b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 200)
            return
        elif behaviour == "not http":
            request.wfile.write(b"\x16\x03\x01 this is not HTTP\r\n\r\n")
            request.close_connection = True
            return
        elif behaviour == "cut":
            request.wfile.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"active": ')
            request.close_connection = True
            return
        if self.raw_body is not None:
            self.send_bytes(request, self.status, self.raw_body, self.headers)
        else:
            self.send(request, self.status, self.answers.get(token, {"active": False}), self.headers)

    def authenticated(self, header: str | None, form: dict[str, list[str]]) -> bool:
        """RFC 7662 §2.1 with the method of ``auth``, and only that one."""
        in_form = (form.get("client_id"), form.get("client_secret"))
        if self.auth == "post":  # RFC 6749 §2.3.1, in the body: no Authorization header
            return header is None and in_form == ([self.client_id], [self.client_secret])
        if header is None or in_form != (None, None):
            return False
        scheme, _, credentials = header.partition(" ")
        if self.auth == "bearer":  # RFC 6750 §2.1
            return scheme == "Bearer" and credentials in self.bearer_tokens
        if scheme != "Basic":  # RFC 6749 §2.3.1: each part form-urlencoded before base64
            return False
        client_id, _, secret = base64.b64decode(credentials).decode("utf-8").partition(":")
        return (unquote_plus(client_id), unquote_plus(secret)) == (self.client_id, self.client_secret)

    def check(self, request: BaseHTTPRequestHandler, form: dict[str, list[str]]) -> None:
        if request.path != "/introspect":
            self.problems.append(f"path {request.path}")
        if request.headers.get("Content-Type") != "application/x-www-form-urlencoded":
            self.problems.append("content type")
        if request.headers.get("Accept") != "application/json":
            self.problems.append("accept")
        fields = {"token", "token_type_hint"} | (
            {"client_id", "client_secret"} if self.auth == "post" else set()
        )
        if set(form) != fields or form["token_type_hint"] != ["access_token"]:
            self.problems.append(f"form fields {sorted(form)}")

    def trickle(self, request: BaseHTTPRequestHandler, head: bytes, slow: bytes) -> None:
        """``head`` at once, then ``slow`` a byte every 20 ms (4 s in all, unless cut short)."""
        request.close_connection = True
        try:
            request.wfile.write(head)
            for byte in slow:
                if self.released.wait(0.02):
                    return
                request.wfile.write(bytes([byte]))
        except OSError:  # the client gave up, as it should
            pass

    def send(
        self, request: BaseHTTPRequestHandler, status: int, answer: Any, headers: dict[str, str]
    ) -> None:
        self.send_bytes(request, status, json.dumps(answer).encode(), headers)

    def send_bytes(
        self, request: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str]
    ) -> None:
        try:
            request.send_response(status)
            if "Content-Type" not in headers:
                request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                request.send_header(name, value)
            request.end_headers()
            request.wfile.write(body)
        except OSError:  # the client gave up (a slow answer)
            pass


@pytest.fixture(autouse=True)
def _no_token_or_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    MINTED.clear()
    caplog.set_level(logging.DEBUG)
    yield
    text = caplog.text
    assert not [token for token in MINTED if token in text or quote_plus(token) in text]
    assert CLIENT_SECRET not in text


@pytest.fixture
def server() -> Iterator[IntrospectionServer]:
    with IntrospectionServer.serving() as running:
        yield running


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def verifier_for(
    server: IntrospectionServer, clock: Callable[[], float], **options: Any
) -> IntrospectionVerifier:
    settings: dict[str, Any] = {
        "endpoint": server.url,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "audience": AUDIENCE,
        "issuer": ISSUER,
        "clock": clock,
        "timeout": 2.0,
    }
    settings.update(options)
    return IntrospectionVerifier(**settings)


@pytest.fixture
def verifier(server: IntrospectionServer, clock: FakeClock) -> IntrospectionVerifier:
    return verifier_for(server, clock)


def issue(server: IntrospectionServer, **overrides: Any) -> str:
    token = opaque()
    server.answers[token] = active(**overrides)
    return token


def refused(verifier: IntrospectionVerifier, token: str, fragment: str) -> InvalidToken:
    with pytest.raises(InvalidToken) as caught:
        verifier.verify(token)
    assert fragment in caught.value.description
    assert token not in caught.value.description
    return caught.value


def unavailable(verifier: IntrospectionVerifier, token: str) -> VerificationUnavailable:
    with pytest.raises(VerificationUnavailable) as caught:
        verifier.verify(token)
    assert token not in caught.value.description
    return caught.value


@contextmanager
def closed_port() -> Iterator[str]:
    """An endpoint URL whose port is bound but not listening: connections are refused, and no
    other process can take the port while the test runs."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/introspect"


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll until ``condition`` holds (synchronization between threads, never token expiry)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.005)


# -- configuration ---------------------------------------------------------------------------------

GOOD: dict[str, Any] = {
    "endpoint": "https://as.example.com/oauth2/introspect",
    "client_id": CLIENT_ID,
    "client_secret": CLIENT_SECRET,
    "audience": AUDIENCE,
}


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("endpoint", "http://as.example.com/introspect"),
        ("endpoint", "http://10.0.0.1/introspect"),
        ("endpoint", "http://localhost.example.com/introspect"),
        ("endpoint", "ftp://127.0.0.1/introspect"),
        ("endpoint", "/introspect"),
        ("endpoint", "https:///introspect"),
        ("endpoint", "https://user:pass@as.example.com/introspect"),
        ("endpoint", "https://as.example.com/introspect#frag"),
        ("endpoint", "https://as.example.com/intro spect"),
        ("endpoint", "https://as.example.com:99999/introspect"),
        ("endpoint", None),
        ("client_id", ""),
        ("client_id", None),
        ("client_secret", ""),
        ("client_secret", b"secret"),
        ("audience", ""),
        ("audience", [AUDIENCE]),
        ("issuer", ""),
        ("subject_claim", ""),
        ("subject_claim", None),
        ("subject_claim", b"username"),
        ("scope_claim", ""),
        ("org_claim", None),
        ("issuer_org", ""),
        ("cache_ttl", -1),
        ("cache_ttl", float("nan")),
        ("cache_ttl", float("inf")),
        ("cache_ttl", "60"),
        ("cache_ttl", True),
        ("negative_ttl", -0.5),
        ("cache_size", -1),
        ("cache_size", 1.5),
        ("cache_size", True),
        ("timeout", 0),
        ("timeout", -1),
        ("timeout", float("inf")),
        ("max_token_bytes", 0),
        ("max_token_bytes", False),
    ],
)
def test_bad_options_fail_at_construction(option: str, value: Any) -> None:
    with pytest.raises(ValueError):
        IntrospectionVerifier(**{**GOOD, option: value})


def test_a_clock_must_be_callable() -> None:
    with pytest.raises(TypeError):
        IntrospectionVerifier(**GOOD, clock=1_900_000_000)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://as.example.com/oauth2/introspect",
        "https://as.invalid:8443/introspect?tenant=acme",
        "http://127.0.0.1:8080/introspect",
        "http://127.9.8.7/introspect",
        "http://[::1]:9000/introspect",
        "http://localhost/introspect",
    ],
)
def test_https_and_loopback_http_are_accepted_without_network_io(endpoint: str) -> None:
    # as.invalid cannot resolve (RFC 6761): construction must not try.
    verifier = IntrospectionVerifier(**{**GOOD, "endpoint": endpoint})
    assert verifier.endpoint == endpoint


def test_it_is_a_token_verifier(clock: FakeClock) -> None:
    verifier = IntrospectionVerifier(**GOOD, clock=clock, max_token_bytes=4096)
    assert isinstance(verifier, TokenVerifier)
    assert verifier.clock is clock and verifier.max_token_bytes == 4096
    assert IntrospectionVerifier(**GOOD).clock is time.time


BEARER = {k: v for k, v in GOOD.items() if not k.startswith("client_")}


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"client_auth": "client_secret_bsic"}, ValueError),
        ({"client_auth": "private_key_jwt"}, ValueError),
        ({"client_auth": "none"}, ValueError),
        ({"client_auth": None}, ValueError),
        ({"client_auth": "introspection-token-1"}, ValueError),  # a token must be BearerAuth(token)
        ({"client_auth": "client_secret_post", "client_secret": None}, ValueError),
        ({"client_auth": "client_secret_post", "client_id": ""}, ValueError),
        ({"client_auth": BearerAuth("token-1")}, ValueError),  # with client_id and client_secret
    ],
    ids=repr,
)
def test_bad_client_auth_fails_at_construction(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error, match=r"client_auth|client_id|client_secret"):
        IntrospectionVerifier(**{**GOOD, **options})


@pytest.mark.parametrize(
    ("token", "error"),
    [("", ValueError), ("a b", ValueError), ("tok\r\nX-Evil: 1", ValueError), ("é", ValueError),
     ("a" * 8193, ValueError), (b"token", TypeError), (None, TypeError), (5, TypeError)],
    ids=repr,
)  # fmt: skip
def test_a_bad_bearer_token_fails_at_construction(token: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="client_auth"):
        BearerAuth(token)


def test_bearer_auth_takes_no_client_credentials() -> None:
    for extra in ({"client_id": CLIENT_ID}, {"client_secret": CLIENT_SECRET}):
        with pytest.raises(ValueError, match="not used with client_auth=BearerAuth"):
            IntrospectionVerifier(**BEARER, client_auth=BearerAuth("token-1"), **extra)


@pytest.mark.parametrize(
    "client_auth",
    [
        "client_secret_basic",
        "client_secret_post",
        BearerAuth(CLIENT_SECRET),
        BearerAuth(lambda: CLIENT_SECRET),
    ],
    ids=["basic", "post", "bearer", "bearer callable"],
)
def test_no_secret_shows_in_a_repr(client_auth: Any) -> None:
    options = GOOD if isinstance(client_auth, str) else BEARER
    verifier = IntrospectionVerifier(**options, client_auth=client_auth)
    encoded = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    for text in (
        repr(vars(verifier)),
        repr(verifier._auth),
        repr(verifier._auth.credentials()),
        repr(client_auth),
    ):
        assert CLIENT_SECRET not in text and encoded not in text


# -- the raw token, checked before any I/O --------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["", "a b", "tok\n", "tok,en", "=abc", "ab=c", "tök", "a" * 8193, "\x00", "ab\u202e"],
    ids=repr,
)
def test_malformed_tokens_are_refused_without_a_request(
    raw: str, verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    with pytest.raises(InvalidToken):
        verifier.verify(raw)
    assert server.calls == 0


def test_a_non_string_token_is_refused(verifier: IntrospectionVerifier) -> None:
    with pytest.raises(InvalidToken):
        verifier.verify(b"token")  # type: ignore[arg-type]


# -- what an active token yields -------------------------------------------------------------------


def test_an_active_token_is_verified(verifier: IntrospectionVerifier, server: IntrospectionServer) -> None:
    token = issue(
        server, scope="project:read project:write", cnf={"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
    )
    verified = verifier.verify(token)
    assert isinstance(verified, VerifiedToken)
    assert (verified.subject, verified.client_id, verified.org) == ("user-1", "client-1", "acme")
    assert verified.scopes == frozenset({"project:read", "project:write"})
    assert verified.kind == "access"
    assert verified.expires_at == NOW + 60  # cache_ttl is sooner than exp
    assert verified.claims["cnf"] == {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
    assert verified.jkt == "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"  # bound, though "Bearer"
    assert verified.claims["active"] is True
    with pytest.raises(TypeError):
        verified.claims["sub"] = "admin"  # type: ignore[index]
    assert server.calls == 1


@pytest.mark.parametrize(
    ("client_id", "secret"),
    [("client:1 é+", "s3cr:t/+ %&="), ("plain", "pa ss")],
)
def test_client_credentials_are_form_urlencoded_before_base64(
    client_id: str, secret: str, clock: FakeClock
) -> None:
    """RFC 6749 §2.3.1: a ':' in the id or a '+' in the secret must reach the server intact."""
    server = IntrospectionServer(client_id, secret)
    server.start()
    try:
        token = issue(server)
        verifier = verifier_for(server, clock, client_id=client_id, client_secret=secret)
        assert verifier.verify(token).subject == "user-1"
    finally:
        server.stop()
    assert not server.problems


def test_client_secret_post_sends_the_credentials_in_the_form(clock: FakeClock) -> None:
    """RFC 6749 §2.3.1: client_id and client_secret as form fields, and no Authorization header."""
    secret = "s3cr:t/+ %&=é"
    server = IntrospectionServer("client:1 é+", secret)
    server.auth = "post"
    server.start()
    try:
        token = issue(server)
        verifier = verifier_for(
            server, clock, client_id="client:1 é+", client_secret=secret, client_auth="client_secret_post"
        )
        assert verifier.verify(token).subject == "user-1"
    finally:
        server.stop()
    assert not server.problems
    assert server.received == [(None, ["client_id", "client_secret", "token", "token_type_hint"])]


def test_client_secret_basic_is_the_default_and_sends_nothing_in_the_form(
    verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    assert verifier.verify(issue(server)).subject == "user-1"
    ((authorization, fields),) = server.received
    assert authorization is not None and authorization.startswith("Basic ")
    assert fields == ["token", "token_type_hint"]


def test_a_wrong_post_secret_is_unavailable(server: IntrospectionServer, clock: FakeClock) -> None:
    server.auth = "post"
    verifier = verifier_for(server, clock, client_secret="not-the-secret", client_auth="client_secret_post")
    assert "client_secret_post" in unavailable(verifier, issue(server)).description
    assert server.calls == 1


def bearer_verifier(server: IntrospectionServer, clock: FakeClock, token: Any) -> IntrospectionVerifier:
    return verifier_for(server, clock, client_id=None, client_secret=None, client_auth=BearerAuth(token))


class TokenSource:
    """A bearer-token callable: hands out ``tokens`` in turn (the last one again once they run
    out), counting its calls. Every token it hands out is kept out of the logs."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.calls = 0
        MINTED.extend(tokens)

    def __call__(self) -> str:
        self.calls += 1
        return self.tokens[min(self.calls, len(self.tokens)) - 1]


def test_a_fixed_bearer_token_authenticates(server: IntrospectionServer, clock: FakeClock) -> None:
    """RFC 7662 §2.1: the protected resource may authorize its call with a bearer token."""
    server.auth, server.bearer_tokens = "bearer", {"rs-token-1"}
    MINTED.append("rs-token-1")
    verifier = bearer_verifier(server, clock, "rs-token-1")
    assert verifier.verify(issue(server)).subject == "user-1"
    assert server.received == [("Bearer rs-token-1", ["token", "token_type_hint"])]


def test_a_fixed_bearer_token_refused_is_unavailable_without_a_retry(
    server: IntrospectionServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    server.auth, server.bearer_tokens = "bearer", {"rs-token-1"}
    MINTED.append("rs-token-old")
    verifier = bearer_verifier(server, clock, "rs-token-old")
    token = issue(server)
    assert "bearer token" in unavailable(verifier, token).description
    unavailable(verifier, token)
    assert server.calls == 2  # one request each, nothing cached
    assert any(r.levelno == logging.ERROR for r in caplog.records)


def test_a_token_callable_is_called_when_needed_and_its_token_kept(
    server: IntrospectionServer, clock: FakeClock
) -> None:
    source = TokenSource("rs-token-1")
    server.auth, server.bearer_tokens = "bearer", {"rs-token-1"}
    verifier = bearer_verifier(server, clock, source)
    assert source.calls == 0  # never at construction: start-up does no I/O
    for _ in range(3):
        assert verifier.verify(issue(server)).subject == "user-1"
    assert (source.calls, server.calls) == (1, 3)


def test_a_refused_token_is_replaced_once_and_the_request_sent_again(
    server: IntrospectionServer, clock: FakeClock
) -> None:
    source = TokenSource("rs-token-1", "rs-token-2", "rs-token-3")
    server.auth, server.bearer_tokens = "bearer", {"rs-token-1"}
    verifier = bearer_verifier(server, clock, source)
    assert verifier.verify(issue(server)).subject == "user-1"
    server.bearer_tokens = {"rs-token-2"}  # rs-token-1 expired at the authorization server
    assert verifier.verify(issue(server)).subject == "user-1"
    assert source.calls == 2
    assert [authorization for authorization, _ in server.received] == [
        "Bearer rs-token-1",
        "Bearer rs-token-1",  # refused with 401...
        "Bearer rs-token-2",  # ...so the same question again, with the new token
    ]
    assert verifier.verify(issue(server)).subject == "user-1"  # and it is kept
    assert (source.calls, server.calls) == (2, 4)


def test_a_token_callable_that_returns_the_refused_token_again_is_unavailable(
    server: IntrospectionServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    source = TokenSource("rs-token-1")
    server.auth, server.bearer_tokens = "bearer", {"rs-token-2"}
    verifier = bearer_verifier(server, clock, source)
    token = issue(server)
    unavailable(verifier, token)
    assert (source.calls, server.calls) == (2, 1)  # asked again, but nothing new to try
    assert any(r.levelno == logging.ERROR and "client_auth" in r.getMessage() for r in caplog.records)
    server.bearer_tokens = {"rs-token-1"}
    assert verifier.verify(token).subject == "user-1"  # nothing was remembered against the token


def test_a_refusal_seen_by_many_requests_gets_one_new_token(
    server: IntrospectionServer, clock: FakeClock
) -> None:
    source = TokenSource("rs-token-1", "rs-token-2", "rs-token-3")
    server.auth, server.bearer_tokens = "bearer", {"rs-token-1"}
    verifier = bearer_verifier(server, clock, source)
    assert verifier.verify(issue(server)).subject == "user-1"
    server.bearer_tokens = {"rs-token-2"}
    tokens = [issue(server) for _ in range(20)]
    threads, results = run_together(20, lambda: verifier.verify(tokens.pop()))
    for thread in threads:
        thread.join(5)
    assert all(isinstance(result, VerifiedToken) for result in results), results
    assert source.calls == 2  # one new token for every request that saw rs-token-1 refused


@pytest.mark.parametrize(
    "returned",
    [None, "", b"rs-token", "rs token", "rs-token\r\nX-Evil: 1", "é", "a" * 8193, 5],
    ids=repr,
)
def test_a_token_callable_returning_no_token_is_unavailable(
    returned: Any, server: IntrospectionServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    server.auth = "bearer"
    verifier = bearer_verifier(server, clock, lambda: returned)
    unavailable(verifier, issue(server))
    assert server.calls == 0  # nothing was sent
    assert any(r.levelno == logging.ERROR and "not a bearer token" in r.getMessage() for r in caplog.records)


def test_a_failing_token_callable_is_unavailable_and_its_message_is_not_logged(
    server: IntrospectionServer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def fetch() -> str:
        raise RuntimeError(f"token endpoint refused client secret {CLIENT_SECRET}")

    server.auth = "bearer"
    verifier = bearer_verifier(server, clock, fetch)
    error = unavailable(verifier, issue(server))
    assert "RuntimeError" in error.description and CLIENT_SECRET not in error.description
    assert server.calls == 0  # the autouse fixture checks the logs for the secret


@pytest.mark.parametrize(
    ("claim", "value", "options"),
    [
        ("scope", ["project:read", "project:write"], {}),
        ("scp", ["project:read", "project:write"], {"scope_claim": "scp"}),
        ("scp", "project:read project:write", {"scope_claim": "scp"}),
    ],
)
def test_scopes_as_a_string_or_an_array(
    claim: str, value: Any, options: dict[str, Any], server: IntrospectionServer, clock: FakeClock
) -> None:
    verifier = verifier_for(server, clock, **options)
    token = issue(server, **{"scope": DROP, claim: value})
    assert verifier.verify(token).scopes == frozenset({"project:read", "project:write"})


@pytest.mark.parametrize("value", [["project:read", "a b"], "bad\x00scope", 5, {"a": 1}])
def test_bad_scopes_are_refused(
    value: Any, verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    refused(verifier, issue(server, scope=value), "scope")


def test_issuer_org_binds_every_token(server: IntrospectionServer, clock: FakeClock) -> None:
    verifier = verifier_for(server, clock, issuer_org="acme", org_claim="tenant")
    assert verifier.verify(issue(server, org_id=DROP)).org == "acme"
    assert verifier.verify(issue(server, tenant="acme")).org == "acme"
    refused(verifier, issue(server, tenant="globex"), "organization")


def test_a_client_credentials_token_is_its_client(
    verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    """RFC 9068 §2.2: without a sub, the subject is the client."""
    verified = verifier.verify(issue(server, sub=DROP, client_id="batch-job"))
    assert (verified.subject, verified.client_id) == ("batch-job", "batch-job")
    refused(verifier, issue(server, sub=DROP, client_id=DROP), "neither sub nor client_id")


def test_subject_claim_names_the_member_the_subject_is_read_from(
    server: IntrospectionServer, clock: FakeClock
) -> None:
    """A server that names the user only as ``username`` (django-oauth-toolkit): the user's
    token is hers, a client-credentials token (no ``username``) still its client's (RFC 9068
    §2.2), and the member is checked as ``sub`` is; ``sub`` itself is then not read."""
    verifier = verifier_for(server, clock, subject_claim="username")
    users = verifier.verify(issue(server, sub=DROP, username="ada", client_id="cli"))
    assert (users.subject, users.client_id) == ("ada", "cli")
    service = verifier.verify(issue(server, sub=DROP, client_id="batch-job"))
    assert (service.subject, service.client_id) == ("batch-job", "batch-job")
    assert verifier.verify(issue(server, sub="user-1", client_id="cli")).subject == "cli"
    refused(verifier, issue(server, sub=DROP, client_id=DROP), "neither username nor client_id")
    refused(verifier, issue(server, username="ada\u202e"), "the username claim holds control")
    refused(verifier, issue(server, username=["ada"]), "the username claim must be a non-empty string")
    default = verifier_for(server, clock)  # sub, and username is only a claim
    assert default.verify(issue(server, sub=DROP, username="ada", client_id="cli")).subject == "cli"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"active": False}, "not active"),
        ({"token_type": "refresh_token"}, "not an access token"),
        ({"token_type": "Refresh"}, "not an access token"),
        ({"token_type": "mac"}, "not an access token"),
        ({"token_type": 1}, "not an access token"),
        ({"token_use": "refresh_token"}, "not an access token"),
        ({"aud": "https://other.test"}, "audience"),
        ({"aud": ["https://other.test"]}, "audience"),
        ({"aud": []}, "audience"),
        ({"aud": [AUDIENCE, 5]}, "audience"),
        ({"aud": DROP}, "audience"),
        ({"iss": "https://other-as.test"}, "issuer"),
        ({"iss": DROP}, "issuer"),
        ({"exp": NOW}, "expired"),
        ({"exp": NOW - 1}, "expired"),
        ({"exp": float(NOW + 600)}, "exp"),
        ({"exp": True}, "exp"),
        ({"nbf": NOW + 1}, "not valid yet"),
        ({"nbf": "0"}, "nbf"),
        ({"iat": "yesterday"}, "iat"),
        ({"sub": ""}, "sub"),
        ({"sub": "user\u202e1"}, "sub"),
        ({"sub": 42}, "sub"),
        ({"client_id": ["a"]}, "client_id"),
        ({"org_id": 7}, "org_id"),
    ],
)
def test_unacceptable_answers_are_refused(
    overrides: dict[str, Any], fragment: str, verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    refused(verifier, issue(server, **overrides), fragment)


@pytest.mark.parametrize("active", ["true", 1, None, DROP, [True], {"value": True}])
def test_a_200_without_a_boolean_active_is_no_answer_503_never_cached(
    active: Any, verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    """RFC 7662 §2.2: ``active`` is required and boolean. A 200 whose JSON lacks it (a health
    check, a misrouted endpoint) says nothing about the token: 503, and asked again next time,
    never a 401 that would make a client throw a good token away."""
    token = issue(server, active=active)
    for calls in (1, 2):
        assert "RFC 7662" in unavailable(verifier, token).description
        assert server.calls == calls


#: A real RFC 7638 thumbprint (base64url of a SHA-256 digest).
JKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"


@pytest.mark.parametrize("token_type", ["Bearer", "bearer", DROP])
def test_bearer_token_types_are_accepted(
    token_type: Any, verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    verified = verifier.verify(issue(server, token_type=token_type))
    assert verified.subject == "user-1" and verified.jkt is None


@pytest.mark.parametrize("token_type", ["DPoP", "dpop", "Bearer", "bearer", DROP])
def test_an_answer_with_cnf_jkt_is_bound_whatever_its_token_type(
    token_type: Any, verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    """RFC 9449 §6.2 says DPoP; an answer that says Bearer but carries cnf.jkt is bound all the
    same, as a confirmation is a condition of use (RFC 7800 §3.1): the guard then wants a proof."""
    assert verifier.verify(issue(server, token_type=token_type, cnf={"jkt": JKT})).jkt == JKT


@pytest.mark.parametrize("token_type", ["DPoP", "dpop", "DPOP"])
def test_a_dpop_answer_without_a_key_is_refused(
    token_type: str, verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    """RFC 9449 §6.2: without cnf.jkt there is nothing to bind the token to; accepting it would
    make a DPoP token a bearer token."""
    token = issue(server, token_type=token_type)
    refused(verifier, token, "names no key (cnf.jkt)")
    refused(verifier, token, "names no key (cnf.jkt)")
    assert server.calls == 1  # a well-formed answer: remembered like any refusal


@pytest.mark.parametrize(
    ("cnf", "fragment"),
    [
        ({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}, "x5t#S256, RFC 8705"),
        (
            {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}},
            "cnf jwk",
        ),
        ({"jkt": JKT, "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}, "x5t#S256"),
        ({"jkt": ""}, "cnf.jkt"),
        ({"jkt": 123}, "cnf.jkt"),
        ({"jkt": [JKT]}, "cnf.jkt"),
        (JKT, "cnf claim"),
        (None, "cnf claim"),
        ({}, "cnf claim"),
    ],
    ids=repr,
)
def test_an_answer_with_a_cnf_this_server_cannot_enforce_is_refused(
    cnf: Any, fragment: str, verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    refused(verifier, issue(server, cnf=cnf), fragment)


def test_audience_lists_and_optional_members(
    verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    assert verifier.verify(issue(server, aud=["https://other.test", AUDIENCE])).subject == "user-1"
    assert verifier.verify(issue(server, nbf=NOW, iat=DROP, exp=DROP, token_type=DROP)).subject == "user-1"


def test_audience_none_accepts_tokens_for_any_api(server: IntrospectionServer, clock: FakeClock) -> None:
    """The weaker setting: a token minted for another API passes (RFC 8707, RFC 9068 §4)."""
    verifier = verifier_for(server, clock, audience=None, issuer=None)
    assert verifier.verify(issue(server, aud="https://other.test")).subject == "user-1"
    assert verifier.verify(issue(server, aud=DROP, iss="https://anyone.test")).subject == "user-1"
    refused(verifier, issue(server, active=False), "not active")  # everything else still holds


# -- what the endpoint answers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"error": "unsupported_token_type"}',
        b'{"error": "invalid_token"}',
        b'{"error": "invalid_token", "error_description": "expired", "error_uri": "https://as.test/e"}',
        b' \r\n{"error":"invalid_token"}\n',
    ],
)
def test_a_400_error_about_the_token_is_an_inactive_token(
    body: bytes, verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    """Not what RFC 7662 §2.2 asks ({"active": false}), but an answer about the token all the same."""
    server.status = 400
    server.raw_body = body
    token = opaque()
    refused(verifier, token, "not active")
    refused(verifier, token, "not active")
    assert server.calls == 1  # a refusal, cached for negative_ttl


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"", "application/json"),
        (b"", "text/html"),
        (b"<html><head><title>400 Bad Request</title></head><body>nginx</body></html>", "text/html"),
        (b"Bad Request", "text/plain"),
        (b"[]", "application/json"),
        (b'"invalid_token"', "application/json"),
        (b"{}", "application/json"),
        (b'{"error": null}', "application/json"),
        (b'{"error": 400}', "application/json"),
        (b'{"error": ["invalid_token"]}', "application/json"),
        (b'{"error": "server_error"}', "application/json"),
        (b'{"error": "temporarily_unavailable"}', "application/json"),
        (b'{"error": "some_proxy_code"}', "application/json"),
        (b'{"error": "INVALID_TOKEN"}', "application/json"),
        (b'{"error": "invalid_token", "error": "invalid_client"}', "application/json"),
        (b'{"error": "invalid_token"} {"error": "x"}', "application/json"),
        (b'{"error": "invalid_token", "n": NaN}', "application/json"),
        (b'\xef\xbb\xbf{"error": "invalid_token"}', "application/json"),
        (b'{"error": "invalid_token", "x": "\xff"}', "application/json"),
        (b'{"error": "invalid_token", "x": ' + b"[" * 100 + b"]" * 100 + b"}", "application/json"),
    ],
    ids=[
        "empty",
        "empty html",
        "nginx page",
        "text",
        "array",
        "string",
        "no error",
        "error null",
        "error a number",
        "error a list",
        "server_error",
        "temporarily_unavailable",
        "unknown code",
        "code in upper case",
        "duplicate error",
        "two documents",
        "NaN",
        "BOM",
        "bad utf-8",
        "deep",
    ],
)
def test_a_400_that_is_no_error_about_the_token_is_unavailable_and_never_cached(
    body: bytes,
    content_type: str,
    verifier: IntrospectionVerifier,
    server: IntrospectionServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What a proxy in front of the authorization server sends is not an answer about the token:
    503 with Retry-After, and the token is asked about again next time (RFC 6749 §5.2)."""
    server.status, server.raw_body, server.headers = 400, body, {"Content-Type": content_type}
    token = issue(server)  # active: the authorization server would say so if it were asked
    assert unavailable(verifier, token).retry_after == 5
    unavailable(verifier, token)
    assert server.calls == 2  # never remembered as a refusal
    assert any("HTTP 400" in record.getMessage() for record in caplog.records)
    server.status, server.raw_body, server.headers = 200, None, {}
    assert verifier.verify(token).subject == "user-1"


def test_a_400_without_an_answer_passes_the_servers_retry_after_on(
    verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    server.status, server.raw_body, server.headers = 400, b"<html></html>", {"Retry-After": "30"}
    assert unavailable(verifier, opaque()).retry_after == 30


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, b'{"error": "invalid_client"}'),
        (403, b'{"error": "access_denied"}'),
        (400, b'{"error": "invalid_client"}'),  # RFC 6749 §5.2 allows 400 for it
        (400, b'{"error": "unauthorized_client"}'),
        (400, b'{"error": "invalid_request", "error_description": "missing token"}'),
    ],
)
def test_our_credentials_refused_is_unavailable_and_an_error_log(
    status: int,
    body: bytes,
    verifier: IntrospectionVerifier,
    server: IntrospectionServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server.status, server.raw_body = status, body
    token = opaque()
    unavailable(verifier, token)
    unavailable(verifier, token)
    assert server.calls == 2  # never cached
    errors = [
        r for r in caplog.records if r.levelno == logging.ERROR and r.name.startswith("resource_server")
    ]
    assert errors and "client_id" in errors[0].getMessage()


def test_a_wrong_secret_is_unavailable_not_invalid(server: IntrospectionServer, clock: FakeClock) -> None:
    verifier = verifier_for(server, clock, client_secret="not-the-secret")
    unavailable(verifier, issue(server))
    assert server.calls == 1


@pytest.mark.parametrize("status", [500, 502, 404, 204, 302, 429])
def test_other_statuses_are_unavailable(
    status: int, verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    server.status = status
    server.headers = {"Location": server.url.replace("/introspect", "/elsewhere")} if status == 302 else {}
    token = issue(server)
    error = unavailable(verifier, token)
    assert error.retry_after == 5
    assert server.calls == 1  # no retry, no redirect followed
    server.status, server.headers = 200, {}
    # Nothing was cached, and the connection was not reused (this server sends a body even
    # after its 204, which would otherwise be read as the next answer).
    assert verifier.verify(token).subject == "user-1"


@pytest.mark.parametrize(
    ("value", "seconds"), [("30", 30), ("0", 1), ("100000", 300), ("Fri, 01 Jan 2100 00:00:00 GMT", 5)]
)
def test_the_servers_retry_after_is_passed_on(
    value: str, seconds: int, verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    server.status, server.headers = 503, {"Retry-After": value}
    assert unavailable(verifier, opaque()).retry_after == seconds


@pytest.mark.parametrize(
    "body",
    [
        b"<html>Service Unavailable</html>",
        b"",
        b"[]",
        b'"active"',
        b'{"active": true, "sub": "a", "sub": "b", "aud": "https://api.test"}',
        b'{"active": true, "exp": NaN}',
        b'{"active": true, "exp": 1e999}',
        b'{"active": true, "sub": "\xff"}',
        b"\xef\xbb\xbf{}",
        b'{"active": true, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        json.dumps(active(padding="x" * MAX_RESPONSE_BYTES)).encode(),
    ],
    ids=[
        "html",
        "empty",
        "array",
        "string",
        "duplicates",
        "NaN",
        "1e999",
        "bad utf-8",
        "BOM",
        "deep",
        "huge",
    ],
)
def test_a_garbage_answer_is_unavailable(
    body: bytes, verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    server.raw_body = body
    token = opaque()
    unavailable(verifier, token)
    unavailable(verifier, token)
    assert server.calls == 2  # the server's fault: nothing cached against the token


def test_an_answer_of_exactly_the_limit_is_read(
    verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    token = opaque()
    answer = active()
    base = len(json.dumps({**answer, "padding": ""}).encode())
    exact = json.dumps({**answer, "padding": "x" * (MAX_RESPONSE_BYTES - base)}).encode()
    assert len(exact) == MAX_RESPONSE_BYTES
    server.raw_body = exact
    assert verifier.verify(token).subject == "user-1"
    server.raw_body = exact[:-1] + b" }"
    unavailable(verifier, opaque())
    server.raw_body = None
    assert verifier.verify(issue(server)).subject == "user-1"  # the refused connection was not reused


@pytest.mark.parametrize("behaviour", ["not http", "cut"])
def test_a_broken_exchange_is_unavailable(
    behaviour: str, verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    server.behaviour = behaviour
    token = issue(server)
    unavailable(verifier, token)
    server.behaviour = "normal"
    assert verifier.verify(token).subject == "user-1"


def test_a_closed_port_is_unavailable(clock: FakeClock) -> None:
    with closed_port() as endpoint:
        verifier = IntrospectionVerifier(**{**GOOD, "endpoint": endpoint, "clock": clock})
        token = opaque()
        assert unavailable(verifier, token).retry_after >= 1


def test_a_server_that_went_away_is_unavailable(clock: FakeClock) -> None:
    server = IntrospectionServer()
    server.start()
    verifier = verifier_for(server, clock)
    assert verifier.verify(issue(server)).subject == "user-1"  # a pooled connection now exists
    server.stop()
    unavailable(verifier, issue(server))


@pytest.mark.parametrize("behaviour", ["slow", "trickle body", "trickle headers"])
def test_a_slow_server_cannot_hold_a_request_past_the_timeout(
    behaviour: str, server: IntrospectionServer, clock: FakeClock
) -> None:
    """A socket timeout bounds each read; the whole answer must come within ``timeout`` too,
    however the server spreads its bytes (unbounded, the trickles would take 4 s)."""
    verifier = verifier_for(server, clock, timeout=0.2)
    server.behaviour = behaviour
    started = time.monotonic()
    unavailable(verifier, issue(server))
    assert time.monotonic() - started < 1.5


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own trust anchor, valid from 2000 to 2999 (so the
    day the tests run never matters), and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "introspection test")])
    public = key.public_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(1)
        .not_valid_before(datetime(2000, 1, 1))
        .not_valid_after(datetime(2999, 1, 1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def test_https_certificates_are_verified(
    tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = IntrospectionServer(tls=context)
    server.start()
    try:
        token = issue(server)
        unavailable(verifier_for(server, clock), token)  # a certificate nobody vouches for
        assert server.calls == 0  # the token never left over that connection
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # OpenSSL's default trust store, for this test
        verifier = verifier_for(server, clock, timeout=0.2)
        assert verifier.verify(token).subject == "user-1"
        server.behaviour = "trickle body"  # the deadline holds over TLS too
        started = time.monotonic()
        unavailable(verifier, issue(server))
        assert time.monotonic() - started < 1.5
    finally:
        server.stop()
    assert not server.problems


def test_connections_are_kept_alive(verifier: IntrospectionVerifier, server: IntrospectionServer) -> None:
    for _ in range(5):
        verifier.verify(issue(server))
    assert (server.calls, server.connections) == (5, 1)


# -- the cache --------------------------------------------------------------------------------------


def test_an_answer_is_reused_for_cache_ttl(
    verifier: IntrospectionVerifier, server: IntrospectionServer, clock: FakeClock
) -> None:
    token = issue(server)
    first = verifier.verify(token)
    clock.advance(59.999)
    assert verifier.verify(token) is first
    assert server.calls == 1
    clock.advance(0.001)
    second = verifier.verify(token)
    assert server.calls == 2
    assert second.expires_at == NOW + 120


def test_exp_ends_reuse_when_it_comes_first(
    verifier: IntrospectionVerifier, server: IntrospectionServer, clock: FakeClock
) -> None:
    token = issue(server, exp=NOW + 30)
    assert verifier.verify(token).expires_at == NOW + 30
    clock.advance(29.5)
    verifier.verify(token)
    assert server.calls == 1
    clock.advance(0.5)
    refused(verifier, token, "expired")  # asked again, and the answer's exp has passed
    assert server.calls == 2


def test_expires_at_is_floored_and_without_exp_is_the_ttl(server: IntrospectionServer) -> None:
    clock = FakeClock(NOW + 0.75)
    verifier = verifier_for(server, clock, cache_ttl=10.5)
    assert verifier.verify(issue(server, exp=DROP)).expires_at == NOW + 11  # floor(NOW + 11.25)
    assert verifier.verify(issue(server, exp=NOW + 5)).expires_at == NOW + 5
    assert verifier.verify(issue(server, exp=10**400)).expires_at == NOW + 11


@pytest.mark.parametrize("options", [{"cache_ttl": 0}, {"cache_size": 0}])
def test_caching_can_be_turned_off(
    options: dict[str, Any], server: IntrospectionServer, clock: FakeClock
) -> None:
    verifier = verifier_for(server, clock, **options)
    token = issue(server)
    for _ in range(3):
        verifier.verify(token)
    assert server.calls == 3
    if options.get("cache_ttl") == 0:
        assert verifier.verify(token).expires_at <= clock()  # nothing downstream keeps it either


def test_a_refusal_is_remembered_for_negative_ttl(
    verifier: IntrospectionVerifier, server: IntrospectionServer, clock: FakeClock
) -> None:
    token = opaque()  # unknown to the server: inactive
    refused(verifier, token, "not active")
    clock.advance(4.999)
    refused(verifier, token, "not active")
    assert server.calls == 1
    server.answers[token] = active()
    clock.advance(0.001)
    assert verifier.verify(token).subject == "user-1"
    assert server.calls == 2


def test_refused_claims_are_remembered_too(
    verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    token = issue(server, aud="https://other.test")
    refused(verifier, token, "audience")
    refused(verifier, token, "audience")
    assert server.calls == 1


def test_negative_ttl_zero_remembers_no_refusal(server: IntrospectionServer, clock: FakeClock) -> None:
    verifier = verifier_for(server, clock, negative_ttl=0)
    token = opaque()
    refused(verifier, token, "not active")
    refused(verifier, token, "not active")
    assert server.calls == 2


def test_unavailability_is_never_cached(verifier: IntrospectionVerifier, server: IntrospectionServer) -> None:
    token = issue(server)
    server.status = 500
    unavailable(verifier, token)
    server.status = 200
    assert verifier.verify(token).subject == "user-1"


def test_the_cache_is_bounded_first_in_first_out(server: IntrospectionServer, clock: FakeClock) -> None:
    verifier = verifier_for(server, clock, cache_size=2)
    first, second, third = issue(server), issue(server), issue(server)
    for token in (first, second, third):
        verifier.verify(token)
    verifier.verify(third)
    verifier.verify(second)
    assert server.calls == 3
    verifier.verify(first)
    assert server.calls == 4


def test_the_cache_holds_digests_not_tokens(
    verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    token = issue(server)
    verifier.verify(token)
    keys = list(verifier._cache._entries)
    assert len(keys) == 1 and isinstance(keys[0], bytes) and len(keys[0]) == 32
    assert token.encode() not in keys[0]


# -- single flight ----------------------------------------------------------------------------------


def run_together(count: int, work: Callable[[], Any]) -> tuple[list[threading.Thread], list[Any]]:
    """``work`` in ``count`` threads started together; their results or raised exceptions."""
    results: list[Any] = [None] * count
    start = threading.Barrier(count)

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = work()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def flight_waiters(verifier: IntrospectionVerifier) -> int:
    """Callers waiting for the flights in progress."""
    return sum(flight.waiters for flight in list(verifier._flights.values()))


@pytest.mark.parametrize("answer", ["active", "inactive", "error"])
def test_fifty_threads_with_one_new_token_make_one_call(
    answer: str, server: IntrospectionServer, clock: FakeClock
) -> None:
    verifier = verifier_for(server, clock, cache_size=0)  # so only the flight can share an answer
    token = issue(server) if answer != "inactive" else opaque()
    if answer == "error":
        server.status = 500
    held = server.hold(token)
    threads, results = run_together(50, lambda: verifier.verify(token))
    wait_for(lambda: server.calls == 1 and flight_waiters(verifier) == 49)
    held.set()
    for thread in threads:
        thread.join(5)
    assert server.calls == 1
    if answer == "active":
        assert all(result is results[0] for result in results)
        assert results[0].subject == "user-1"
    else:
        kind = InvalidToken if answer == "inactive" else VerificationUnavailable
        assert all(type(result) is kind for result in results)
        assert len({id(result) for result in results}) == 50  # each caller raises its own


def test_different_tokens_do_not_wait_for_each_other(
    verifier: IntrospectionVerifier, server: IntrospectionServer
) -> None:
    slow, quick = issue(server), issue(server, sub="user-2")
    held = server.hold(slow)
    threads, results = run_together(1, lambda: verifier.verify(slow))
    wait_for(lambda: server.calls == 1)
    assert verifier.verify(quick).subject == "user-2"  # while the first is still held
    held.set()
    threads[0].join(5)
    assert results[0].subject == "user-1"


class StallingClock(FakeClock):
    """A FakeClock that stalls ``thread`` at its first reading once ``when()`` holds, to show
    that callers waiting for a stuck request do not wait forever."""

    def __init__(self, when: Callable[[], bool]) -> None:
        super().__init__(NOW)
        self.when = when
        self.thread: threading.Thread | None = None
        self.stalled = threading.Event()
        self.resume = threading.Event()

    def __call__(self) -> float:
        if threading.current_thread() is self.thread and not self.stalled.is_set() and self.when():
            self.stalled.set()
            self.resume.wait(5)
        return super().__call__()


def test_waiters_give_up_after_about_the_timeout(server: IntrospectionServer) -> None:
    # The request is answered at once; the leader then stalls reading the clock to check exp.
    clock = StallingClock(lambda: server.calls == 1)
    verifier = verifier_for(server, clock, timeout=0.2)
    token = issue(server)
    leader_result: list[Any] = []
    clock.thread = threading.Thread(target=lambda: leader_result.append(verifier.verify(token)))
    clock.thread.start()
    assert clock.stalled.wait(5)
    started = time.monotonic()
    error = unavailable(verifier, token)
    assert 0.3 < time.monotonic() - started < 2.0  # twice the timeout
    assert "in time" in error.description
    clock.resume.set()
    clock.thread.join(5)
    assert leader_result[0].subject == "user-1" and server.calls == 1


# -- end to end: Flask and WSGI ---------------------------------------------------------------------

ROLES = Roles({"member": ["project:read"], "admin": ["project:read", "project:write"]})
MEMBERS = {("user-1", "acme"): "admin", ("batch-job", "acme"): "member"}


def membership(subject: str, org: str | None) -> str | None:
    return MEMBERS.get((subject, org))


def flask_client(verifier: IntrospectionVerifier) -> Any:
    app = Flask(__name__)
    rs = ResourceServer(app, verifier=verifier, roles=ROLES, membership=membership)

    @app.route("/orgs/<org>/projects", methods=["GET", "POST"])
    @rs.require({"GET": "project:read", "POST": "project:write"})
    def projects(org: str) -> Any:
        return jsonify(
            subject=current_access.subject,
            scopes=sorted(current_access.scopes),
            client=current_token.client_id,
        )

    return app.test_client()


def wsgi_client(verifier: IntrospectionVerifier) -> Client:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = json.dumps({"subject": environ[TOKEN_KEY].subject}).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]

    routes = {"/orgs/<org>/projects": {"GET": "project:read", "POST": "project:write"}}
    return Client(BearerMiddleware(app, verifier=verifier, roles=ROLES, membership=membership, routes=routes))


ADAPTERS = {"flask": flask_client, "wsgi": wsgi_client}


def get(client: Any, token: str, method: str = "GET") -> Any:
    response = client.open("/orgs/acme/projects", method=method, headers={"Authorization": f"Bearer {token}"})
    text = response.get_data(as_text=True)
    assert token not in text
    assert not any(token in value for _, value in response.headers.items())
    return response


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_end_to_end_200_401_403_and_503(adapter: str, server: IntrospectionServer, clock: FakeClock) -> None:
    client = ADAPTERS[adapter](verifier_for(server, clock))
    good = issue(server)
    assert get(client, good).status_code == 200
    assert get(client, issue(server, sub=DROP, client_id="batch-job")).status_code == 200
    assert get(client, issue(server, sub=DROP, client_id="batch-job"), "POST").status_code == 403

    inactive = get(client, opaque())
    assert inactive.status_code == 401
    (challenge,) = parse_challenges(inactive.headers["WWW-Authenticate"])
    assert challenge.get("error") == "invalid_token"
    assert inactive.get_json()["error"] == "invalid_token"

    server.status = 500
    down = get(client, issue(server))
    assert down.status_code == 503
    assert "WWW-Authenticate" not in down.headers
    assert int(down.headers["Retry-After"]) >= 1
    body = down.get_json()
    assert body["error"] == "temporarily_unavailable" and body["error_description"]


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_end_to_end_with_the_endpoint_down(adapter: str, clock: FakeClock) -> None:
    with closed_port() as endpoint:
        client = ADAPTERS[adapter](IntrospectionVerifier(**{**GOOD, "endpoint": endpoint, "clock": clock}))
        response = get(client, opaque())
    assert response.status_code == 503
    assert "WWW-Authenticate" not in response.headers and "Retry-After" in response.headers
    assert response.get_json()["error"] == "temporarily_unavailable"


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_revocation_is_seen_within_cache_ttl(
    adapter: str, server: IntrospectionServer, clock: FakeClock
) -> None:
    """The guard keeps a verified token until ``expires_at``: that, min(exp, now + cache_ttl),
    is how long a revoked token can still be used here."""
    client = ADAPTERS[adapter](verifier_for(server, clock, cache_ttl=30))
    token = issue(server)
    assert get(client, token).status_code == 200
    server.answers[token] = {"active": False}  # revoked at the authorization server
    clock.advance(29.999)
    assert get(client, token).status_code == 200
    assert server.calls == 1
    clock.advance(0.001)
    assert get(client, token).status_code == 401
    assert server.calls == 2


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_end_to_end_a_proxys_400_page_is_503_and_not_remembered(
    adapter: str, server: IntrospectionServer, clock: FakeClock
) -> None:
    client = ADAPTERS[adapter](verifier_for(server, clock))
    token = issue(server)
    page = b"<html><head><title>400 Bad Request</title></head><body>proxy</body></html>"
    server.status, server.raw_body, server.headers = 400, page, {"Content-Type": "text/html"}
    down = get(client, token)
    assert down.status_code == 503
    assert down.headers["Retry-After"] == "5" and "WWW-Authenticate" not in down.headers
    assert down.get_json()["error"] == "temporarily_unavailable"
    server.status, server.raw_body, server.headers = 200, None, {}
    assert get(client, token).status_code == 200  # at once: no refusal was remembered


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_end_to_end_a_binding_this_server_cannot_use_is_401_never_bearer(
    adapter: str, server: IntrospectionServer, clock: FakeClock
) -> None:
    client = ADAPTERS[adapter](verifier_for(server, clock))
    cases = {
        "names no key (cnf.jkt)": issue(server, token_type="DPoP"),
        "DPoP-bound": issue(server, token_type="Bearer", cnf={"jkt": JKT}),
        "x5t#S256": issue(server, cnf={"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
    }
    for fragment, token in cases.items():
        response = get(client, token)
        assert response.status_code == 401, fragment
        assert response.get_json()["error"] == "invalid_token"
        assert fragment in response.get_json()["error_description"]
