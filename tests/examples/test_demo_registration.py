"""The demo authorization server's additions for MCP clients, over real HTTP on loopback: dynamic
client registration (RFC 7591) within its bounds, and resource indicators (RFC 8707) choosing the
token's audience."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from demo_auth_server import (
    ALL_SCOPES,
    PASSWORDS,
    PUBLIC_CLIENT,
    REDIRECT_URI,
    SERVICE_CLIENT,
    SERVICE_SECRET,
    AuthorizationCode,
    Store,
)
from demo_registration import MAX_REGISTRATION_BYTES

from tests.examples.test_demo_auth_server import RESOURCE, VERIFIER, running

MCP = "http://127.0.0.1:5004"  # a second resource the server issues tokens for
CALLBACK = "http://127.0.0.1/mcp-callback"
SDK_REQUEST = {  # what the MCP SDK's OAuthClientProvider sends, defaults and all
    "redirect_uris": [CALLBACK],
    "token_endpoint_auth_method": "none",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "scope": "project:read",
    "client_name": "an MCP client",
    "application_type": "native",
}


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db_path = str(tmp_path_factory.mktemp("registration") / "auth.sqlite3")
    with running(db_path, resources=[MCP]) as base:  # type: ignore[arg-type]
        yield base


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def register(http: httpx.Client, issuer: str, body: Any = None, **changes: Any) -> httpx.Response:
    payload = {**SDK_REQUEST, **changes} if body is None else body
    return http.post(f"{issuer}/register", json={k: v for k, v in payload.items() if v is not None})


def authorize(
    http: httpx.Client, issuer: str, client_id: str, redirect_uri: str, **query: Any
) -> httpx.Response:
    """The scripted sign-in of user-admin for acme, as the demo's MCP client does it."""
    params = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": "project:read",
        "state": "state-1",
        "code_challenge": create_s256_code_challenge(VERIFIER),
        "code_challenge_method": "S256",
        **query,
    }
    login = {"username": "user-admin", "password": PASSWORDS["user-admin"], "org": "acme"}
    return http.post(f"{issuer}/authorize", params=params, data=login, follow_redirects=False)


def redirected(response: httpx.Response, redirect_uri: str) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == redirect_uri
    return {name: values[0] for name, values in parse_qs(location.query).items()}


def exchange(
    http: httpx.Client, issuer: str, client_id: str, redirect_uri: str, code: str, **extra: str
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": VERIFIER,
        **extra,
    }
    return http.post(f"{issuer}/token", data=form)


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


# -- registration (RFC 7591) ---------------------------------------------------------------------


def test_the_metadata_names_the_registration_endpoint(issuer: str, http: httpx.Client) -> None:
    metadata = http.get(f"{issuer}/.well-known/oauth-authorization-server").json()
    assert metadata["registration_endpoint"] == f"{issuer}/register"


def test_a_public_client_registers_and_runs_the_code_flow_for_a_resource(
    issuer: str, http: httpx.Client
) -> None:
    registered = register(http, issuer)
    assert registered.status_code == 201
    assert registered.headers["cache-control"] == "no-store"
    answer = registered.json()
    client_id = answer.pop("client_id")
    assert client_id.startswith("dyn-") and len(client_id) > 20
    assert isinstance(answer.pop("client_id_issued_at"), int)
    # What was registered, which is less than asked: no refresh_token grant, every scope.
    assert answer == {
        "redirect_uris": [CALLBACK],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "scope": " ".join(ALL_SCOPES),
        "client_name": "an MCP client",
    }

    code = redirected(authorize(http, issuer, client_id, CALLBACK, resource=MCP), CALLBACK)["code"]
    token = exchange(http, issuer, client_id, CALLBACK, code, resource=MCP)
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["token_type"] == "Bearer" and "refresh_token" not in body
    assert (claims(body["access_token"])["aud"], body["scope"]) == (MCP, "project:read")
    assert claims(body["access_token"])["client_id"] == client_id

    # A public client: no secret, so no client credentials grant, and no other redirect URI.
    refused = http.post(f"{issuer}/token", data={"grant_type": "client_credentials", "client_id": client_id})
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
    elsewhere = authorize(http, issuer, client_id, "http://127.0.0.1/other")
    assert elsewhere.status_code == 400 and "location" not in elsewhere.headers


