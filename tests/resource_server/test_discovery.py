"""Keys found through the issuer's metadata (RFC 8414, OpenID Connect Discovery), and the
freshness the authorization server declares (``Cache-Control: max-age``), against a real
loopback server whose documents, statuses and headers each test sets; time moves only through
``FakeClock``."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from resource_server import InvalidToken, JWTVerifier, KeySetError, VerificationUnavailable
from resource_server.tokens.discovery import metadata_uris
from resource_server.tokens.http import MAX_DOCUMENT_BYTES, max_age_of
from tests.support import AUDIENCE, NOW, FakeClock, Signer, es256, jwks

RFC8414 = "/.well-known/oauth-authorization-server"
OIDC = "/.well-known/openid-configuration"


class DocumentServer:
    """Serves ``documents[path] = (status, body, headers)`` on 127.0.0.1 and counts requests."""

    def __init__(self) -> None:
        self.documents: dict[str, tuple[int, bytes, dict[str, str]]] = {}
        self.requests: dict[str, int] = {}
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests[self.path] = owner.requests.get(self.path, 0) + 1
                status, body, headers = owner.documents.get(self.path, (404, b"{}", {}))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def serve(self, path: str, document: Any, status: int = 200, **headers: str) -> None:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.documents[path] = (status, body, {k.replace("_", "-"): v for k, v in headers.items()})

    def __enter__(self) -> DocumentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def server() -> Iterator[DocumentServer]:
    with DocumentServer() as running:
        yield running


@pytest.fixture
def es() -> Signer:
    return es256("disco-1")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


def token(signer: Signer, clock: FakeClock, issuer: str, **headers: Any) -> str:
    return signer.token(headers=headers or None, now=int(clock.now), iss=issuer)


def discovering(issuer: str, clock: FakeClock) -> JWTVerifier:
    return JWTVerifier(issuer=issuer, audience=AUDIENCE, discover=True, clock=clock)


# -- where the metadata lives ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issuer", "rfc8414", "oidc"),
    [
        (
            "https://as.example",
            "https://as.example/.well-known/oauth-authorization-server",
            "https://as.example/.well-known/openid-configuration",
        ),
        (
            "https://as.example/tenant/1",  # RFC 8414 §3.1: the suffix goes before the path
            "https://as.example/.well-known/oauth-authorization-server/tenant/1",
            "https://as.example/tenant/1/.well-known/openid-configuration",
        ),
        (
            "https://as.example:8443/realms/acme/",
            "https://as.example:8443/.well-known/oauth-authorization-server/realms/acme",
            "https://as.example:8443/realms/acme/.well-known/openid-configuration",
        ),
    ],
)
def test_metadata_locations_follow_rfc8414_and_oidc(issuer: str, rfc8414: str, oidc: str) -> None:
    assert metadata_uris(issuer) == (rfc8414, oidc)


@pytest.mark.parametrize(
    "issuer",
    [
        "http://as.example",
        "ftp://as.example",
        "https://as.example?tenant=1",
        "https://as.example#x",
        "as.example",
    ],
)
def test_an_issuer_that_cannot_be_discovered_safely_is_refused_at_construction(issuer: str) -> None:
    with pytest.raises(ValueError):
        JWTVerifier(issuer=issuer, audience=AUDIENCE, discover=True)


def test_exactly_one_source_of_keys(es: Signer) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        JWTVerifier(issuer="https://as.example", audience=AUDIENCE, jwks=jwks(es), discover=True)
    with pytest.raises(ValueError, match="exactly one"):
        JWTVerifier(issuer="https://as.example", audience=AUDIENCE)


# -- discovery -------------------------------------------------------------------------------------


def test_discovery_is_lazy_then_cached(server: DocumentServer, es: Signer, clock: FakeClock) -> None:
    issuer = f"{server.base}/tenant"
    server.serve(f"{RFC8414}/tenant", {"issuer": issuer, "jwks_uri": f"{server.base}/keys"})
    server.serve("/keys", jwks(es))
    verifier = discovering(issuer, clock)
    assert server.requests == {}  # construction does no network I/O
    for _ in range(3):
        assert verifier.verify(token(es, clock, issuer)).subject == "user-1"
        clock.advance(10)
    assert server.requests == {f"{RFC8414}/tenant": 1, "/keys": 1}


def test_openid_connect_discovery_is_the_fallback(
    server: DocumentServer, es: Signer, clock: FakeClock
) -> None:
    issuer = f"{server.base}/realms/acme"
    server.serve(f"/realms/acme{OIDC}", {"issuer": issuer, "jwks_uri": f"{server.base}/certs"})
    server.serve("/certs", jwks(es))
    assert discovering(issuer, clock).verify(token(es, clock, issuer)).subject == "user-1"
    assert server.requests[f"{RFC8414}/realms/acme"] == 1  # tried first, 404


@pytest.mark.parametrize(
    "document",
    [
        lambda base: {"issuer": f"{base}/other", "jwks_uri": f"{base}/keys"},  # another issuer
        lambda base: {"issuer": f"{base}/tenant/", "jwks_uri": f"{base}/keys"},  # not exactly equal
        lambda base: {"jwks_uri": f"{base}/keys"},  # no issuer
        lambda base: {"issuer": f"{base}/tenant", "jwks_uri": "http://keys.example/keys"},  # not https
        lambda base: {"issuer": f"{base}/tenant", "jwks_uri": "file:///etc/passwd"},
        lambda base: {"issuer": f"{base}/tenant"},  # no jwks_uri
        lambda base: {"issuer": f"{base}/tenant", "jwks_uri": 7},
        lambda base: b'{"issuer": "x", "issuer": "y"}',  # duplicate members
        lambda base: b"[]",
        lambda base: b"not json",
    ],
    ids=[
        "other issuer",
        "issuer with a trailing slash",
        "no issuer",
        "http jwks_uri off loopback",
        "file jwks_uri",
        "no jwks_uri",
        "jwks_uri not a string",
        "duplicate members",
        "not an object",
        "not json",
    ],
)
def test_metadata_that_must_not_be_used_leaves_verification_unavailable(
    document: Any, server: DocumentServer, es: Signer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    issuer = f"{server.base}/tenant"
    server.serve(f"{RFC8414}/tenant", document(server.base))
    server.serve(f"/tenant{OIDC}", document(server.base))
    server.serve("/keys", jwks(es))
    with pytest.raises(VerificationUnavailable):
        discovering(issuer, clock).verify(token(es, clock, issuer))
    assert "/keys" not in server.requests  # no key was fetched from a document not trusted


def test_a_failed_discovery_is_retried_after_the_cooldown_only(
    server: DocumentServer, es: Signer, clock: FakeClock
) -> None:
    issuer = f"{server.base}/tenant"
    server.serve(f"{RFC8414}/tenant", {}, status=503)
    verifier = discovering(issuer, clock)
    with pytest.raises(VerificationUnavailable) as caught:
        verifier.verify(token(es, clock, issuer))
    assert caught.value.retry_after == 30
    clock.advance(10)
    with pytest.raises(VerificationUnavailable):
        verifier.verify(token(es, clock, issuer))
    assert server.requests[f"{RFC8414}/tenant"] == 1
    server.serve(f"{RFC8414}/tenant", {"issuer": issuer, "jwks_uri": f"{server.base}/keys"})
    server.serve("/keys", jwks(es))
    clock.advance(20)
    assert verifier.verify(token(es, clock, issuer)).subject == "user-1"


def test_a_crossed_key_is_still_refused(server: DocumentServer, es: Signer, clock: FakeClock) -> None:
    """Discovery finds keys; it does not widen what a key may sign: a token signed by another
    issuer's key (unknown kid) is 401, not 503."""
    issuer = f"{server.base}/tenant"
    server.serve(f"{RFC8414}/tenant", {"issuer": issuer, "jwks_uri": f"{server.base}/keys"})
    server.serve("/keys", jwks(es))
    with pytest.raises(InvalidToken, match="unknown key"):
        discovering(issuer, clock).verify(token(es256("other"), clock, issuer))


