"""MCP servers: ``protect_mcp`` around a real MCP SDK server (``MCPServer`` with a read tool and a
write tool, its streamable-HTTP app), driven by the SDK's own client over uvicorn on loopback and
by raw JSON-RPC POSTs in process; and ``McpTokenVerifier`` inside the SDK's own bearer auth.
Every challenge is parsed back with ``policy.parse_challenges``; every tool counts its runs."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import httpx2
import pytest
import uvicorn
from mcp.client import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from policy import Challenge, Roles, parse_challenges
from resource_server import IntrospectionVerifier, JWTVerifier, TrustedIssuers
from resource_server.client import StepUpAuth
from resource_server.dpop import DPoPVerifier
from resource_server.mcp import McpTokenVerifier, ProtectedMcp, current_access, protect_mcp
from tests.support import AUDIENCE, DROP, ISSUER, NOW, FakeClock, JWKSServer, Signer, dpop_key, es256, jwks

RESOURCE = "https://api.test"  # the identifier tokens are issued for (AUDIENCE) and the metadata's
METADATA = f"{RESOURCE}/.well-known/oauth-protected-resource"
ROLES = Roles(
    {
        "reader": ["mcp:use", "project:read"],
        "writer": ["mcp:use", "project:read", "project:write"],
        "lead": ["mcp:use", "project:read", "project:write", "team:write"],
    }
)
MEMBERS = {
    ("reader-1", "acme"): "reader",
    ("writer-1", "acme"): "writer",
    ("writer-1", "globex"): "writer",
    ("lead-1", "acme"): "lead",
}
TOOL_SCOPES = {"read_project": "project:read", "write_project": "project:write"}
ALL = "mcp:use project:read project:write team:write"
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
BASE = "http://127.0.0.1:8000"  # the SDK's DNS-rebinding protection admits loopback hosts only


def membership(subject: str, org: str | None) -> str | None:
    return MEMBERS.get((subject, org))


class Projects:
    """A real MCP SDK server: a read tool, a write tool, and a tool ``tool_scopes`` never names.
    Each records its runs, and the read tool what ``current_access()`` and the SDK's
    ``get_access_token()`` say inside it."""

    def __init__(self, path: str = "/", **options: Any) -> None:
        self.calls: list[str] = []
        self.seen: list[tuple[str, str | None, list[str], str | None, list[str]]] = []
        server = MCPServer("projects", log_level="WARNING", **options.pop("server", {}))

        @server.tool()
        def read_project(name: str) -> str:
            self.calls.append("read_project")
            token = get_access_token()
            assert token is not None
            try:
                access = current_access()
            except RuntimeError:  # not behind protect_mcp: the SDK's own auth
                pass
            else:
                self.seen.append(
                    (access.subject, access.org, sorted(access.scopes), token.subject, token.scopes)
                )
            return f"project {name}"

        @server.tool()
        def write_project(name: str) -> str:
            self.calls.append("write_project")
            return f"saved {name}"

        @server.tool()
        def drop_everything() -> str:
            self.calls.append("drop_everything")
            return "dropped"

        self.server = server
        self.app = server.streamable_http_app(streamable_http_path=path, **options)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def verifier(es: Signer, clock: FakeClock) -> JWTVerifier:
    return JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock)


def protect(projects: Projects | Any, verifier: Any, **options: Any) -> ProtectedMcp:
    """``projects``' app (or any ASGI app) behind protect_mcp, the org from the mount path
    unless ``org=`` says otherwise."""
    settings: dict[str, Any] = {
        "roles": ROLES,
        "membership": membership,
        "tool_scopes": TOOL_SCOPES,
        "org": "org",
        "resource": RESOURCE,
        "authorization_servers": [ISSUER],
    }
    settings.update(options)
    app = projects.app if isinstance(projects, Projects) else projects
    return protect_mcp(app, verifier=verifier, **settings)


def mounted(projects: Projects, protected: ProtectedMcp) -> Starlette:
    """The MCP app under ``/orgs/{org}/mcp``, the metadata document at the root's well-known
    URL, and the SDK's session manager run by the enclosing app's lifespan."""
    return Starlette(
        routes=[
            Route(protected.metadata_path, protected.metadata_app),
            Mount("/orgs/{org}/mcp", app=protected),
        ],
        lifespan=lambda app: projects.server.session_manager.run(),
    )


def run(scenario: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(scenario())  # type: ignore[arg-type]


@asynccontextmanager
async def client(projects: Projects, app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of ``app`` (httpx's ASGI transport runs no lifespan: the SDK's
    session manager is started here)."""
    async with (
        projects.server.session_manager.run(),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as http,
    ):
        yield http


