"""The ASGI apps the uvicorn benchmark measures (``asgi_apps:create()``): one trivial route,
served bare by Starlette, behind ``resource_server.asgi.BearerMiddleware``, and by FastAPI bare
and with ``Depends(rs.require(...))``; and an MCP server's ``tools/call`` bare, behind the MCP
SDK's own bearer middleware (with ``McpTokenVerifier``) and behind ``protect_mcp``. Each of ours
also with DPoP accepted (RFC 9449), its proofs acceptable for the whole run.

The JWK Set to trust comes from the ``LOAD_JWKS`` environment variable; tokens are checked
against the real clock (the benchmark mints them seconds before it runs).
"""

# No `from __future__ import annotations`: FastAPI reads the endpoints' annotations at run time.

import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi import Depends, FastAPI
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from policy import Access, Roles
from resource_server.asgi import BearerMiddleware
from resource_server.dpop import DPoPVerifier
from resource_server.fastapi import ResourceServer
from resource_server.mcp import McpTokenVerifier, protect_mcp
from resource_server.tokens import JWTVerifier

ISSUER = "https://as.load.test"
AUDIENCE = "https://api.load.test"
ROLES = Roles({"admin": ["project:read", "project:write"]})
SCOPES = {"GET": "project:read"}


def membership(subject: str, org: str | None) -> str | None:
    return "admin" if (subject, org) == ("user-1", "acme") else None


async def projects(request: Any) -> JSONResponse:
    return JSONResponse({"org": request.path_params["org"], "projects": []})


def verifier(jwks: dict[str, Any]) -> JWTVerifier:
    return JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks)


def dpop_verifier() -> DPoPVerifier:
    """The benchmark mints its proofs before each run: they stay acceptable for an hour, and
    one key may sign as many as the run sends (the defaults: 60 s, 10,000 per key)."""
    return DPoPVerifier(max_age=3600, max_proofs_per_key=1_000_000)


def starlette_apps(jwks: dict[str, Any]) -> list[Mount]:
    """``/bare/...``, ``/mw/...`` and ``/mw-dpop/...``: the same Starlette route, bare, behind the
    middleware, and behind it with DPoP accepted."""
    route = [Route("/orgs/{org}/projects", projects)]

    def protected(dpop: DPoPVerifier | None) -> BearerMiddleware:
        return BearerMiddleware(
            Starlette(routes=route),
            verifier=verifier(jwks),
            roles=ROLES,
            membership=membership,
            routes={"/orgs/{org}/projects": SCOPES},
            dpop=dpop,
        )

    return [
        Mount("/bare", app=Starlette(routes=route)),
        Mount("/mw", app=protected(None)),
        Mount("/mw-dpop", app=protected(dpop_verifier())),
    ]


def fastapi_app(jwks: dict[str, Any]) -> FastAPI:
    """``/fastapi/bare/...``, ``/fastapi/trivial/...`` and ``/fastapi/rs/...``: one FastAPI app, a
    route without a dependency, with one that does nothing (the framework's own cost of a
    dependency), and with ``rs.require``; ``/fastapi/dpop/...`` the same with DPoP accepted."""
    app = FastAPI(openapi_url=None)
    rs = ResourceServer(verifier=verifier(jwks), roles=ROLES, membership=membership)
    require = rs.require(SCOPES)
    with_dpop = ResourceServer(
        verifier=verifier(jwks), roles=ROLES, membership=membership, dpop=dpop_verifier()
    ).require(SCOPES)

    @app.get("/bare/orgs/{org}/projects")
    async def bare(org: str) -> dict[str, Any]:
        return {"org": org, "projects": []}

    async def nothing() -> None:
        """A dependency that does nothing: what any dependency costs in FastAPI."""

    @app.get("/trivial/orgs/{org}/projects")
    async def trivial(org: str, _: Annotated[None, Depends(nothing)]) -> dict[str, Any]:
        return {"org": org, "projects": []}

    @app.get("/rs/orgs/{org}/projects")
    async def protected(org: str, access: Annotated[Access, Depends(require)]) -> dict[str, Any]:
        return {"org": org, "projects": []}

    @app.get("/dpop/orgs/{org}/projects")
    async def bound(org: str, access: Annotated[Access, Depends(with_dpop)]) -> dict[str, Any]:
        return {"org": org, "projects": []}

    rs.install(app, serve_metadata=False)
    return app


def mcp_server(**options: Any) -> MCPServer:
    """An MCP SDK server with one read tool, answering plain JSON without sessions (every
    ``tools/call`` a POST of its own, as a load generator sends them)."""
    server = MCPServer("projects", log_level="WARNING", **options)

    @server.tool()
    def read_project(name: str) -> str:
        return f"project {name}"

    return server


def mcp_apps(jwks: dict[str, Any]) -> tuple[list[Mount], list[MCPServer]]:
    """``/mcp/bare/``, ``/mcp/sdk/`` (the SDK's own bearer middleware with our
    ``McpTokenVerifier``), ``/mcp/rs/`` (``protect_mcp``) and ``/mcp/dpop/`` (``protect_mcp``
    with DPoP accepted): the same server, four ways."""
    bare, sdk, ours, bound = (
        mcp_server(),
        mcp_server(
            token_verifier=McpTokenVerifier(verifier(jwks)),
            auth=AuthSettings(issuer_url=ISSUER, resource_server_url=None, required_scopes=["project:read"]),
        ),
        mcp_server(),
        mcp_server(),
    )
    options = {
        "streamable_http_path": "/",
        "stateless_http": True,
        "json_response": True,
        "host": "127.0.0.1",
    }

    def protected(server: MCPServer, dpop: DPoPVerifier | None) -> Any:
        return protect_mcp(
            server.streamable_http_app(**options),
            verifier=verifier(jwks),
            roles=ROLES,
            membership=membership,
            tool_scopes={"read_project": "project:read"},
            resource=AUDIENCE,
            authorization_servers=[ISSUER],
            dpop=dpop,
        )

    mounts = [
        Mount("/mcp/bare", app=bare.streamable_http_app(**options)),
        Mount("/mcp/sdk", app=sdk.streamable_http_app(**options)),
        Mount("/mcp/rs", app=protected(ours, None)),
        Mount("/mcp/dpop", app=protected(bound, dpop_verifier())),
    ]
    return mounts, [bare, sdk, ours, bound]


def create() -> Starlette:
    jwks = json.loads(os.environ["LOAD_JWKS"])
    mcp_mounts, servers = mcp_apps(jwks)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:  # a mounted app's lifespan is not run
            for server in servers:
                await stack.enter_async_context(server.session_manager.run())
            yield

    mounts = [*starlette_apps(jwks), Mount("/fastapi", app=fastapi_app(jwks)), *mcp_mounts]
    return Starlette(routes=mounts, lifespan=lifespan)
