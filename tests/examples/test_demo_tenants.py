"""The demo API behind TrustedIssuers, over real loopback servers: opaque tokens from acme's server
checked by introspection, and globex's own server trusted for globex only."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from demo import Demo, demo_servers, tenant_story
from demo_api import Introspection, create_api
from demo_auth_server import (
    API_CLIENT,
    GLOBEX_PASSWORDS,
    GLOBEX_SERVICE_CLIENT,
    GLOBEX_SERVICE_SECRET,
    OPAQUE_CLIENT,
    OPAQUE_SECRET,
    PASSWORDS,
    ROLES,
    fetch_token_client_credentials,
    fetch_token_with_code,
)

from policy import parse_challenges


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with demo_servers() as running:  # every port chosen by the OS
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def get(http: httpx.Client, demo: Demo, path: str, token: str) -> httpx.Response:
    return http.get(demo.resource + path, headers={"Authorization": f"Bearer {token}"})


def assert_invalid_token(response: httpx.Response, description: str) -> None:
    assert response.status_code == 401, response.text
    (challenge,) = parse_challenges(response.headers["www-authenticate"])
    assert challenge.is_scheme("Bearer") and challenge.get("error") == "invalid_token"
    assert challenge.get("error_description") == description
    assert response.json()["error"] == "invalid_token"


def opaque_token(http: httpx.Client, demo: Demo) -> str:
    return fetch_token_client_credentials(
        demo.issuer, client_id=OPAQUE_CLIENT, client_secret=OPAQUE_SECRET, scope="project:read", client=http
    )["access_token"]


def globex_user_token(http: httpx.Client, demo: Demo) -> str:
    return fetch_token_with_code(
        demo.globex,
        username="user-globex",
        password=GLOBEX_PASSWORDS["user-globex"],
        org="globex",
        scope="project:read",
        client=http,
    )["access_token"]


def test_an_opaque_token_is_accepted_through_introspection(demo: Demo, http: httpx.Client) -> None:
    token = opaque_token(http, demo)
    listing = get(http, demo, "/orgs/acme/projects", token)
    assert listing.status_code == 200 and listing.json()["subject"] == OPAQUE_CLIENT
    me = get(http, demo, "/me", token).json()
    assert me == {
        "subject": OPAQUE_CLIENT,
        "org": "acme",
        "effective_scopes": ["project:read"],
        "client_id": OPAQUE_CLIENT,
    }
    # Bound to acme like any token: the org check is the same whoever verified the token.
    assert_invalid_token(
        get(http, demo, "/orgs/globex/projects", token), "the token is bound to a different organization"
    )


def test_an_opaque_token_is_refused_a_write_its_role_does_not_hold(demo: Demo, http: httpx.Client) -> None:
    token = opaque_token(http, demo)
    response = http.post(
        f"{demo.resource}/orgs/acme/projects",
        json={"name": "x"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 403 and "www-authenticate" not in response.headers


def test_an_opaque_token_the_server_never_issued_is_invalid(demo: Demo, http: httpx.Client) -> None:
    assert_invalid_token(get(http, demo, "/orgs/acme/projects", "at_never-issued"), "the token is not active")


def test_a_globex_token_works_on_globex_and_is_refused_on_acme(demo: Demo, http: httpx.Client) -> None:
    token = globex_user_token(http, demo)
    listing = get(http, demo, "/orgs/globex/projects", token)
    assert listing.status_code == 200 and listing.json()["subject"] == "user-globex"
    assert_invalid_token(
        get(http, demo, "/orgs/acme/projects", token), "the token is bound to a different organization"
    )


def test_a_globex_service_token_is_bound_to_globex_too(demo: Demo, http: httpx.Client) -> None:
    token = fetch_token_client_credentials(
        demo.globex,
        client_id=GLOBEX_SERVICE_CLIENT,
        client_secret=GLOBEX_SERVICE_SECRET,
        scope="project:read",
        client=http,
    )["access_token"]
    assert get(http, demo, "/orgs/globex/team", token).status_code == 200
    assert_invalid_token(
        get(http, demo, "/orgs/acme/team", token), "the token is bound to a different organization"
    )


def test_an_acme_token_is_refused_on_globex(demo: Demo, http: httpx.Client) -> None:
    token = fetch_token_with_code(
        demo.issuer,
        username="user-member",
        password=PASSWORDS["user-member"],
        org="acme",
        scope="project:read",
        client=http,
    )["access_token"]
    assert get(http, demo, "/orgs/acme/projects", token).status_code == 200
    assert_invalid_token(
        get(http, demo, "/orgs/globex/projects", token), "the token is bound to a different organization"
    )


def test_the_metadata_names_both_authorization_servers(demo: Demo, http: httpx.Client) -> None:
    metadata = http.get(f"{demo.resource}/.well-known/oauth-protected-resource").json()
    assert set(metadata["authorization_servers"]) == {demo.issuer, demo.globex}


def test_wrong_introspection_credentials_are_503_not_401(
    demo: Demo, http: httpx.Client, tmp_path: Path
) -> None:
    """The API's own credentials refused is configuration to fix: the caller's token may be good."""
    misconfigured = create_api(
        issuer=demo.issuer,
        jwks_uri=f"{demo.issuer}/.well-known/jwks.json",
        resource=demo.resource,
        roles=ROLES,
        memberships=demo.memberships,
        passwords=PASSWORDS,
        grants_url=f"sqlite:///{tmp_path}/grants.sqlite3",
        introspection=Introspection(f"{demo.issuer}/introspect", API_CLIENT, "not-the-api-secret"),
    )
    token = opaque_token(http, demo)
    response = misconfigured.test_client().get(
        "/orgs/acme/projects", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    assert token not in response.get_data(as_text=True)


def test_the_demo_tells_the_opaque_and_tenant_story(demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    assert tenant_story(demo) == [200, 401, 201, 401]
    out = capsys.readouterr().out
    assert "14. an opaque token, which the API checks by introspection" in out
    assert 'error="invalid_token", error_description="the token is not active"' in out
    assert "POST /orgs/globex/projects -> 201" in out
