"""The demo's MCP server over real HTTP on loopback (uvicorn, every port chosen by the OS): the MCP
SDK's own client registers itself, reads, is refused the write tool with a challenge, steps up by
itself and writes; a member whose role cannot write gets no second authorization; and the server
refuses requests without a token, with another org's token or another resource's."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from demo import Demo, demo_servers, mcp_summary
from demo_auth_server import (
    PASSWORDS,
    PUBLIC_CLIENT,
    REDIRECT_URI,
    SERVICE_CLIENT,
    SERVICE_SECRET,
    fetch_token_with_code,
)
from demo_mcp import BASIC_SCOPE
from demo_mcp_client import EXPECTED_AUTHORIZATIONS, EXPECTED_MCP, mcp_story

from policy import parse_challenges
from tests.examples.test_demo_auth_server import VERIFIER
from tests.examples.test_demo_registration import exchange, redirected

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    with demo_servers() as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


def endpoint(demo: Demo, org: str = "acme") -> str:
    return f"{demo.mcp}/orgs/{org}/mcp/"


def service_token(demo: Demo, http: httpx.Client, **extra: str) -> str:
    """svc-reporting, a member of acme (read only), for the MCP server unless told otherwise."""
    form = {"grant_type": "client_credentials", "scope": "project:read", "resource": demo.mcp, **extra}
    response = http.post(f"{demo.issuer}/token", data=form, auth=(SERVICE_CLIENT, SERVICE_SECRET))
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def user_token(demo: Demo, http: httpx.Client, org: str, scope: str) -> str:
    """user-admin's token for ``org`` and the MCP server (RFC 8707), by the code flow with PKCE."""
    query = {
        "client_id": PUBLIC_CLIENT,
        "response_type": "code",
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "state": "state-1",
        "code_challenge": create_s256_code_challenge(VERIFIER),
        "code_challenge_method": "S256",
        "resource": demo.mcp,
    }
    login = {"username": "user-admin", "password": PASSWORDS["user-admin"], "org": org}
    response = http.post(f"{demo.issuer}/authorize", params=query, data=login, follow_redirects=False)
    code = redirected(response, REDIRECT_URI)["code"]
    return exchange(http, demo.issuer, PUBLIC_CLIENT, REDIRECT_URI, code).json()["access_token"]


def call(http: httpx.Client, url: str, token: str | None, tool: str, **arguments: Any) -> httpx.Response:
    message = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    headers = {**ACCEPT, **({"Authorization": f"Bearer {token}"} if token else {})}
    return http.post(url, json=message, headers=headers)


def bearer(response: httpx.Response) -> dict[str, str | None]:
    (challenge,) = parse_challenges(response.headers["www-authenticate"])
    assert challenge.is_scheme("Bearer")
    return dict(challenge.params)


# -- the MCP SDK's own client ---------------------------------------------------------------------


