"""FastMCP 4 servers: ``protect_mcp`` around ``FastMCP(...).http_app()``, and
``FastMCPTokenVerifier`` as FastMCP's own ``auth=``; driven by FastMCP's own ``Client`` over
uvicorn on loopback, and by raw JSON-RPC POSTs. Every challenge is parsed back with
``policy.parse_challenges``; every tool counts its runs, so "refused before the tool runs" is
checked, not assumed."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qs

import httpx2
import pytest
import uvicorn
from fastmcp import Client, Context, FastMCP
from fastmcp.client.auth import ClientCredentialsOAuthProvider
from fastmcp.exceptions import ToolError
from fastmcp.server.dependencies import get_access_token
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from policy import Challenge, Roles, parse_challenges
from resource_server import JWTVerifier, TrustedIssuers
from resource_server.client import StepUpAuth
from resource_server.mcp import ProtectedMcp, current_access, current_token, protect_mcp
from resource_server.mcp.fastmcp import FastMCPTokenVerifier
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, JWKSServer, Signer, jwks

ROLES = Roles(
    {
        "reader": ["mcp:use", "project:read"],
        "writer": ["mcp:use", "project:read", "project:write"],
    }
)
MEMBERS: dict[tuple[str, str | None], str] = {
    ("reader-1", "acme"): "reader",
    ("writer-1", "acme"): "writer",
    ("writer-2", "acme"): "writer",
    ("agent-7", "acme"): "writer",  # the client-credentials client of the step-up test
}
TOOL_SCOPES = {
    "read_project": "project:read",
    "write_project": "project:write",
    "whoami": "mcp:use",
    "team_members": "project:read",  # a tool of a server mounted with namespace="team"
}
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def membership(subject: str, org: str | None) -> str | None:
    return MEMBERS.get((subject, org))


class Projects:
    """A real FastMCP server: a synchronous read tool (FastMCP runs it in a worker thread), an
    asynchronous write tool taking FastMCP's ``Context``, a tool of a mounted server, a tool
    ``tool_scopes`` never names, and a resource. Each records its runs and what
    ``current_access()`` and FastMCP's ``get_access_token()`` say inside it."""

    def __init__(self, **server: Any) -> None:
        self.calls: list[str] = []
        self.seen: list[tuple[str, str, str | None, list[str], str | None, list[str]]] = []
        mcp = FastMCP("projects", **server)

        @mcp.tool
        def read_project(name: str) -> str:
            self.record("read_project")
            return f"project {name}"

        @mcp.tool
        async def write_project(name: str, ctx: Context) -> str:
            await ctx.report_progress(1, 1)  # FastMCP's Context: sent back on the request's stream
            self.record("write_project")
            return f"saved {name}"

        @mcp.tool
        async def whoami() -> str:
            await asyncio.sleep(0)  # yield, so concurrent calls interleave
            return f"{current_access().subject} {current_token().claims['jti']}"

        @mcp.tool
        def drop_everything() -> str:
            self.calls.append("drop_everything")
            return "dropped"

        @mcp.resource("projects://{name}")
        def project(name: str) -> str:
            self.record("projects://")
            return f"the project {name}"

        team = FastMCP("team")

        @team.tool
        def members() -> list[str]:
            self.record("team_members")
            return ["ada", "grace"]

        mcp.mount(team, namespace="team")
        self.mcp = mcp

    def record(self, what: str) -> None:
        """What the component was run as: ``current_access()`` (this library) and FastMCP's
        ``get_access_token()`` (the SDK user the wrapper hands FastMCP)."""
        self.calls.append(what)
        access = current_access()
        token = get_access_token()
        assert token is not None
        self.seen.append(
            (what, access.subject, access.org, sorted(access.scopes), token.subject, sorted(token.scopes))
        )


def verifier(clock: FakeClock, es: Signer, issuer: str = ISSUER, audience: str = AUDIENCE) -> JWTVerifier:
    return JWTVerifier(issuer=issuer, audience=audience, jwks=jwks(es), clock=clock)


