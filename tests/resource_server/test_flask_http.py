"""The Flask extension over real HTTP: the app on a loopback port, keys fetched from a loopback JWKS
server, and both httpx and requests as clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import requests

from policy import parse_challenges
from resource_server import JWTVerifier
from tests.resource_server.test_flask import SIGNER, build_app, token
from tests.support import AUDIENCE, ISSUER, FakeClock, JWKSServer, es256, jwks, serve_wsgi

METADATA = "https://api.test/.well-known/oauth-protected-resource"


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[JWKSServer]:
    with JWKSServer(jwks(SIGNER)).running() as server:
        yield server


@pytest.fixture(scope="module")
def base_url(jwks_server: JWKSServer) -> Iterator[str]:
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=jwks_server.url, clock=FakeClock())
    app, _ = build_app(
        verifier,
        config={
            "RESOURCE_SERVER_RESOURCE": "https://api.test",
            "RESOURCE_SERVER_AUTHORIZATION_SERVERS": [ISSUER],
        },
    )
    with serve_wsgi(app) as url:
        yield url


def _httpx(method: str, url: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, Any]]:
    response = httpx.request(method, url, headers=headers, timeout=5)
    return response.status_code, response.headers.get_list("www-authenticate"), response.json()


def _requests(method: str, url: str, headers: dict[str, str]) -> tuple[int, Any, dict[str, Any]]:
    response = requests.request(method, url, headers=headers, timeout=5)
    value = response.headers.get("WWW-Authenticate")
    return response.status_code, [] if value is None else [value], response.json()


CLIENTS: dict[str, Callable[[str, str, dict[str, str]], tuple[int, Any, dict[str, Any]]]] = {
    "httpx": _httpx,
    "requests": _requests,
}


@pytest.fixture(params=sorted(CLIENTS))
def send(request: pytest.FixtureRequest) -> Callable[..., tuple[int, Any, dict[str, Any]]]:
    return CLIENTS[request.param]


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def test_a_read_works(base_url: str, send: Callable[..., Any], jwks_server: JWKSServer) -> None:
    status, challenges, body = send("GET", f"{base_url}/orgs/acme/projects", bearer(token()))
    assert status == 200
    assert challenges == []
    assert body["subject"] == "user-1" and body["scopes"] == ["project:read"]
    assert jwks_server.requests >= 1


def test_a_write_with_a_read_token_is_403_with_a_challenge(base_url: str, send: Callable[..., Any]) -> None:
    status, challenges, body = send("POST", f"{base_url}/orgs/acme/projects", bearer(token()))
    assert status == 403
    (challenge,) = parse_challenges(challenges)
    assert challenge.is_scheme("Bearer")
    assert challenge.get("error") == "insufficient_scope"
    assert challenge.get("scope") == "project:write"
    assert challenge.get("realm") == "api"
    assert challenge.get("resource_metadata") == METADATA
    assert body["error"] == "insufficient_scope"


def test_a_write_with_a_write_token_works(base_url: str, send: Callable[..., Any]) -> None:
    status, _, _ = send("POST", f"{base_url}/orgs/acme/projects", bearer(token(scope="project:write")))
    assert status == 200


def test_an_org_b_token_on_org_a_is_401(base_url: str, send: Callable[..., Any]) -> None:
    status, challenges, body = send("GET", f"{base_url}/orgs/acme/projects", bearer(token(org_id="globex")))
    assert status == 401
    (challenge,) = parse_challenges(challenges)
    assert challenge.get("error") == "invalid_token"
    assert challenge.get("error_description") == body["error_description"]
    assert body["error"] == "invalid_token"


def test_no_credentials_point_at_the_metadata(base_url: str, send: Callable[..., Any]) -> None:
    status, challenges, body = send("GET", f"{base_url}/orgs/acme/projects", {})
    assert status == 401
    (challenge,) = parse_challenges(challenges)
    assert dict(challenge.params) == {"realm": "api", "resource_metadata": METADATA}
    assert body["error"] == "unauthorized"


def test_the_metadata_document_over_http(base_url: str, send: Callable[..., Any]) -> None:
    status, _, document = send("GET", f"{base_url}/.well-known/oauth-protected-resource", {})
    assert status == 200
    assert document == {
        "resource": "https://api.test",
        "authorization_servers": [ISSUER],
        "scopes_supported": ["project:read", "project:write", "team:write"],
        "bearer_methods_supported": ["header"],
    }


def test_a_key_rotated_in_is_picked_up_after_the_cooldown() -> None:
    # A separate verifier and server keep the shared ones' key cache untouched.
    rotated = es256("rotated-1")
    clock = FakeClock()
    with JWKSServer(jwks(SIGNER)).running() as server:
        verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=server.url, clock=clock)
        app, _ = build_app(verifier)
        with serve_wsgi(app) as url:
            new = token(rotated, now=int(clock()))
            assert (
                httpx.get(f"{url}/orgs/acme/projects", headers=bearer(token()), timeout=5).status_code == 200
            )
            server.document = jwks(SIGNER, rotated)
            # Within the refetch interval an unknown kid cannot be checked yet (503, not 401)...
            early = httpx.get(f"{url}/orgs/acme/projects", headers=bearer(new), timeout=5)
            assert (early.status_code, early.headers["Retry-After"]) == (503, "5")
            assert server.requests == 1
            clock.advance(5)
            # ...and after it the set is fetched again and the new key verifies.
            late = requests.get(f"{url}/orgs/acme/projects", headers=bearer(new), timeout=5)
    assert late.status_code == 200, late.text
    assert server.requests == 2