def test_the_sdk_client_reads_is_refused_steps_up_by_itself_and_writes(
    demo: Demo, http: httpx.Client, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = mcp_story(endpoint(demo))
    out = capsys.readouterr().out
    assert outcome.statuses == EXPECTED_MCP == [401, 200, 200, 403, 200]
    # It asked for the scope the 401 named, then for that and the one the 403 named.
    assert outcome.authorizations == ["project:read", "project:read project:write"]
    assert len(outcome.authorizations) == EXPECTED_AUTHORIZATIONS
    metadata = f"{demo.mcp}/.well-known/oauth-protected-resource"
    assert (
        f'WWW-Authenticate: Bearer realm="api", scope="project:read", resource_metadata="{metadata}"' in out
    )
    assert (
        f'WWW-Authenticate: Bearer realm="api", error="insufficient_scope", scope="project:write",'
        f' resource_metadata="{metadata}"'
    ) in out
    assert "(the client registered itself (RFC 7591): client_id dyn-" in out
    # Both tokens are for the MCP server (RFC 8707), and capped by the role as any token is.
    assert f"(granted 'project:read', a token for {demo.mcp})" in out
    assert f"(granted 'project:read project:write', a token for {demo.mcp})" in out
    assert 'created: {"id": ' in out and '"name": "from-mcp", "created_by": "user-admin"}' in out
    assert mcp_summary(outcome.statuses, outcome.authorizations) == (
        "MCP through the SDK's own client: [401, 200, 200, 403, 200], 2 authorizations"
        " (expected [401, 200, 200, 403, 200], 2)"
    )
    # The tools serve the API's projects: what the MCP client created, the API lists.
    api_token = fetch_token_with_code(
        demo.issuer,
        username="user-admin",
        password=PASSWORDS["user-admin"],
        org="acme",
        scope="project:read",
        client=http,
    )["access_token"]
    listed = http.get(f"{demo.resource}/orgs/acme/projects", headers={"Authorization": f"Bearer {api_token}"})
    mine = [p for p in listed.json()["projects"] if p["name"] == "from-mcp"]
    assert mine and all(p["created_by"] == "user-admin" for p in mine)


def test_a_member_is_refused_the_write_tool_and_not_sent_to_authorize_again(
    demo: Demo, capsys: pytest.CaptureFixture[str]
) -> None:
    outcome = mcp_story(endpoint(demo), username="user-member")
    out = capsys.readouterr().out
    # The member's role cannot write: the 403 has no challenge, as no token could help.
    assert outcome.statuses == [401, 200, 200, 403]
    assert outcome.authorizations == ["project:read"]
    refused = out.split("tools/call create_project -> 403\n", 1)[1]
    assert not refused.startswith("   WWW-Authenticate")
    assert "refused:" in refused


# -- the server's refusals, raw --------------------------------------------------------------------


def test_the_metadata_document_names_the_resource_and_the_authorization_server(
    demo: Demo, http: httpx.Client
) -> None:
    document = http.get(f"{demo.mcp}/.well-known/oauth-protected-resource").json()
    assert document == {
        "resource": demo.mcp,
        "authorization_servers": [demo.issuer],
        "scopes_supported": ["project:read", "project:write"],
        "bearer_methods_supported": ["header"],
    }


def test_no_token_is_a_401_naming_the_metadata_and_the_scope_to_start_with(
    demo: Demo, http: httpx.Client
) -> None:
    refused = call(http, endpoint(demo), None, "list_projects")
    assert refused.status_code == 401
    assert bearer(refused) == {
        "realm": "api",
        "scope": BASIC_SCOPE,
        "resource_metadata": f"{demo.mcp}/.well-known/oauth-protected-resource",
    }


def test_a_token_works_in_its_own_org_only(demo: Demo, http: httpx.Client) -> None:
    acme = service_token(demo, http)
    listed = call(http, endpoint(demo), acme, "list_projects")
    assert listed.status_code == 200
    assert {"id": 1, "name": "website"} in listed.json()["result"]["structuredContent"]["result"]
    other_org = call(http, endpoint(demo, "globex"), acme, "list_projects")
    assert other_org.status_code == 401
    assert bearer(other_org)["error"] == "invalid_token"

    globex = user_token(demo, http, "globex", "project:read")  # user-admin is a member of globex
    assert call(http, endpoint(demo, "globex"), globex, "list_projects").status_code == 200
    assert call(http, endpoint(demo), globex, "list_projects").status_code == 401


def test_a_token_for_another_resource_is_refused_both_ways(demo: Demo, http: httpx.Client) -> None:
    for_the_api = service_token(demo, http, resource=demo.resource)
    refused = call(http, endpoint(demo), for_the_api, "list_projects")
    assert refused.status_code == 401 and bearer(refused)["error"] == "invalid_token"
    for_mcp = service_token(demo, http)
    at_the_api = http.get(
        f"{demo.resource}/orgs/acme/projects", headers={"Authorization": f"Bearer {for_mcp}"}
    )
    assert at_the_api.status_code == 401


def test_the_write_tool_needs_the_write_scope(demo: Demo, http: httpx.Client) -> None:
    reader = call(
        http, endpoint(demo), user_token(demo, http, "acme", "project:read"), "create_project", name="r"
    )
    assert reader.status_code == 403
    assert (bearer(reader)["error"], bearer(reader)["scope"]) == ("insufficient_scope", "project:write")
    # A member whose role cannot write: 403 and no challenge.
    member = call(http, endpoint(demo), service_token(demo, http), "create_project", name="m")
    assert member.status_code == 403 and "www-authenticate" not in member.headers
    writer = user_token(demo, http, "acme", "project:read project:write")
    created = call(http, endpoint(demo), writer, "create_project", name="written")
    assert created.status_code == 200
    assert created.json()["result"]["structuredContent"]["name"] == "written"
    too_long = call(http, endpoint(demo), writer, "create_project", name="x" * 101)
    assert too_long.json()["result"]["isError"] is True


# -- the 401 scope, in process -------------------------------------------------------------------