def protected_app(mcp: FastMCP, jwt_verifier: Any, **options: Any) -> Starlette:
    """``protect_mcp`` around the FastMCP app at ``/orgs/{org}/mcp/``, the RFC 9728 document at
    the root, and FastMCP's lifespan (its session manager) run by the enclosing app."""
    inner = mcp.http_app(path="/")
    settings: dict[str, Any] = {
        "verifier": jwt_verifier,
        "roles": ROLES,
        "membership": membership,
        "tool_scopes": TOOL_SCOPES,
        "org": "org",
        "resource": AUDIENCE,
        "authorization_servers": [ISSUER],
    }
    settings.update(options)
    protected: ProtectedMcp = protect_mcp(inner, **settings)
    return Starlette(
        routes=[
            Route(protected.metadata_path, protected.metadata_app),
            Mount("/orgs/{org}/mcp", app=protected),
        ],
        lifespan=inner.lifespan,
    )


@contextmanager
def serve(build: Callable[[str], Any]) -> Iterator[str]:
    """``build(url)`` under uvicorn on a loopback socket bound to port 0 (the kernel picks a free
    one, known before the app is built: a test's authorization server names its own URL);
    connections queue in the backlog until the server, and the app's lifespan, have started."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        build(url), lifespan="on", log_config=None, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def run(scenario: Callable[[], Any]) -> Any:
    return asyncio.run(scenario())


def call(tool: str, **arguments: Any) -> dict[str, Any]:
    params = {"name": tool, "arguments": arguments}
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}


def bearer(token: str) -> dict[str, str]:
    return {**HEADERS, "authorization": f"Bearer {token}"}


def challenge(response: httpx2.Response) -> Challenge:
    (found,) = parse_challenges(response.headers["www-authenticate"])
    assert found.is_scheme("Bearer")
    return found


# -- protect_mcp around mcp.http_app(), FastMCP's Client over loopback HTTP --------------------------


def test_fastmcp_s_client_is_answered_per_tool_before_fastmcp_runs_it(es: Signer) -> None:
    projects = Projects()
    clock = FakeClock(NOW)
    # The member's role allows writing; the token was issued for reading only.
    token = es.token(sub="writer-1", scope="mcp:use project:read")
    reader = es.token(sub="reader-1", scope="mcp:use project:read project:write")

    async def scenario() -> None:
        async with Client(f"{url}/orgs/acme/mcp/", auth=token) as client:
            listed = {tool.name for tool in await client.list_tools()}  # authentication only
            assert listed >= {"read_project", "write_project", "team_members", "drop_everything"}
            assert (await client.call_tool("read_project", {"name": "apollo"})).data == "project apollo"
            assert (await client.call_tool("team_members", {})).data == ["ada", "grace"]
            read = await client.read_resource("projects://apollo")  # default: authentication only
            assert read[0].text == "the project apollo"
            with pytest.raises(MCPError):  # refused at the HTTP level: 403
                await client.call_tool("write_project", {"name": "apollo"})
            with pytest.raises(MCPError) as unknown:
                await client.call_tool("drop_everything", {})
            assert unknown.value.error.code == -32602
            assert "has no declared scopes" in unknown.value.error.message
            # The session goes on: the refusals were answers, not broken connections.
            assert (await client.call_tool("read_project", {"name": "gemini"})).data == "project gemini"

        # The same refusal, raw: a real 403 naming the tool's own scope, and where to get it.
        async with httpx2.AsyncClient() as http:
            refused = await http.post(
                f"{url}/orgs/acme/mcp/", json=call("write_project", name="apollo"), headers=bearer(token)
            )
            assert refused.status_code == 403
            found = challenge(refused)
            assert (found.get("error"), found.get("scope")) == ("insufficient_scope", "project:write")
            assert found.get("resource_metadata") == f"{AUDIENCE}/.well-known/oauth-protected-resource"
            # The role lacks project:write: no token could help, so no challenge.
            forbidden = await http.post(
                f"{url}/orgs/acme/mcp/", json=call("write_project", name="apollo"), headers=bearer(reader)
            )
            assert forbidden.status_code == 403
            assert "www-authenticate" not in forbidden.headers

    with serve(lambda _: protected_app(projects.mcp, verifier(clock, es))) as url:
        run(scenario)
    assert projects.calls == ["read_project", "team_members", "projects://", "read_project"]
    effective = ["mcp:use", "project:read"]  # the role's and the token's in common
    assert projects.seen == [
        (what, "writer-1", "acme", effective, "writer-1", effective) for what in projects.calls
    ]


def test_current_access_is_each_request_s_own_in_concurrent_fastmcp_sessions(es: Signer) -> None:
    """FastMCP runs each message's handler in the session's task group, not the request's task:
    the grant travels with the message, so two clients calling at once each see their own."""
    projects = Projects()
    clock = FakeClock(NOW)

    async def session(subject: str) -> list[str]:
        answers = []
        async with Client(
            f"{url}/orgs/acme/mcp/", auth=es.token(sub=subject, jti=subject, scope="mcp:use")
        ) as client:
            for _ in range(5):
                answers.append((await client.call_tool("whoami", {})).data)
        return answers

    async def scenario() -> list[list[str]]:
        return list(await asyncio.gather(session("writer-1"), session("writer-2"), session("reader-1")))

    with serve(lambda _: protected_app(projects.mcp, verifier(clock, es))) as url:
        answers = run(scenario)
    assert answers == [[f"{subject} {subject}"] * 5 for subject in ("writer-1", "writer-2", "reader-1")]


def test_fastmcp_s_client_steps_up_with_step_up_auth(es: Signer) -> None:
    """FastMCP's ``Client(auth=...)`` takes any httpx2 ``Auth``: with ``StepUpAuth`` the refused
    write is asked for again with a token that also carries ``project:write``, in the same
    session, and runs once."""
    projects = Projects()
    clock = FakeClock(NOW)
    asked: list[list[str]] = []

    def token_for(scopes: frozenset[str] | None) -> str:
        asked.append(sorted(scopes or ()))
        return es.token(sub="writer-1", scope=" ".join(sorted(scopes or ())))

    async def scenario() -> None:
        auth = StepUpAuth(token_for, scopes={"mcp:use", "project:read"})
        async with Client(f"{url}/orgs/acme/mcp/", auth=auth) as client:
            assert (await client.call_tool("read_project", {"name": "apollo"})).data == "project apollo"
            assert (await client.call_tool("write_project", {"name": "apollo"})).data == "saved apollo"

    with serve(lambda _: protected_app(projects.mcp, verifier(clock, es))) as url:
        run(scenario)
    assert asked == [["mcp:use", "project:read"], ["mcp:use", "project:read", "project:write"]]
    assert projects.calls == ["read_project", "write_project"]


class AuthorizationServer:
    """A loopback OAuth 2.0 authorization server for one confidential client: RFC 8414 metadata
    and a ``client_credentials`` token endpoint (RFC 6749 §4.4) that issues what is asked for
    (RFC 8707 ``resource`` as the audience), recording each request's scope."""

    CLIENT = ("agent-7", "s" * 32)

    def __init__(self, issuer: str, es: Signer) -> None:
        self.issuer = issuer
        self.es = es
        self.asked: list[str] = []
        self.routes = [
            Route("/.well-known/oauth-authorization-server", self.metadata),
            Route("/token", self.token, methods=["POST"]),
        ]

    async def metadata(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "response_types_supported": ["code"],
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            }
        )

    async def token(self, request: Request) -> Response:
        form = {name: values[0] for name, values in parse_qs((await request.body()).decode()).items()}
        basic = request.headers.get("authorization", "").removeprefix("Basic ")
        presented = (
            tuple(base64.b64decode(basic).decode().split(":", 1))
            if basic
            else (form.get("client_id"), form.get("client_secret"))
        )
        if presented != self.CLIENT or form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        scope = form.get("scope", "")
        self.asked.append(scope)
        client_id = self.CLIENT[0]
        token = self.es.token(
            iss=self.issuer, aud=form["resource"], sub=client_id, client_id=client_id, scope=scope
        )
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": 600, "scope": scope}
        )