# -- Cache-Control on the JWK Set -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("max-age=600", 600.0),
        ("public, max-age=3600, must-revalidate", 3600.0),
        ('max-age="120"', 120.0),
        ("max-age=5", 60.0),  # clamped up: keys are needed on every request
        ("max-age=0", 60.0),
        ("no-store", 60.0),
        ("no-cache, max-age=900", 60.0),
        ("max-age=9999999", 86400.0),  # clamped down: a rotation is seen within a day
        ("s-maxage=900", None),
        ("max-age=abc", None),
        ("max-age=-5", None),
    ],
)
def test_max_age_is_read_and_clamped(header: str | None, seconds: float | None) -> None:
    assert max_age_of(header) == seconds


def test_the_jwk_set_is_kept_for_its_declared_max_age(
    server: DocumentServer, es: Signer, clock: FakeClock
) -> None:
    server.serve("/keys", jwks(es), Cache_Control="public, max-age=3600")
    verifier = JWTVerifier(
        issuer="https://as.test", audience=AUDIENCE, jwks_uri=f"{server.base}/keys", clock=clock
    )
    verifier.verify(token(es, clock, "https://as.test"))
    clock.advance(3000)  # past the 300 s default, within the declared hour
    verifier.verify(token(es, clock, "https://as.test"))
    assert server.requests["/keys"] == 1
    clock.advance(601)
    verifier.verify(token(es, clock, "https://as.test"))
    assert server.requests["/keys"] == 2


