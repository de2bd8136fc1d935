"""The demo's MCP server: an MCP SDK server (streamable HTTP) over the demo's projects, behind
this library's ``protect_mcp``.

Each organization's endpoint is ``/orgs/<org>/mcp/``. One resource, the server's own URL, covers
them all; its RFC 9728 document is at ``/.well-known/oauth-protected-resource`` and names the
demo's authorization server. A request needs an access token that server issued for this resource
(the client names it, RFC 8707, and the token's ``aud`` carries it), bound to the org of the URL,
of a member of that org. ``list_projects`` needs ``project:read``; ``create_project`` needs
``project:write``, decided before the SDK runs the tool: a token without it gets a 403 with
``error="insufficient_scope", scope="project:write"``, which MCP clients answer by authorizing
again for more. Opening a session, listing tools, any method but a tool call, needs
``project:read``, and a 401 says so (``scope="project:read"``), so that a client asks for that
much first and no more. ``delete_project`` needs ``project:write`` and a sign-in with the second
factor in the last five minutes (a :class:`policy.Requirement`, RFC 9470): a token of a password
sign-in gets ``401 insufficient_user_authentication`` with ``acr_values="mfa"``,
``max_age="300"``. Agents acting for people are capped as at the API (``demo_api.ACTORS``).

:func:`demo_servers` in demo.py runs it next to the others, on uvicorn.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

import uvicorn
from demo_api import ACTORS, MAX_PROJECT_NAME, STEP_UP_ACR, STEP_UP_MAX_AGE, Projects
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from policy import Requirement, Roles
from resource_server.mcp import current_access, protect_mcp
from resource_server.tokens import JWTVerifier

#: Each tool's scope; a tool not named here never runs.
TOOL_SCOPES = {
    "list_projects": "project:read",
    "create_project": "project:write",
    "delete_project": Requirement("project:write", acr=[STEP_UP_ACR], max_age=STEP_UP_MAX_AGE),
}
#: What every other method (initialize, tools/list, ...) needs, and what a 401 asks for.
BASIC_SCOPE = "project:read"

Message = MutableMapping[str, Any]
App = Callable[
    [Message, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


def create_mcp_app(
    *,
    issuer: str,
    resource: str,
    roles: Mapping[str, list[str]],
    memberships: Mapping[tuple[str, str], str],
    projects: Projects,
    jwks_uri: str | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The MCP server for tokens from ``issuer`` (keys from ``jwks_uri``, by default the demo
    authorization server's) issued for ``resource``, this server's URL; ``memberships`` maps
    ``(subject, org)`` to a role in ``roles``; ``projects`` is the data its tools serve;
    ``clock`` the time tokens and sign-ins are checked at."""
    server = MCPServer("demo-projects", log_level="WARNING")

    @server.tool()
    def list_projects() -> list[dict[str, Any]]:
        """The projects of the organization in the URL."""
        return projects.list(current_access().org or "")

    @server.tool()
    def create_project(name: str) -> dict[str, Any]:
        """Create a project in the organization in the URL."""
        if not 0 < len(name) <= MAX_PROJECT_NAME:
            raise ValueError(f"name must be 1-{MAX_PROJECT_NAME} characters")
        access = current_access()
        return projects.create(access.org or "", name, access.subject)

    @server.tool()
    def delete_project(project_id: int) -> dict[str, Any]:
        """Delete a project of the organization in the URL (a recent sign-in with mfa only)."""
        access = current_access()
        if not projects.delete(access.org or "", project_id):
            raise ValueError("no such project")
        return {"deleted": project_id, "by": access.subject, "acr": access.acr}

    protected = protect_mcp(
        # Stateless, JSON answers: every request stands alone and carries its own token.
        server.streamable_http_app(streamable_http_path="/", stateless_http=True, json_response=True),
        verifier=JWTVerifier(
            issuer=issuer,
            audience=resource,
            jwks_uri=jwks_uri or f"{issuer}/.well-known/jwks.json",
            clock=clock,
        ),
        roles=Roles(roles),
        membership=lambda subject, org: memberships.get((subject, org or "")),
        tool_scopes=TOOL_SCOPES,
        default=BASIC_SCOPE,
        actors=ACTORS,
        org="org",
        resource=resource,
        authorization_servers=[issuer],
    )
    return Starlette(
        routes=[
            Route(protected.metadata_path, protected.metadata_app),
            Mount("/orgs/{org}/mcp", app=protected),  # its 401s name the default scope to start with
        ],
        # A Mount runs no lifespan of the app it mounts: the SDK's session manager runs here.
        lifespan=lambda app: server.session_manager.run(),
    )


def loopback_socket(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1 (port 0: the kernel picks a free one). Bound before the
    server starts, so the other servers can be told its URL; connections wait in the backlog
    until it serves."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    return sock


@contextmanager
def serving(app: Any, sock: socket.socket) -> Iterator[None]:
    """``app`` under uvicorn on ``sock``, in a thread, until the block ends."""
    # log_config=None: uvicorn's loggers propagate, and no logging configuration is installed.
    config = uvicorn.Config(
        app, lifespan="on", log_config=None, log_level="warning", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