def test_fastmcp_s_client_credentials_provider_steps_up_by_itself(es: Signer) -> None:
    """FastMCP's own ``ClientCredentialsOAuthProvider`` (the MCP SDK's OAuth client): on the
    first 401 it finds the authorization server through ``resource_metadata`` (RFC 9728, then
    RFC 8414) and gets a token for the scopes it was configured with; on the tool's 403
    ``insufficient_scope`` it asks for those and the challenged one together, and resends."""
    projects = Projects()
    clock = FakeClock(NOW)
    servers: list[AuthorizationServer] = []

    def build(url: str) -> Starlette:
        authorization = AuthorizationServer(url, es)
        servers.append(authorization)
        # The resource is the server's origin, a prefix of the MCP URL, as the SDK's client asks.
        app = protected_app(
            projects.mcp,
            verifier(clock, es, issuer=url, audience=url),
            resource=url,
            authorization_servers=[url],
        )
        app.router.routes[:0] = authorization.routes
        return app

    async def scenario() -> None:
        id_, secret = AuthorizationServer.CLIENT
        auth = ClientCredentialsOAuthProvider(
            client_id=id_, client_secret=secret, scopes=["mcp:use", "project:read"], issuer=url
        )
        async with Client(f"{url}/orgs/acme/mcp/", auth=auth) as client:
            assert (await client.call_tool("read_project", {"name": "apollo"})).data == "project apollo"
            assert (await client.call_tool("write_project", {"name": "apollo"})).data == "saved apollo"

    with serve(build) as url:
        run(scenario)
    assert servers[0].asked == ["mcp:use project:read", "mcp:use project:read project:write"]
    assert projects.calls == ["read_project", "write_project"]