def test_scopes_stay_capped_by_the_role(issuer: str, http: httpx.Client) -> None:
    client_id = register(http, issuer).json()["client_id"]
    params = {"resource": MCP, "scope": "project:read project:write org:admin"}
    code = redirected(authorize(http, issuer, client_id, CALLBACK, **params), CALLBACK)["code"]
    token = exchange(http, issuer, client_id, CALLBACK, code).json()
    assert token["scope"] == "project:read project:write"  # an admin of acme, not an owner


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"redirect_uris": None}, "invalid_redirect_uri"),
        ({"redirect_uris": []}, "invalid_redirect_uri"),
        ({"redirect_uris": CALLBACK}, "invalid_redirect_uri"),
        (
            {"redirect_uris": [f"http://127.0.0.1:{port}/cb" for port in range(9000, 9005)]},
            "invalid_redirect_uri",
        ),
        ({"redirect_uris": ["https://client.example/callback"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://127.0.0.1.example.com/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://127.0.0.1/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://user@127.0.0.1/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://127.0.0.1/cb#fragment"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://127.0.0.1/cb?next=evil"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://127.0.0.1/a b"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://127.0.0.1:99999/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["http://127.0.0.1/" + "x" * 300]}, "invalid_redirect_uri"),
        ({"redirect_uris": [42]}, "invalid_redirect_uri"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "invalid_client_metadata"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "invalid_client_metadata"),
        ({"grant_types": ["client_credentials"]}, "invalid_client_metadata"),
        ({"grant_types": "authorization_code"}, "invalid_client_metadata"),
        ({"response_types": ["token"]}, "invalid_client_metadata"),
        ({"client_name": "x" * 101}, "invalid_client_metadata"),
        ({"client_name": "line\nbreak"}, "invalid_client_metadata"),
        ({"client_name": 7}, "invalid_client_metadata"),
    ],
)
def test_a_registration_it_cannot_honour_is_refused(
    issuer: str, http: httpx.Client, changes: dict[str, Any], error: str
) -> None:
    refused = register(http, issuer, **changes)
    assert refused.status_code == 400
    assert refused.json()["error"] == error
    assert refused.headers["cache-control"] == "no-store"


def test_loopback_redirect_uris_of_every_kind_are_registered(issuer: str, http: httpx.Client) -> None:
    uris = [
        "http://127.0.0.1:33418/callback",
        "http://[::1]:8080/cb",
        "http://localhost/cb",
        "http://localhost/cb",
    ]
    registered = register(http, issuer, redirect_uris=uris)
    assert registered.status_code == 201
    assert registered.json()["redirect_uris"] == uris[:3]  # the repeated one once
    minimal = register(http, issuer, body={"redirect_uris": [CALLBACK]})  # the rest defaults
    assert minimal.status_code == 201 and minimal.json()["token_endpoint_auth_method"] == "none"


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"[]", "application/json"),
        (b"{not json", "application/json"),
        (
            b'{"redirect_uris": ["http://127.0.0.1/a"], "redirect_uris": ["http://127.0.0.1/b"]}',
            "application/json",
        ),
        (b'{"redirect_uris": ["' + b"a" * MAX_REGISTRATION_BYTES + b'"]}', "application/json"),
        (b"redirect_uris=http://127.0.0.1/cb", "application/x-www-form-urlencoded"),
    ],
    ids=["not-an-object", "not-json", "duplicate-member", "too-large", "a-form"],
)
def test_a_body_that_is_not_one_small_json_object_is_refused(
    issuer: str, http: httpx.Client, content: bytes, content_type: str
) -> None:
    refused = http.post(f"{issuer}/register", content=content, headers={"Content-Type": content_type})
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_client_metadata"


def test_registrations_stop_at_the_limit_even_when_concurrent(tmp_path: Path, http: httpx.Client) -> None:
    with running(str(tmp_path / "auth.sqlite3"), max_registrations=3) as base:  # type: ignore[arg-type]
        with ThreadPoolExecutor(8) as pool:
            statuses = sorted(pool.map(lambda _: register(http, base).status_code, range(8)))
        assert statuses == [201, 201, 201, 403, 403, 403, 403, 403]
        refused = register(http, base)
        assert refused.status_code == 403 and refused.json()["error"] == "access_denied"
        # The seeded clients are not counted, and still work.
        token = http.post(
            f"{base}/token",
            data={"grant_type": "client_credentials", "scope": "project:read"},
            auth=(SERVICE_CLIENT, SERVICE_SECRET),
        )
        assert token.status_code == 200