def call(tool: str, request_id: int = 1, **arguments: Any) -> dict[str, Any]:
    params = {"name": tool, "arguments": arguments or {"name": "apollo"}}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def rpc(method: str, request_id: int = 1, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


INITIALIZE = rpc(
    "initialize",
    protocolVersion="2025-11-25",
    capabilities={},
    clientInfo={"name": "test", "version": "1"},
)


def bearer(token: str) -> dict[str, str]:
    return {**HEADERS, "authorization": f"Bearer {token}"}


def challenge(response: httpx.Response | httpx2.Response) -> Challenge:
    (found,) = parse_challenges(response.headers["www-authenticate"])
    assert found.is_scheme("Bearer")
    return found


def stateless(**options: Any) -> Projects:
    return Projects(stateless_http=True, json_response=True, **options)


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` under uvicorn on a loopback socket bound to port 0 (the kernel picks a free one);
    connections queue in the backlog until the server, and the app's lifespan, have started."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    # log_config=None: uvicorn's loggers propagate (pytest sees them) and no global logging
    # configuration is installed.
    config = uvicorn.Config(
        app, lifespan="on", log_config=None, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# -- the SDK's own client, over loopback HTTP --------------------------------------------------------


def test_the_sdk_client_reads_and_is_refused_the_write_tool(es: Signer, verifier: JWTVerifier) -> None:
    projects = Projects()
    app = mounted(projects, protect(projects, verifier))
    # The member's role allows writing; the token was issued for reading only.
    token = es.token(sub="writer-1", scope="mcp:use project:read")

    async def scenario() -> None:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
            streamable_http_client(f"{url}/orgs/acme/mcp/", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()  # authentication only
            listed = await session.list_tools()  # authentication only
            assert {tool.name for tool in listed.tools} >= {"read_project", "write_project"}
            result = await session.call_tool("read_project", {"name": "apollo"})
            assert not result.is_error
            assert result.structured_content == {"result": "project apollo"}
            with pytest.raises(MCPError):  # refused at the HTTP level: 403
                await session.call_tool("write_project", {"name": "apollo"})
            with pytest.raises(MCPError) as unknown:
                await session.call_tool("drop_everything", {})
            assert unknown.value.error.code == -32602
            assert unknown.value.error.message == (
                "The tool drop_everything has no declared scopes, so it is refused"
            )

        # The same refusal, raw: the guard's 403 with a challenge a client can step up with.
        async with httpx2.AsyncClient() as http:
            refused = await http.post(
                f"{url}/orgs/acme/mcp/", json=call("write_project"), headers=bearer(token)
            )
        assert refused.status_code == 403
        found = challenge(refused)
        assert found.get("error") == "insufficient_scope"
        assert found.get("scope") == "project:write"
        assert found.get("resource_metadata") == METADATA

    with serve(app) as url:
        run(scenario)
    assert projects.calls == ["read_project"]
    assert projects.seen == [
        ("writer-1", "acme", ["mcp:use", "project:read"], "writer-1", ["mcp:use", "project:read"])
    ]


def test_the_sdk_client_steps_up_with_step_up_auth(es: Signer, verifier: JWTVerifier) -> None:
    """A client that answers 403 insufficient_scope by asking for the advertised scope: the
    write tool runs on the retry, in the same session (the new token is the same principal's)."""
    projects = Projects()
    app = mounted(projects, protect(projects, verifier))
    asked: list[list[str]] = []

    def token_for(scopes: frozenset[str] | None) -> str:
        asked.append(sorted(scopes or ()))
        return es.token(sub="writer-1", scope=" ".join(sorted(scopes or ())))

    async def scenario() -> None:
        async with (
            httpx2.AsyncClient(auth=StepUpAuth(token_for, scopes={"mcp:use", "project:read"})) as http,
            streamable_http_client(f"{url}/orgs/acme/mcp/", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await session.call_tool("read_project", {"name": "apollo"})
            result = await session.call_tool("write_project", {"name": "apollo"})
            assert result.structured_content == {"result": "saved apollo"}

    with serve(app) as url:
        run(scenario)
    assert asked == [["mcp:use", "project:read"], ["mcp:use", "project:read", "project:write"]]
    assert projects.calls == ["read_project", "write_project"]


def test_the_sdk_client_without_a_token_is_told_where_the_metadata_is(verifier: JWTVerifier) -> None:
    projects = Projects()
    app = mounted(projects, protect(projects, verifier))

    async def scenario() -> None:
        async with httpx2.AsyncClient() as http:
            refused = await http.post(f"{url}/orgs/acme/mcp/", json=INITIALIZE, headers=HEADERS)
            assert refused.status_code == 401
            found = challenge(refused)
            assert found.get("error") is None  # RFC 6750 §3.1: no credentials, no error code
            assert found.get("resource_metadata") == METADATA
            document = (await http.get(f"{url}/.well-known/oauth-protected-resource")).json()
        assert document == {
            "resource": RESOURCE,
            "authorization_servers": [ISSUER],
            "scopes_supported": ["project:read", "project:write"],
            "bearer_methods_supported": ["header"],
        }

    with serve(app) as url:
        run(scenario)


# -- raw JSON-RPC, in process ------------------------------------------------------------------------


def test_tools_are_decided_against_their_own_scopes(es: Signer, verifier: JWTVerifier) -> None:
    projects = stateless()
    app = mounted(projects, protect(projects, verifier))
    reader = bearer(es.token(sub="reader-1", scope=ALL))
    writer = bearer(es.token(sub="writer-1", scope=ALL))
    narrow = bearer(es.token(sub="writer-1", scope="project:read"))

    async def scenario() -> None:
        async with client(projects, app) as http:
            allowed = await http.post("/orgs/acme/mcp/", json=call("read_project"), headers=reader)
            assert allowed.status_code == 200
            assert allowed.json()["result"]["structuredContent"] == {"result": "project apollo"}

            # The role lacks project:write: no token could help, so no challenge.
            forbidden = await http.post("/orgs/acme/mcp/", json=call("write_project"), headers=reader)
            assert forbidden.status_code == 403
            assert "www-authenticate" not in forbidden.headers
            assert forbidden.json()["error"] == "forbidden"

            # The role has it, the token does not: step up.
            step_up = await http.post("/orgs/acme/mcp/", json=call("write_project"), headers=narrow)
            assert step_up.status_code == 403
            found = challenge(step_up)
            assert (found.get("error"), found.get("scope")) == ("insufficient_scope", "project:write")
            assert found.get("resource_metadata") == METADATA
            assert found.get("realm") == "api"

            written = await http.post("/orgs/acme/mcp/", json=call("write_project"), headers=writer)
            assert written.status_code == 200

    run(scenario)
    assert projects.calls == ["read_project", "write_project"]


def test_other_methods_need_authentication_only(es: Signer, verifier: JWTVerifier) -> None:
    projects = stateless()
    app = mounted(projects, protect(projects, verifier))
    # A member whose token carries none of the tools' scopes.
    headers = bearer(es.token(sub="reader-1", scope="profile"))

    async def scenario() -> None:
        async with client(projects, app) as http:
            initialized = await http.post("/orgs/acme/mcp/", json=INITIALIZE, headers=headers)
            assert initialized.status_code == 200
            listed = await http.post("/orgs/acme/mcp/", json=rpc("tools/list", 2), headers=headers)
            assert listed.status_code == 200
            assert {tool["name"] for tool in listed.json()["result"]["tools"]} >= {"read_project"}
            notified = await http.post(
                "/orgs/acme/mcp/",
                json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                headers=headers,
            )
            assert notified.status_code == 202
            refused = await http.post("/orgs/acme/mcp/", json=call("read_project"), headers=headers)
            assert refused.status_code == 403
            assert challenge(refused).get("scope") == "project:read"

    run(scenario)
    assert projects.calls == []


def test_a_default_requirement_covers_every_other_method(es: Signer, verifier: JWTVerifier) -> None:
    projects = Projects(json_response=True)
    app = mounted(projects, protect(projects, verifier, default="mcp:use"))
    without = bearer(es.token(sub="reader-1", scope="project:read"))
    with_it = bearer(es.token(sub="reader-1", scope="mcp:use"))

    async def scenario() -> None:
        async with client(projects, app) as http:
            refused = await http.post("/orgs/acme/mcp/", json=INITIALIZE, headers=without)
            assert refused.status_code == 403
            assert challenge(refused).get("scope") == "mcp:use"
            opened = await http.post("/orgs/acme/mcp/", json=INITIALIZE, headers=with_it)
            assert opened.status_code == 200
            # Both tokens are the same principal's (client, issuer, subject): one session.
            session = {
                "mcp-session-id": opened.headers["mcp-session-id"],
                "mcp-protocol-version": "2025-11-25",
            }
            listing = rpc("tools/list", 2)
            refused = await http.post("/orgs/acme/mcp/", json=listing, headers={**without, **session})
            assert (refused.status_code, challenge(refused).get("scope")) == (403, "mcp:use")
            listed = await http.post("/orgs/acme/mcp/", json=listing, headers={**with_it, **session})
            assert listed.status_code == 200
            # tools/call is decided by the tool's own map alone.
            allowed = await http.post(
                "/orgs/acme/mcp/", json=call("read_project", 3), headers={**without, **session}
            )
            assert allowed.status_code == 200
            # GET (the SSE stream) and DELETE (the end of a session) need authentication only:
            # they reach the SDK, which answers these (without a session id) itself.
            for method in ("GET", "DELETE"):
                answered = await http.request(method, "/orgs/acme/mcp/", headers=without)
                assert answered.status_code == 400
                assert answered.json()["error"]["message"] == "Bad Request: Missing session ID"
                anonymous = await http.request(method, "/orgs/acme/mcp/", headers=HEADERS)
                assert anonymous.status_code == 401

    run(scenario)
    assert projects.calls == ["read_project"]
    document = protect(projects, verifier, default="mcp:use").metadata_app.document
    assert document["scopes_supported"] == ["mcp:use", "project:read", "project:write"]


def test_alternatives_and_all_of_sets_per_tool(es: Signer, verifier: JWTVerifier) -> None:
    projects = stateless()
    scopes = {
        "read_project": ["project:read", "project:write"],  # either
        "write_project": [["project:write", "team:write"]],  # both
    }
    app = mounted(projects, protect(projects, verifier, tool_scopes=scopes))
    writer_only = bearer(es.token(sub="lead-1", scope="project:write"))
    both = bearer(es.token(sub="lead-1", scope="project:write team:write"))

    async def scenario() -> None:
        async with client(projects, app) as http:
            assert (
                await http.post("/orgs/acme/mcp/", json=call("read_project"), headers=writer_only)
            ).status_code == 200
            refused = await http.post("/orgs/acme/mcp/", json=call("write_project"), headers=writer_only)
            assert refused.status_code == 403
            assert challenge(refused).get("scope") == "project:write team:write"
            assert (
                await http.post("/orgs/acme/mcp/", json=call("write_project"), headers=both)
            ).status_code == 200

    run(scenario)
    assert projects.calls == ["read_project", "write_project"]


def test_a_tool_without_declared_scopes_is_a_json_rpc_error_and_never_runs(
    es: Signer, verifier: JWTVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    projects = stateless()
    app = mounted(projects, protect(projects, verifier))
    headers = bearer(es.token(sub="lead-1", scope=ALL))

    async def scenario() -> None:
        async with client(projects, app) as http:
            # The SDK has this tool; tool_scopes does not name it: unmapped tools never run.
            for name, message in (
                ("drop_everything", "The tool drop_everything has no declared scopes, so it is refused"),
                ("nothing-here", "The tool nothing-here has no declared scopes, so it is refused"),
                ("x" * 500, "The tool has no declared scopes, so it is refused"),  # not echoed
            ):
                answer = await http.post("/orgs/acme/mcp/", json=call(name, 7), headers=headers)
                assert answer.status_code == 400
                assert answer.json() == {
                    "jsonrpc": "2.0",
                    "id": 7,
                    "error": {"code": -32602, "message": message},
                }
            # Nobody learns which tools exist without a token.
            anonymous = await http.post("/orgs/acme/mcp/", json=call("drop_everything"), headers=HEADERS)
            assert anonymous.status_code == 401

    with caplog.at_level(logging.WARNING, logger="resource_server"):
        run(scenario)
    # The operator learns which tool lacks its entry in tool_scopes (a long name is not logged).
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "tools/call refused: tool_scopes declares no scopes for the tool 'drop_everything'" in warnings
    assert not any("x" * 129 in line for line in warnings)
    assert projects.calls == []


def test_the_org_comes_from_the_mount_path(es: Signer, verifier: JWTVerifier) -> None:
    projects = stateless()
    app = mounted(projects, protect(projects, verifier))
    acme_token = bearer(es.token(sub="writer-1", scope=ALL, org_id="acme"))
    globex_token = bearer(es.token(sub="writer-1", scope=ALL, org_id="globex"))
    unbound = bearer(es.token(sub="reader-1", scope=ALL, org_id=DROP))

    async def scenario() -> None:
        async with client(projects, app) as http:
            assert (
                await http.post("/orgs/acme/mcp/", json=call("read_project"), headers=acme_token)
            ).status_code == 200
            assert (
                await http.post("/orgs/globex/mcp/", json=call("read_project"), headers=globex_token)
            ).status_code == 200
            for path, headers in (("/orgs/acme/mcp/", globex_token), ("/orgs/globex/mcp/", acme_token)):
                crossed = await http.post(path, json=call("read_project"), headers=headers)
                assert crossed.status_code == 401
                found = challenge(crossed)
                assert found.get("error") == "invalid_token"
                assert found.get("error_description") == "the token is bound to a different organization"
            # A token bound to no org works where its subject is a member, and nowhere else.
            assert (
                await http.post("/orgs/acme/mcp/", json=call("read_project"), headers=unbound)
            ).status_code == 200
            outsider = await http.post("/orgs/globex/mcp/", json=call("read_project"), headers=unbound)
            assert outsider.status_code == 403
            assert "www-authenticate" not in outsider.headers

    run(scenario)
    assert [seen[:2] for seen in projects.seen] == [
        ("writer-1", "acme"),
        ("writer-1", "globex"),
        ("reader-1", "acme"),
    ]


def test_without_an_org_the_token_s_org_is_asked_about(es: Signer, verifier: JWTVerifier) -> None:
    projects = stateless(path="/mcp")
    protected = protect(projects, verifier, org=None, resource=f"{RESOURCE}/mcp")

    async def scenario() -> None:
        async with client(projects, protected) as http:
            acme = bearer(es.token(sub="reader-1", scope=ALL, org_id="acme"))
            assert (await http.post("/mcp", json=call("read_project"), headers=acme)).status_code == 200
            elsewhere = bearer(es.token(sub="reader-1", scope=ALL, org_id="globex"))
            assert (await http.post("/mcp", json=call("read_project"), headers=elsewhere)).status_code == 403

    run(scenario)
    assert [seen[:2] for seen in projects.seen] == [("reader-1", "acme")]


def test_an_org_variable_that_never_arrives_fails_closed(es: Signer, verifier: JWTVerifier) -> None:
    projects = stateless(path="/mcp")
    protected = protect(projects, verifier, org="org")  # but nothing sets path_params["org"]

    async def scenario() -> None:
        async with client(projects, protected) as http:
            headers = bearer(es.token(sub="writer-1", scope=ALL))
            refused = await http.post("/mcp", json=call("read_project"), headers=headers)
            assert refused.status_code == 403
            assert refused.json()["error_description"] == "this endpoint is misconfigured"

    run(scenario)
    assert projects.calls == []


def test_the_top_level_app_serves_its_own_metadata(verifier: JWTVerifier) -> None:
    projects = stateless(path="/mcp")
    dpop = DPoPVerifier(clock=verifier.clock)
    protected = protect(projects, verifier, org=None, resource=f"{RESOURCE}/mcp", dpop=dpop)
    assert protected.metadata_url == f"{RESOURCE}/.well-known/oauth-protected-resource/mcp"

    async def scenario() -> None:
        async with client(projects, protected) as http:
            served = await http.get("/.well-known/oauth-protected-resource/mcp")
            assert served.status_code == 200
            assert served.json() == {
                "resource": f"{RESOURCE}/mcp",
                "authorization_servers": [ISSUER],
                "scopes_supported": ["project:read", "project:write"],
                "bearer_methods_supported": ["header"],
                "dpop_signing_alg_values_supported": list(dpop.algorithms),
                "dpop_bound_access_tokens_required": False,
            }
            head = await http.head("/.well-known/oauth-protected-resource/mcp")
            assert (head.status_code, head.content) == (200, b"")
            # Only reading it is public: any other request there is checked like every other.
            assert (await http.post("/.well-known/oauth-protected-resource/mcp", json={})).status_code == 401
            challenges = parse_challenges(
                (await http.post("/mcp", json=call("read_project"))).headers["www-authenticate"]
            )
            assert challenges[0].get("resource_metadata") == protected.metadata_url
            assert challenges[1].is_scheme("DPoP")

    run(scenario)


def test_sessions_are_bound_to_the_principal_that_opened_them(es: Signer, verifier: JWTVerifier) -> None:
    """protect_mcp gives the SDK its authenticated user, so a session id learned by another
    member is worth nothing to them."""
    projects = Projects(json_response=True)
    app = mounted(projects, protect(projects, verifier))
    owner = bearer(es.token(sub="writer-1", scope=ALL))
    other = bearer(es.token(sub="reader-1", scope=ALL))

    async def scenario() -> None:
        async with client(projects, app) as http:
            opened = await http.post("/orgs/acme/mcp/", json=INITIALIZE, headers=owner)
            assert opened.status_code == 200
            session = {
                "mcp-session-id": opened.headers["mcp-session-id"],
                "mcp-protocol-version": "2025-11-25",
            }
            stolen = await http.post(
                "/orgs/acme/mcp/", json=call("read_project"), headers={**other, **session}
            )
            assert stolen.status_code == 404  # the SDK: "Session not found"
            used = await http.post(
                "/orgs/acme/mcp/", json=call("read_project", 2), headers={**owner, **session}
            )
            assert used.status_code == 200

    run(scenario)
    assert projects.calls == ["read_project"]


def test_dpop_bound_tokens(es: Signer, verifier: JWTVerifier, clock: FakeClock) -> None:
    projects = stateless()
    app = mounted(projects, protect(projects, verifier, dpop=DPoPVerifier(clock=clock)))
    key = dpop_key("ES256")
    token = es.token(sub="writer-1", scope=ALL, cnf={"jkt": key.jkt})
    url = f"{RESOURCE}/orgs/acme/mcp/"  # the resource's origin and the path the client used

    async def scenario() -> None:
        async with client(projects, app) as http:
            proof = key.proof("POST", url, access_token=token)
            headers = {**HEADERS, "authorization": f"DPoP {token}", "dpop": proof}
            assert (
                await http.post("/orgs/acme/mcp/", json=call("write_project"), headers=headers)
            ).status_code == 200
            replayed = await http.post("/orgs/acme/mcp/", json=call("write_project"), headers=headers)
            assert replayed.status_code == 401
            assert (
                parse_challenges(replayed.headers["www-authenticate"])[0].get("error") == "invalid_dpop_proof"
            )
            downgraded = await http.post("/orgs/acme/mcp/", json=call("write_project"), headers=bearer(token))
            assert downgraded.status_code == 401

    run(scenario)
    assert projects.calls == ["write_project"]


def test_an_unreachable_authorization_server_is_a_503(es: Signer, clock: FakeClock) -> None:
    with JWKSServer(jwks(es)).running() as keys:
        keys.status = 500
        remote = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=keys.url, clock=clock)
        projects = stateless()
        app = mounted(projects, protect(projects, remote))

        async def scenario() -> None:
            async with client(projects, app) as http:
                answer = await http.post(
                    "/orgs/acme/mcp/", json=call("read_project"), headers=bearer(es.token(sub="reader-1"))
                )
                assert answer.status_code == 503
                assert answer.headers["retry-after"]
                assert "www-authenticate" not in answer.headers

        run(scenario)
    assert projects.calls == []


def test_a_websocket_never_reaches_the_app(verifier: JWTVerifier) -> None:
    projects = stateless()
    protected = protect(projects, verifier)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    run(lambda: protected({"type": "websocket", "path": "/", "headers": []}, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1008}]


def test_configuration_is_checked_at_construction(verifier: JWTVerifier) -> None:
    projects = stateless()
    bad: list[tuple[dict[str, Any], str]] = [
        ({"tool_scopes": {"write_project": "project:write team:write"}}, "tool_scopes['write_project']"),
        ({"tool_scopes": {"write_project": []}}, "tool_scopes['write_project']"),
        ({"tool_scopes": {"write_project": [[]]}}, "tool_scopes['write_project']"),
        ({"tool_scopes": {"write_project": "bad\\scope"}}, "tool_scopes['write_project']"),
        ({"tool_scopes": {"": "project:read"}}, "tool name"),
        ({"tool_scopes": ["read_project"]}, "mapping"),
        ({"default": 3}, "default"),
        # A scope no role grants: the tool (or every other method) would be refused to everyone.
        (
            {"tool_scopes": {**TOOL_SCOPES, "write_project": "project:wirte"}},
            "tool_scopes['write_project'] requires project:wirte, which no role grants",
        ),
        ({"default": ["mcp:use", "mcp:uze"]}, "default requires mcp:uze, which no role grants"),
        ({"resource": "https://api.test/#mcp"}, "resource"),
        ({"resource": "/mcp"}, "resource"),
        ({"authorization_servers": []}, "authorization_servers"),
        ({"authorization_servers": ["as.test"]}, "authorization_servers"),
        ({"org": ""}, "org"),
        ({"max_body_bytes": 0}, "max_body_bytes"),
    ]
    for options, named in bad:
        with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("]", r"\]")):
            protect(projects, verifier, **options)


def test_authorization_servers_default_to_the_issuers_of_the_verifier(
    es: Signer, verifier: JWTVerifier, clock: FakeClock
) -> None:
    """As FastAPI's: unset, the RFC 9728 document names the issuers the verifier accepts tokens
    from; given, what was given; a verifier that names none needs them given."""
    projects = stateless()

    def servers(verifier: Any, **options: Any) -> Any:
        return protect(projects, verifier, **options).metadata_app.document["authorization_servers"]

    assert servers(verifier, authorization_servers=None) == [ISSUER]
    globex = JWTVerifier(issuer="https://globex.test", audience=AUDIENCE, jwks=jwks(es), clock=clock)
    trusted = TrustedIssuers([verifier, globex])
    assert servers(trusted, authorization_servers=None) == [ISSUER, "https://globex.test"]
    assert servers(trusted, authorization_servers="https://as.test") == ["https://as.test"]
    assert servers(trusted, authorization_servers={"https://as.test"}) == ["https://as.test"]
    opaque = IntrospectionVerifier(
        endpoint="https://as.test/introspect", client_id="rs", client_secret="s" * 32, audience=AUDIENCE
    )
    assert servers(opaque, authorization_servers=["https://as.test"]) == ["https://as.test"]
    with pytest.raises(ValueError, match="the verifier names no issuer"):
        servers(opaque, authorization_servers=None)


# -- McpTokenVerifier: this library's verification inside the SDK's own bearer auth ---------------

#: The SDK's bearer backend also compares ``expires_at`` with the wall clock (time.time()), so
#: these tokens live at an instant no test run will reach.
FAR = 4_102_444_800  # 2100-01-01T00:00:00Z
MCP_RESOURCE = "https://mcp.test/mcp"


class Recording:
    """A verifier that records the thread each verification ran on (the real JWTVerifier inside)."""

    def __init__(self, inner: JWTVerifier) -> None:
        self.inner = inner
        self.threads: list[int] = []
        self.max_token_bytes = inner.max_token_bytes
        self.audiences = inner.audiences

    @property
    def clock(self) -> Callable[[], float]:
        return self.inner.clock

    def verify(self, token: str) -> Any:
        self.threads.append(threading.get_ident())
        return self.inner.verify(token)


def test_mcp_token_verifier_maps_a_verified_token(es: Signer) -> None:
    clock = FakeClock(NOW)
    verifier = Recording(JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock))
    adapter = McpTokenVerifier(verifier)
    token = es.token(sub="user-9", scope="project:write project:read", client_id="agent-7")

    async def scenario() -> None:
        loop = threading.get_ident()
        first = await adapter.verify_token(token)
        assert first is not None
        assert (first.token, first.client_id, first.scopes) == (
            token,
            "agent-7",
            ["project:read", "project:write"],
        )
        assert (first.expires_at, first.subject, first.resource) == (NOW + 600, "user-9", AUDIENCE)
        assert first.claims is not None and first.claims["iss"] == ISSUER
        assert verifier.threads and verifier.threads[0] != loop  # verified off the event loop
        assert await adapter.verify_token(token) is first  # then answered from memory
        assert len(verifier.threads) == 1
        clock.advance(600 + verifier.inner.leeway + 1)  # past exp and the leeway: verified again
        assert await adapter.verify_token(token) is None
        assert len(verifier.threads) == 2

    run(scenario)


def test_mcp_token_verifier_picks_the_resource_from_a_list_audience(es: Signer) -> None:
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=FakeClock(NOW))

    async def scenario() -> None:
        listed = es.token(aud=["https://other.test", AUDIENCE])
        assert (await McpTokenVerifier(verifier).verify_token(listed)).resource == AUDIENCE  # type: ignore[union-attr]
        chosen = McpTokenVerifier(verifier, resource="https://other.test")
        assert (await chosen.verify_token(listed)).resource == "https://other.test"  # type: ignore[union-attr]
        unnamed = await McpTokenVerifier(verifier).verify_token(es.token(client_id=DROP))
        assert unnamed is not None and unnamed.client_id == ""

    run(scenario)


def test_mcp_token_verifier_refusals_are_none(
    es: Signer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    stranger = es256("es-1")  # the same kid, another key
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock)

    async def scenario(adapter: McpTokenVerifier, token: str) -> Any:
        return await adapter.verify_token(token)

    adapter = McpTokenVerifier(verifier)
    for token in (stranger.token(), es.token(aud="https://elsewhere.test"), "not-a-token", ""):
        assert asyncio.run(scenario(adapter, token)) is None

    # The authorization server cannot be reached: the protocol has no 503, so None, logged as such.
    with JWKSServer(jwks(es)).running() as keys:
        keys.status = 500
        remote = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=keys.url, clock=clock)
        with caplog.at_level(logging.ERROR, logger="resource_server"):
            assert asyncio.run(scenario(McpTokenVerifier(remote), es.token())) is None
    assert any("cannot be verified now" in record.getMessage() for record in caplog.records)


def test_mcp_token_verifier_logs_the_reason_of_a_refusal(
    es: Signer, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """As the guard does: the log line says what was received and what was expected (the
    ``InvalidToken`` reason), the client learns only that the token is not accepted."""
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock)
    token = es.token(iss="https://impostor.test")
    with caplog.at_level(logging.INFO, logger="resource_server"):
        assert asyncio.run(McpTokenVerifier(verifier).verify_token(token)) is None
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("401 invalid_token")]
    assert "'https://impostor.test'" in line and repr(ISSUER) in line


def test_mcp_token_verifier_inside_the_sdk_s_own_auth(es: Signer) -> None:
    clock = FakeClock(FAR)
    verifier = JWTVerifier(issuer=ISSUER, audience=MCP_RESOURCE, jwks=jwks(es), clock=clock)
    projects = Projects(
        path="/mcp",
        stateless_http=True,
        json_response=True,
        server={
            "token_verifier": McpTokenVerifier(verifier),
            "auth": AuthSettings(
                issuer_url=ISSUER,
                resource_server_url=MCP_RESOURCE,
                validate_token_resource=True,
                required_scopes=["project:read"],
            ),
        },
    )
    seen: list[Any] = []

    @projects.server.tool()
    def whoami() -> str:
        token = get_access_token()
        seen.append((token.subject, token.client_id, token.resource) if token else None)
        return "ok"

    def minted(**claims: Any) -> dict[str, str]:
        return bearer(es.token(now=FAR, **{"aud": MCP_RESOURCE, **claims}))

    async def scenario() -> None:
        async with projects.server.session_manager.run():
            transport = httpx.ASGITransport(projects.app)
            async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
                allowed = await http.post(
                    "/mcp", json=call("whoami", arguments={}), headers=minted(sub="user-5")
                )
                assert allowed.status_code == 200
                assert allowed.json()["result"]["structuredContent"] == {"result": "ok"}
                for headers in (HEADERS, minted(aud="https://other.test"), minted(iss="https://evil.test")):
                    refused = await http.post("/mcp", json=call("whoami", arguments={}), headers=headers)
                    assert refused.status_code == 401
                    assert "resource_metadata=" in refused.headers["www-authenticate"]
                under = await http.post(
                    "/mcp", json=call("whoami", arguments={}), headers=minted(scope="profile")
                )
                assert under.status_code == 403  # the SDK's required_scopes
                document = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
                assert document["resource"] == MCP_RESOURCE

    run(scenario)
    assert seen == [("user-5", "client-1", MCP_RESOURCE)]


def test_the_sdk_client_through_the_sdk_s_auth_with_our_verifier(es: Signer) -> None:
    """The SDK server's own auth over loopback HTTP, driven by the SDK's client."""
    verifier = JWTVerifier(issuer=ISSUER, audience=MCP_RESOURCE, jwks=jwks(es), clock=FakeClock(FAR))
    projects = Projects(
        path="/mcp",
        server={
            "token_verifier": McpTokenVerifier(verifier),
            "auth": AuthSettings(
                issuer_url=ISSUER, resource_server_url=MCP_RESOURCE, validate_token_resource=True
            ),
        },
    )
    token = es.token(now=FAR, aud=MCP_RESOURCE, sub="user-5", scope="project:read")

    async def scenario() -> None:
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http,
            streamable_http_client(f"{url}/mcp", http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            # The SDK's auth knows no per-tool scopes: both tools run.
            await session.call_tool("read_project", {"name": "apollo"})
            await session.call_tool("write_project", {"name": "apollo"})

    with serve(projects.app) as url:
        run(scenario)
    assert projects.calls == ["read_project", "write_project"]
    assert projects.seen == []  # current_access() is protect_mcp's


def test_a_401_names_the_default_scope_so_clients_start_small(verifier: JWTVerifier) -> None:
    """The MCP authorization specification (2025-11-25): a server names in its 401 the scope a
    client should ask for first; without ``default`` there is none to name."""
    from policy import parse_challenges

    async def scenario(protected: ProtectedMcp, projects: Projects) -> list[Any]:
        async with client(projects, mounted(projects, protected)) as http:
            answers = [
                await http.post("/orgs/acme/mcp/", json=call("read_project"), headers=headers)
                for headers in (HEADERS, {**HEADERS, "authorization": "Bearer nope"})
            ]
        assert [answer.status_code for answer in answers] == [401, 401]
        return [parse_challenges(answer.headers["www-authenticate"])[0] for answer in answers]

    with_default = stateless()
    protected = protect(with_default, verifier, default="project:read")
    for challenge in run(lambda: scenario(protected, with_default)):
        assert challenge.params["scope"] == "project:read" and challenge.params["resource_metadata"]
    without = stateless()
    for challenge in run(lambda: scenario(protect(without, verifier), without)):
        assert "scope" not in challenge.params


def test_the_sdk_verifier_refuses_a_dpop_bound_token(es: Signer, verifier: JWTVerifier) -> None:
    """RFC 9449 §7.2: the SDK's bearer auth checks no proof, so a bound token is not accepted
    there (a stolen one would work without its key)."""
    mcp_verifier = McpTokenVerifier(verifier)
    assert run(lambda: mcp_verifier.verify_token(es.token())) is not None
    bound = es.token(cnf={"jkt": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"})
    assert run(lambda: mcp_verifier.verify_token(bound)) is None


def test_the_caller_s_context_holds_no_grant_after_the_call(es: Signer, verifier: JWTVerifier) -> None:
    """``current_access()`` and the SDK's ``get_access_token()`` hold the caller while the app
    runs, and nothing once ``protect_mcp`` returns: a server that awaits it in its own context
    (a test client, an ASGI app calling another) keeps no grant of a request that is over."""
    during: list[tuple[str, object]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        during.append((current_access().subject, get_access_token()))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    protected = protect(app, verifier, org=None)
    token = es.token(sub="reader-1", scope="mcp:use")
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "scheme": "https",
        "server": ("api.test", 443),
        "headers": [(b"host", b"api.test"), (b"authorization", f"Bearer {token}".encode())],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def scenario() -> tuple[bool, object]:
        await protected(scope, receive, send)
        try:
            current_access()
        except RuntimeError:
            return True, get_access_token()
        return False, get_access_token()

    cleared, sdk_token = run(scenario)
    assert sent[0]["status"] == 200
    assert [subject for subject, _ in during] == ["reader-1"] and during[0][1] is not None
    assert cleared and sdk_token is None