def test_fastmcp_s_own_component_checks_see_the_effective_scopes(es: Signer) -> None:
    """The wrapper hands FastMCP the effective scopes (the role's and the token's in common), so
    FastMCP's ``auth=require_scopes(...)`` on a component, when kept as a second layer, refuses
    what the member's role lacks even when the token carries it."""
    from fastmcp.server.auth import require_scopes

    projects = Projects()

    @projects.mcp.tool(auth=require_scopes("project:write"))
    def archive_project(name: str) -> str:
        projects.calls.append("archive_project")
        return f"archived {name}"

    clock = FakeClock(NOW)
    app = protected_app(
        projects.mcp, verifier(clock, es), tool_scopes={**TOOL_SCOPES, "archive_project": "mcp:use"}
    )
    everything = "mcp:use project:read project:write"

    async def scenario() -> None:
        async with Client(f"{url}/orgs/acme/mcp/", auth=es.token(sub="reader-1", scope=everything)) as reader:
            assert "archive_project" not in {tool.name for tool in await reader.list_tools()}
            # FastMCP's answer, inside an HTTP 200: the tool result is an error (fastmcp #4334).
            with pytest.raises(ToolError, match="Unknown tool: 'archive_project'"):
                await reader.call_tool("archive_project", {"name": "apollo"})
        async with Client(f"{url}/orgs/acme/mcp/", auth=es.token(sub="writer-1", scope=everything)) as writer:
            assert (await writer.call_tool("archive_project", {"name": "apollo"})).data == "archived apollo"

    with serve(lambda _: app) as url:
        run(scenario)
    assert projects.calls == ["archive_project"]


def test_a_proxy_tool_reaches_only_what_fastmcp_s_own_checks_allow(es: Signer) -> None:
    """A tool that calls other tools by name (a search transform's ``call_tool``) is decided as
    itself: the tools behind it keep FastMCP's own checks, which see the effective scopes."""
    from fastmcp.server.auth import require_scopes
    from fastmcp.server.transforms.search import RegexSearchTransform

    calls: list[str] = []
    mcp = FastMCP("projects")

    @mcp.tool(auth=require_scopes("project:read"))
    def read_project(name: str) -> str:
        calls.append("read_project")
        return f"project {name}"

    @mcp.tool(auth=require_scopes("project:write"))
    def write_project(name: str) -> str:
        calls.append("write_project")
        return f"saved {name}"

    mcp.add_transform(RegexSearchTransform())
    scopes = {**TOOL_SCOPES, "search_tools": "mcp:use", "call_tool": "mcp:use"}
    app = protected_app(mcp, verifier(FakeClock(NOW), es), tool_scopes=scopes)
    # The member may write; this token may not.
    token = es.token(sub="writer-1", scope="mcp:use project:read")

    async def scenario() -> None:
        async with Client(f"{url}/orgs/acme/mcp/", auth=token) as client:
            assert {tool.name for tool in await client.list_tools()} == {"search_tools", "call_tool"}
            through = await client.call_tool(
                "call_tool", {"name": "read_project", "arguments": {"name": "a"}}
            )
            assert through.data == "project a"
            with pytest.raises(ToolError, match="Unknown tool: 'write_project'"):
                await client.call_tool("call_tool", {"name": "write_project", "arguments": {"name": "a"}})
            with pytest.raises(MCPError):  # called by its own name: the wrapper's 403
                await client.call_tool("write_project", {"name": "a"})

    with serve(lambda _: app) as url:
        run(scenario)
    assert calls == ["read_project"]


# -- FastMCPTokenVerifier: FastMCP's own auth= with this library's verification ---------------------

#: The SDK's bearer backend (which FastMCP's auth uses) also compares ``expires_at`` with the wall
#: clock, so these tokens live at an instant no test run will reach.
FAR = 4_102_444_800  # 2100-01-01T00:00:00Z
BASE = "http://127.0.0.1:8000"
MCP_RESOURCE = f"{BASE}/mcp"
MCP_METADATA = f"{BASE}/.well-known/oauth-protected-resource/mcp"