# -- resource indicators (RFC 8707) --------------------------------------------------------------


def test_without_a_resource_the_token_is_for_the_api(issuer: str, http: httpx.Client) -> None:
    code = redirected(authorize(http, issuer, PUBLIC_CLIENT, REDIRECT_URI), REDIRECT_URI)["code"]
    token = exchange(http, issuer, PUBLIC_CLIENT, REDIRECT_URI, code).json()
    assert claims(token["access_token"])["aud"] == RESOURCE


def test_either_resource_may_be_named(issuer: str, http: httpx.Client) -> None:
    for resource in (RESOURCE, MCP):
        authorized = authorize(http, issuer, PUBLIC_CLIENT, REDIRECT_URI, resource=resource)
        code = redirected(authorized, REDIRECT_URI)["code"]
        token = exchange(http, issuer, PUBLIC_CLIENT, REDIRECT_URI, code).json()  # named once is enough
        assert claims(token["access_token"])["aud"] == resource


@pytest.mark.parametrize(
    "resource", ["http://127.0.0.1:5005", MCP + "/", [MCP, RESOURCE]], ids=["unknown", "not-exact", "two"]
)
def test_an_unknown_or_second_resource_is_invalid_target_at_the_redirect_uri(
    issuer: str, http: httpx.Client, resource: str | list[str]
) -> None:
    for method in ("GET", "POST"):  # before the login form, and at the login
        if method == "GET":
            query = {
                "client_id": PUBLIC_CLIENT,
                "response_type": "code",
                "redirect_uri": REDIRECT_URI,
                "state": "state-1",
                "code_challenge": create_s256_code_challenge(VERIFIER),
                "code_challenge_method": "S256",
                "resource": resource,
            }
            response = http.get(f"{issuer}/authorize", params=query, follow_redirects=False)
        else:
            response = authorize(http, issuer, PUBLIC_CLIENT, REDIRECT_URI, resource=resource)
        params = redirected(response, REDIRECT_URI)
        assert (params["error"], params["state"]) == ("invalid_target", "state-1")
        assert "code" not in params


def test_a_code_is_exchanged_for_its_own_resource_only(issuer: str, http: httpx.Client) -> None:
    code = redirected(authorize(http, issuer, PUBLIC_CLIENT, REDIRECT_URI, resource=MCP), REDIRECT_URI)[
        "code"
    ]
    other = exchange(http, issuer, PUBLIC_CLIENT, REDIRECT_URI, code, resource=RESOURCE)
    assert other.status_code == 400 and other.json()["error"] == "invalid_target"
    unknown = exchange(http, issuer, PUBLIC_CLIENT, REDIRECT_URI, code, resource="http://127.0.0.1:5005")
    assert unknown.status_code == 400 and unknown.json()["error"] == "invalid_target"
    # Refused before it was spent: the right exchange still works.
    same = exchange(http, issuer, PUBLIC_CLIENT, REDIRECT_URI, code, resource=MCP)
    assert same.status_code == 200 and claims(same.json()["access_token"])["aud"] == MCP


def test_client_credentials_name_a_resource_too(issuer: str, http: httpx.Client) -> None:
    def token(**extra: str) -> httpx.Response:
        form = {"grant_type": "client_credentials", "scope": "project:read", **extra}
        return http.post(f"{issuer}/token", data=form, auth=(SERVICE_CLIENT, SERVICE_SECRET))

    assert claims(token(resource=MCP).json()["access_token"])["aud"] == MCP
    assert claims(token().json()["access_token"])["aud"] == RESOURCE
    refused = token(resource="https://elsewhere.example")
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_target"
    assert refused.headers["cache-control"] == "no-store"


def test_a_database_from_before_resource_indicators_gains_the_column(tmp_path: Path) -> None:
    path = str(tmp_path / "old.sqlite3")
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE codes (code TEXT PRIMARY KEY, client_id TEXT, user_id TEXT, org TEXT,"
            " redirect_uri TEXT, scope TEXT, code_challenge TEXT, code_challenge_method TEXT, issued_at REAL)"
        )
    db.close()
    store = Store(path)
    code = AuthorizationCode(
        "c", PUBLIC_CLIENT, "user-admin", "acme", REDIRECT_URI, "project:read", "x", "S256", 1000.0, MCP
    )
    store.save_code(code)
    assert store.find_code("c", PUBLIC_CLIENT, now=1001.0) == code