def test_a_short_max_age_is_clamped_to_a_minute(server: DocumentServer, es: Signer, clock: FakeClock) -> None:
    server.serve("/keys", jwks(es), Cache_Control="max-age=1")
    verifier = JWTVerifier(
        issuer="https://as.test", audience=AUDIENCE, jwks_uri=f"{server.base}/keys", clock=clock
    )
    for _ in range(5):
        verifier.verify(token(es, clock, "https://as.test"))
        clock.advance(10)
    assert server.requests["/keys"] == 1
    clock.advance(20)
    verifier.verify(token(es, clock, "https://as.test"))
    assert server.requests["/keys"] == 2


def test_an_oversized_jwk_set_is_refused_unread(server: DocumentServer, es: Signer, clock: FakeClock) -> None:
    document = jwks(es)
    document["padding"] = "x" * MAX_DOCUMENT_BYTES
    server.serve("/keys", document)
    verifier = JWTVerifier(
        issuer="https://as.test", audience=AUDIENCE, jwks_uri=f"{server.base}/keys", clock=clock
    )
    with pytest.raises(VerificationUnavailable):
        verifier.verify(token(es, clock, "https://as.test"))


@pytest.mark.parametrize(
    "uri", ["http://as.example/jwks", "http://10.0.0.1/jwks", "https:///jwks", "https://"], ids=str
)
def test_a_configured_jwks_uri_must_be_https_off_loopback(uri: str) -> None:
    with pytest.raises(KeySetError, match="https"):
        JWTVerifier(issuer="https://as.test", audience=AUDIENCE, jwks_uri=uri)


@pytest.mark.parametrize("uri", ["http://127.0.0.1:1/jwks", "http://localhost:1/jwks", "http://[::1]:1/jwks"])
def test_http_is_allowed_on_loopback(uri: str) -> None:
    JWTVerifier(issuer="https://as.test", audience=AUDIENCE, jwks_uri=uri)


# -- rotation and logging through discovery -------------------------------------------------------


def test_a_key_added_at_a_discovered_issuer_is_never_refused(
    server: DocumentServer, es: Signer, clock: FakeClock
) -> None:
    """The discovered JWK Set refetches on an unknown kid like a configured jwks_uri: 503 until
    the refetch interval allows a fetch, then accepted, never 401."""
    issuer = f"{server.base}/tenant"
    server.serve(f"{RFC8414}/tenant", {"issuer": issuer, "jwks_uri": f"{server.base}/keys"})
    server.serve("/keys", jwks(es))
    verifier = discovering(issuer, clock)
    verifier.verify(token(es, clock, issuer))
    added = es256("added")
    server.serve("/keys", jwks(es, added))
    with pytest.raises(VerificationUnavailable) as caught:
        verifier.verify(token(added, clock, issuer))
    assert caught.value.retry_after == 5
    clock.advance(5)
    assert verifier.verify(token(added, clock, issuer)).subject == "user-1"
    assert server.requests == {f"{RFC8414}/tenant": 1, "/keys": 2}


def test_a_missing_rfc8414_document_is_logged_once_per_issuer(
    server: DocumentServer, es: Signer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """An OpenID Connect provider without an RFC 8414 document, whose metadata says no-store
    (refreshed every minute): one warning per issuer, and the location that answered is asked
    first from then on."""
    verifiers = {}
    for realm in ("acme", "globex"):
        issuer = f"{server.base}/realms/{realm}"
        metadata = {"issuer": issuer, "jwks_uri": f"{server.base}/certs"}
        server.serve(f"/realms/{realm}{OIDC}", metadata, Cache_Control="no-store")
        verifiers[issuer] = discovering(issuer, clock)
    server.serve("/certs", jwks(es))
    with caplog.at_level(logging.DEBUG, "resource_server"):
        for _ in range(4):
            for issuer, verifier in verifiers.items():
                assert verifier.verify(token(es, clock, issuer)).subject == "user-1"
            clock.advance(61)
    for realm in ("acme", "globex"):
        assert server.requests[f"/realms/{realm}{OIDC}"] == 4
        assert server.requests[f"{RFC8414}/realms/{realm}"] == 1
    warnings = sorted(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert len(warnings) == 2
    assert "/realms/acme" in warnings[0] and "/realms/globex" in warnings[1]


def test_metadata_for_another_issuer_is_logged_with_both_issuers(
    server: DocumentServer, es: Signer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    issuer = f"{server.base}/tenant"
    server.serve(f"{RFC8414}/tenant", {"issuer": f"{issuer}/", "jwks_uri": f"{server.base}/keys"})
    with caplog.at_level(logging.WARNING, "resource_server"), pytest.raises(VerificationUnavailable):
        discovering(issuer, clock).verify(token(es, clock, issuer))
    assert f"names the issuer '{issuer}/', not '{issuer}'" in caplog.text