def guarded(auth: FastMCPTokenVerifier) -> tuple[FastMCP, list[Any]]:
    """A FastMCP server with ``auth=``, whose tool records FastMCP's ``get_access_token()``."""
    mcp = FastMCP("projects", auth=auth)
    seen: list[Any] = []

    @mcp.tool
    def whoami() -> str:
        token = get_access_token()
        assert token is not None
        seen.append(
            (type(token).__name__, token.subject, token.client_id, token.resource, token.claims["iss"])
        )
        return str(token.subject)

    return mcp, seen


def fastmcp_auth(clock: FakeClock, es: Signer, **options: Any) -> FastMCPTokenVerifier:
    settings: dict[str, Any] = {"base_url": BASE, "required_scopes": ["mcp:use"]}
    settings.update(options)
    return FastMCPTokenVerifier(verifier(clock, es, audience=MCP_RESOURCE), **settings)


def minted(es: Signer, **claims: Any) -> str:
    return es.token(now=FAR, **{"aud": MCP_RESOURCE, "scope": "mcp:use", **claims})


async def posting(app: Any, *requests: tuple[str, dict[str, str]]) -> list[httpx2.Response]:
    """In-process POSTs of ``call("whoami")`` to ``app`` (its lifespan run here)."""
    async with (
        app.lifespan(app),
        httpx2.AsyncClient(transport=httpx2.ASGITransport(app), base_url=BASE) as http,
    ):
        return [await http.post(path, json=call("whoami"), headers=headers) for path, headers in requests]


def test_fastmcp_token_verifier_is_fastmcp_s_auth(es: Signer) -> None:
    """Over loopback HTTP with FastMCP's Client: the resource is ``base_url`` and the MCP path,
    and its RFC 9728 document is served where FastMCP's challenges say."""
    clock = FakeClock(FAR)
    seen: list[Any] = []

    def build(url: str) -> Any:
        auth = FastMCPTokenVerifier(
            verifier(clock, es, audience=f"{url}/mcp"),
            base_url=url,
            required_scopes=["mcp:use"],
            scopes_supported=["mcp:use", "project:read"],
        )
        mcp, recorded = guarded(auth)
        seen.append(recorded)
        return mcp.http_app()

    async def scenario() -> None:
        async with Client(f"{url}/mcp", auth=minted(es, sub="user-5", aud=f"{url}/mcp")) as client:
            assert (await client.call_tool("whoami", {})).data == "user-5"
        async with httpx2.AsyncClient() as http:
            anonymous = await http.post(f"{url}/mcp", json=call("whoami"), headers=HEADERS)
            metadata = challenge(anonymous).get("resource_metadata")
            assert metadata == f"{url}/.well-known/oauth-protected-resource/mcp"
            document = (await http.get(metadata)).json()
        assert document == {
            "resource": f"{url}/mcp",
            "authorization_servers": [ISSUER],
            "scopes_supported": ["mcp:use", "project:read"],
            "bearer_methods_supported": ["header"],
        }

    with serve(build) as url:
        run(scenario)
    assert seen == [[("AccessToken", "user-5", "client-1", f"{url}/mcp", ISSUER)]]


