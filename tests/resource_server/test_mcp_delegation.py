"""MCP tools and agents acting for people: per-tool Requirements (RFC 9470 step-up, actor rules)
and an actor ceiling (RFC 8693), through ``protect_mcp`` around a real MCP SDK server, driven by
the SDK's own client under uvicorn and by raw JSON-RPC POSTs in process. A refused call never runs
its tool; a tool sees the actor through ``current_access()``."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from policy import Actors, Requirement, Roles, parse_challenges
from resource_server import JWTVerifier
from resource_server.mcp import current_access, protect_mcp
from tests.resource_server.test_mcp import (
    ISSUER,
    METADATA,
    RESOURCE,
    bearer,
    call,
    client,
    mounted,
    run,
    serve,
)
from tests.support import AUDIENCE, NOW, FakeClock, Signer, jwks

ROLES = Roles({"admin": ["mcp:use", "project:read", "project:write", "project:admin"]})
TOOL_SCOPES = {
    "read_project": "project:read",
    "write_project": "project:write",
    "approve_release": Requirement("project:write", actors=()),  # the person, never an agent
    "delete_project": Requirement("project:admin", acr=["mfa"], max_age=300),
}
ACTORS = Actors({"agent:reporting": ["mcp:use", "project:read"]}, default="mcp:use")
EVERYTHING = "mcp:use project:read project:write project:admin"


def membership(subject: str, org: str | None) -> str | None:
    return "admin" if (subject, org) == ("user-1", "acme") else None


class Tools:
    """A real MCP SDK server whose tools record their runs and the actor they saw."""

    def __init__(self, **options: Any) -> None:
        self.calls: list[tuple[str, str | None, list[str]]] = []
        server = MCPServer("projects", log_level="WARNING")

        def record(name: str) -> str:
            access = current_access()
            actor = None if access.actor is None else access.actor.sub
            self.calls.append((name, actor, [a.sub for a in access.actors]))
            return f"{name} by {actor or access.subject}"

        for name in TOOL_SCOPES:
            server.tool(name=name)(lambda name=name: record(name))
        self.server = server
        self.app = server.streamable_http_app(streamable_http_path="/", **options)


@pytest.fixture
def verifier(es: Signer) -> JWTVerifier:
    return JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=FakeClock(NOW))


def protected(tools: Tools, verifier: JWTVerifier) -> Any:
    return mounted(
        tools,  # it has .server and .app, as test_mcp.Projects does
        protect_mcp(
            tools.app,
            verifier=verifier,
            roles=ROLES,
            membership=membership,
            tool_scopes=TOOL_SCOPES,
            default="mcp:use",
            org="org",
            resource=RESOURCE,
            authorization_servers=[ISSUER],
            actors=ACTORS,
        ),
    )


def tool_call(name: str) -> dict[str, Any]:
    return {**call(name), "params": {"name": name, "arguments": {}}}


def test_tools_enforce_the_ceiling_the_actor_rule_and_the_step_up(es: Signer, verifier: JWTVerifier) -> None:
    tools = Tools(stateless_http=True, json_response=True)
    app = protected(tools, verifier)
    person = bearer(es.token(scope=EVERYTHING, acr="mfa", auth_time=NOW - 10))
    password = bearer(es.token(scope=EVERYTHING, acr="pwd", auth_time=NOW - 10))
    reporting = bearer(es.token(scope=EVERYTHING, acr="mfa", auth_time=NOW, act={"sub": "agent:reporting"}))
    chained = bearer(
        es.token(
            scope=EVERYTHING,
            acr="mfa",
            auth_time=NOW,
            act={"sub": "agent:reporting", "act": {"sub": "agent:chat"}},
        )
    )

    async def scenario() -> None:
        async with client(tools, app) as http:

            async def post(name: str, headers: dict[str, str]) -> Any:
                return await http.post("/orgs/acme/mcp/", json=tool_call(name), headers=headers)

            for name in TOOL_SCOPES:  # the person, after a second factor: every tool
                assert (await post(name, person)).status_code == 200, name

            read = await post("read_project", chained)  # the tool sees the actor and the chain
            assert read.json()["result"]["content"][0]["text"] == "read_project by agent:reporting"

            # The agent's ceiling refuses a write the person could make: no token could help.
            capped = await post("write_project", reporting)
            assert capped.status_code == 403 and "www-authenticate" not in capped.headers

            # Only the person approves; an agent, even with the scope, never.
            refused = await post("approve_release", reporting)
            assert refused.status_code == 403 and "www-authenticate" not in refused.headers

            # RFC 9470: the scope is held, the authentication is too weak: 401 before the tool runs.
            weak = await post("delete_project", password)
            assert weak.status_code == 401
            (challenge,) = parse_challenges(weak.headers.get_list("www-authenticate"))
            assert challenge.get("error") == "insufficient_user_authentication"
            assert (challenge.get("acr_values"), challenge.get("max_age")) == ("mfa", "300")
            assert challenge.get("resource_metadata") == METADATA
            assert weak.json()["error"] == "insufficient_user_authentication"

    run(scenario)
    assert tools.calls == [
        *((name, None, []) for name in TOOL_SCOPES),
        ("read_project", "agent:reporting", ["agent:reporting", "agent:chat"]),
    ]


def test_the_sdk_client_is_refused_the_tool_until_the_person_steps_up(
    es: Signer, verifier: JWTVerifier
) -> None:
    """Over uvicorn with the SDK's client: the call is an HTTP 401 the client can act on (not a
    JSON-RPC error inside a 200), the tool does not run; with a token from a fresh second factor
    the same call runs."""
    tools = Tools()
    app = protected(tools, verifier)
    weak = es.token(scope=EVERYTHING, acr="pwd", auth_time=NOW - 10)
    strong = es.token(scope=EVERYTHING, acr="mfa", auth_time=NOW - 10)

    async def session_calling(token: str, *, refused: bool = False) -> Any:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
            streamable_http_client(f"{url}/orgs/acme/mcp/", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()  # the default scope (mcp:use): no step-up needed
            if not refused:
                return await session.call_tool("delete_project", {})
            with pytest.raises(MCPError):  # refused at the HTTP level: 401
                await session.call_tool("delete_project", {})

    async def scenario() -> None:
        await session_calling(weak, refused=True)
        async with httpx2.AsyncClient() as http:  # the same refusal, raw
            refused = await http.post(
                f"{url}/orgs/acme/mcp/", json=tool_call("delete_project"), headers=bearer(weak)
            )
        assert refused.status_code == 401
        (challenge,) = parse_challenges(refused.headers.get_list("www-authenticate"))
        assert challenge.get("error") == "insufficient_user_authentication"
        assert tools.calls == []
        result = await session_calling(strong)
        assert result.content[0].text == "delete_project by user-1"

    with serve(app) as url:
        run(scenario)
    assert tools.calls == [("delete_project", None, [])]


def test_a_requirement_in_tool_scopes_is_validated_at_start_up(verifier: JWTVerifier) -> None:
    tools = Tools()
    with pytest.raises(ValueError, match="no role grants"):
        protect_mcp(
            tools.app,
            verifier=verifier,
            roles=ROLES,
            membership=membership,
            tool_scopes={"x": Requirement("deploy:run", acr="mfa")},
            resource=RESOURCE,
            authorization_servers=[ISSUER],
        )