def test_fastmcp_token_verifier_answers_the_status_table(es: Signer) -> None:
    clock = FakeClock(FAR)
    mcp, seen = guarded(fastmcp_auth(clock, es))
    app = mcp.http_app(json_response=True, stateless_http=True)
    listed_audience = minted(es, sub="user-6", aud=["https://other.test", MCP_RESOURCE])
    answers = run(
        lambda: posting(
            app,
            ("/mcp", HEADERS),
            ("/mcp", bearer("not-a-token")),
            ("/mcp", bearer(minted(es, iss="https://evil.test"))),
            ("/mcp", bearer(minted(es, aud="https://other.test"))),
            ("/mcp", bearer(minted(es, cnf={"jkt": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"}))),
            ("/mcp", bearer(minted(es, scope="profile"))),
            ("/mcp", bearer(minted(es, sub="user-5"))),
            ("/mcp", bearer(listed_audience)),
        )
    )
    statuses = [answer.status_code for answer in answers]
    assert statuses == [401, 401, 401, 401, 401, 403, 200, 200]
    missing, *invalid = (challenge(answer) for answer in answers[:5])
    assert missing.get("error") is None  # RFC 6750 §3.1: no credentials, no error code
    assert {found.get("error") for found in invalid} == {"invalid_token"}
    under = challenge(answers[5])
    assert (under.get("error"), under.get("scope")) == ("insufficient_scope", "mcp:use")
    for found in (missing, *invalid, under):
        assert found.get("resource_metadata") == MCP_METADATA
    # A token issued for several audiences names this server's resource.
    assert seen == [
        ("AccessToken", "user-5", "client-1", MCP_RESOURCE, ISSUER),
        ("AccessToken", "user-6", "client-1", MCP_RESOURCE, ISSUER),
    ]


def test_fastmcp_token_verifier_answers_503_when_the_authorization_server_is_unreachable(
    es: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    """FastMCP's own providers raise ``TokenVerificationError`` into Starlette, which answers
    500; this provider answers 503 with ``Retry-After`` and no challenge, so the client keeps a
    token that may be good."""
    with JWKSServer(jwks(es)).running() as keys:
        keys.status = 500
        remote = JWTVerifier(issuer=ISSUER, audience=MCP_RESOURCE, jwks_uri=keys.url, clock=FakeClock(FAR))
        mcp, seen = guarded(FastMCPTokenVerifier(remote, base_url=BASE))
        app = mcp.http_app(json_response=True, stateless_http=True)
        with caplog.at_level(logging.ERROR, logger="resource_server"):
            (answer,) = run(lambda: posting(app, ("/mcp", bearer(minted(es)))))
    assert answer.status_code == 503
    assert answer.headers["retry-after"].isdigit()
    assert "www-authenticate" not in answer.headers
    assert answer.json()["error"] == "temporarily_unavailable"
    assert any("503 temporarily_unavailable" in record.getMessage() for record in caplog.records)
    assert seen == []


def test_fastmcp_token_verifier_without_base_url_serves_no_document(es: Signer) -> None:
    clock = FakeClock(FAR)
    mcp, _ = guarded(FastMCPTokenVerifier(verifier(clock, es, audience=MCP_RESOURCE)))
    app = mcp.http_app(json_response=True, stateless_http=True)
    (missing,) = run(lambda: posting(app, ("/mcp", HEADERS)))
    assert missing.status_code == 401
    assert challenge(missing).params == {}  # no resource_metadata pointing at a 404
    assert not [route for route in app.routes if getattr(route, "path", "").startswith("/.well-known/")]


def test_fastmcp_token_verifier_names_the_verifier_s_issuers(es: Signer) -> None:
    clock = FakeClock(FAR)
    globex = JWTVerifier(issuer="https://globex.test", audience=MCP_RESOURCE, jwks=jwks(es), clock=clock)
    trusted = TrustedIssuers([verifier(clock, es, audience=MCP_RESOURCE), globex])

    def document(auth: FastMCPTokenVerifier) -> dict[str, Any]:
        (route,) = auth.get_routes("/mcp")
        assert route.path == "/.well-known/oauth-protected-resource/mcp"
        return route.app.document  # type: ignore[attr-defined,no-any-return]  # a ResourceMetadata app

    assert document(FastMCPTokenVerifier(trusted, base_url=BASE))["authorization_servers"] == [
        ISSUER,
        "https://globex.test",
    ]
    given = FastMCPTokenVerifier(trusted, base_url=BASE, authorization_servers="https://as.example")
    assert document(given)["authorization_servers"] == ["https://as.example"]


def test_fastmcp_token_verifier_configuration_is_checked_at_construction(es: Signer) -> None:
    jwt_verifier = verifier(FakeClock(FAR), es)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"base_url": "mcp.example.com"}, "base_url"),
        ({"base_url": "https://mcp.example.com/#x"}, "base_url"),
        ({"authorization_servers": [ISSUER]}, "needs base_url"),
        ({"base_url": BASE, "authorization_servers": []}, "authorization_servers"),
        ({"required_scopes": "mcp:use project:read"}, "required_scopes"),
        ({"required_scopes": ["mcp use"]}, "invalid scope token"),
        ({"scopes_supported": ["bad\\scope"]}, "invalid scope token"),
    ]
    for options, named in bad:
        with pytest.raises(ValueError, match=named):
            FastMCPTokenVerifier(jwt_verifier, **options)
    with pytest.raises(TypeError, match="resource_server verifier"):
        FastMCPTokenVerifier(object())  # type: ignore[arg-type]  # the mistake checked
