"""The demo's MCP client: the MCP SDK's own ``ClientSession`` over streamable HTTP, authorized by
the SDK's ``OAuthClientProvider`` against the demo's authorization server.

The provider does on its own what any MCP client does. On the server's 401 it reads the RFC 9728
document the challenge names, then the authorization server's RFC 8414 metadata; registers
itself (RFC 7591); and runs the authorization code flow with PKCE, naming the MCP server as the
resource (RFC 8707) and asking for the scope the challenge names. On a 403 ``insufficient_scope``
it authorizes again, for the scopes it asked for before and the one the challenge names, and
sends the refused call again. Only the user's part is scripted here: the redirect handler signs
the demo user in at the authorization endpoint, for an org, and the callback handler hands the
code from the redirect back to the provider.

The SDK's provider does not answer ``401 insufficient_user_authentication`` (RFC 9470): it has no
``acr_values`` or ``max_age`` to ask for. :func:`mcp_step_up_story` gives the same
``ClientSession`` an ``httpx2.AsyncClient`` with this library's ``StepUpAuth`` instead, whose
token provider has the person sign in again with the second factor when a tool asks for it.

    python examples/demo_mcp_client.py http://127.0.0.1:5004/orgs/acme/mcp/   # with demo.py --serve
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import jwt
from mcp.client import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from mcp.shared.exceptions import MCPError
from pydantic import AnyUrl

from resource_server.client import StepUpAuth, TokenProvider

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from demo_auth_server import PASSWORDS

#: Registered by the client, never listened on: the scripted user takes the code from the redirect.
MCP_REDIRECT_URI = "http://127.0.0.1/mcp-callback"
#: What the story sees, initialize and tool calls only: a session opened without a token (401)
#: and again with one; the read tool; the write tool refused (403), then sent again after the
#: client stepped up.
EXPECTED_MCP = [401, 200, 200, 403, 200]
#: Two authorizations: the read scope first, then the read and write scopes.
EXPECTED_AUTHORIZATIONS = 2
#: What :func:`mcp_step_up_story` sees: a session opened, a project created, its deletion refused
#: for a password sign-in (401), then sent again after the second factor.
EXPECTED_MCP_STEP_UP = [200, 200, 401, 200]


class MemoryTokenStorage:
    """The SDK's ``TokenStorage``, in memory, saying what it is given."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        audience = jwt.decode(tokens.access_token, options={"verify_signature": False})["aud"]
        print(f"   (granted {tokens.scope!r}, a token for {audience})")

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info
        print(
            f"   (the client registered itself (RFC 7591): client_id {client_info.client_id[:10]}...,"
            f" token_endpoint_auth_method {client_info.token_endpoint_auth_method}, no secret)"
        )


@dataclass
class ScriptedUser:
    """The person at the browser: signs in at the authorization endpoint the client sends them to,
    for ``org``, and hands the code from the redirect back (both steps of a real sign-in)."""

    username: str
    password: str
    org: str
    browser: httpx.AsyncClient
    authorizations: list[str] = field(default_factory=list)
    _result: AuthorizationCodeResult | None = field(default=None, init=False, repr=False)

    async def redirect_handler(self, authorization_url: str) -> None:
        query = parse_qs(urlsplit(authorization_url).query)
        scope, resource = query.get("scope", [""])[0], query.get("resource", ["(none)"])[0]
        self.authorizations.append(scope)
        print(
            f"   (authorization {len(self.authorizations)}: the client asks for {scope!r} for the resource"
            f" {resource}; {self.username} signs in for {self.org})"
        )
        login = {"username": self.username, "password": self.password, "org": self.org}
        response = await self.browser.post(authorization_url, data=login, follow_redirects=False)
        target, _, query_string = response.headers.get("location", "").partition("?")
        params = parse_qs(query_string)
        if response.status_code != 302 or target != MCP_REDIRECT_URI or "code" not in params:
            reason = " ".join(params.get("error", []) + params.get("error_description", [])) or response.text
            raise RuntimeError(f"authorization refused ({response.status_code}): {reason.strip()}")
        self._result = AuthorizationCodeResult(
            code=params["code"][0],
            state=params.get("state", [None])[0],
            iss=params.get("iss", [None])[0],
        )

    async def callback_handler(self) -> AuthorizationCodeResult:
        result, self._result = self._result, None
        if result is None:
            raise RuntimeError("no authorization response to hand back")
        return result


@dataclass
class McpOutcome:
    """What :func:`mcp_story` saw: the status of each initialize and tools/call response, in
    order, and the scopes each authorization asked for."""

    statuses: list[int]
    authorizations: list[str]


def _rpc(request: httpx2.Request) -> tuple[str | None, str | None]:
    """The JSON-RPC method of a request the client sent, and the tool a tools/call names."""
    try:
        body = json.loads(request.content)
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    params = body.get("params") if isinstance(body.get("params"), dict) else {}
    return body.get("method"), params.get("name")


async def mcp_session(endpoint: str, user: ScriptedUser, step: int = 24) -> list[int]:
    """Open a session at ``endpoint`` with no token, read, then write; returns the statuses."""
    statuses: list[int] = []
    path = urlsplit(endpoint).path.rstrip("/")

    async def seen(response: httpx2.Response) -> None:
        """Every response the client gets, its own OAuth requests' too: show the MCP calls."""
        method, tool = _rpc(response.request)
        if response.request.url.path.rstrip("/") != path or method not in ("initialize", "tools/call"):
            return
        statuses.append(response.status_code)
        called = f"{method} {tool}" if tool else method
        print(f"   POST {response.request.url.path} {called} -> {response.status_code}")
        if "www-authenticate" in response.headers:
            print(f"   WWW-Authenticate: {response.headers['www-authenticate']}")

    provider = OAuthClientProvider(
        server_url=endpoint,
        client_metadata=OAuthClientMetadata(
            client_name="demo MCP client",
            redirect_uris=[AnyUrl(MCP_REDIRECT_URI)],
            grant_types=["authorization_code"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=MemoryTokenStorage(),
        redirect_handler=user.redirect_handler,
        callback_handler=user.callback_handler,
    )
    async with (
        httpx2.AsyncClient(auth=provider, timeout=10, event_hooks={"response": [seen]}) as http,
        streamable_http_client(endpoint, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        print(f"\n== {step}. MCP: the SDK's client opens a session, with no token yet")
        await session.initialize()

        print(f"\n== {step + 1}. MCP: the read tool, list_projects")
        listed = await session.call_tool("list_projects", {})
        names = [project["name"] for project in (listed.structured_content or {}).get("result", [])]
        print(f"   {user.org}'s projects: {', '.join(names)}")

        print(
            f"\n== {step + 2}. MCP: the write tool, create_project: refused, the client steps up, sends it again"
        )
        try:
            created = await session.call_tool("create_project", {"name": "from-mcp"})
        except MCPError as error:  # refused, and no new token could help: the 403 reached the session
            print(f"   refused: {error}")
        else:
            print(
                f"   {'error' if created.is_error else 'created'}: {json.dumps(created.structured_content)}"
            )
    return statuses


async def _step_up_session(endpoint: str, token_for: TokenProvider, step: int) -> list[int]:
    statuses: list[int] = []
    path = urlsplit(endpoint).path.rstrip("/")

    async def seen(response: httpx2.Response) -> None:
        method, tool = _rpc(response.request)
        if response.request.url.path.rstrip("/") != path or method not in ("initialize", "tools/call"):
            return
        statuses.append(response.status_code)
        print(
            f"   POST {response.request.url.path} {f'{method} {tool}' if tool else method} -> {response.status_code}"
        )
        if "www-authenticate" in response.headers:
            print(f"   WWW-Authenticate: {response.headers['www-authenticate']}")

    # The library's step-up auth: on insufficient_user_authentication it calls token_for with the
    # challenge's acr_values and max_age, once, and sends the refused call again.
    auth = StepUpAuth(token_for, scopes=["project:read", "project:write"])
    async with (
        httpx2.AsyncClient(auth=auth, timeout=10, event_hooks={"response": [seen]}) as http,
        streamable_http_client(endpoint, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        print(f"\n== {step}. MCP with the library's StepUpAuth: a session, and a project created")
        await session.initialize()
        created = await session.call_tool("create_project", {"name": "short-lived-mcp"})
        project_id = (created.structured_content or {})["id"]
        print(f"   created project {project_id}")
        print(f"\n== {step + 1}. MCP: delete_project needs a recent sign-in with the second factor")
        deleted = await session.call_tool("delete_project", {"project_id": project_id})
        print(f"   {'error' if deleted.is_error else 'deleted'}: {json.dumps(deleted.structured_content)}")
    return statuses


def mcp_step_up_story(endpoint: str, token_for: TokenProvider, step: int = 32) -> list[int]:
    """A session at ``endpoint`` whose client is the MCP SDK's ``ClientSession`` over an
    ``httpx2.AsyncClient`` with this library's ``StepUpAuth``: creates a project, then deletes it,
    which needs a recent sign-in with the second factor; ``token_for`` is the person's token
    provider (it takes ``acr_values`` and ``max_age``). Returns the statuses of initialize and
    the tool calls."""
    return asyncio.run(_step_up_session(endpoint, token_for, step))


def mcp_story(endpoint: str, username: str = "user-admin", org: str = "acme") -> McpOutcome:
    """The MCP SDK's client against the MCP server at ``endpoint`` (``.../orgs/<org>/mcp/``), for
    ``username`` signing in for ``org``."""

    async def run() -> McpOutcome:
        async with httpx.AsyncClient(timeout=10) as browser:
            user = ScriptedUser(username, PASSWORDS[username], org, browser)
            statuses = await mcp_session(endpoint, user)
        return McpOutcome(statuses, user.authorizations)

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("endpoint", help="the MCP endpoint, e.g. http://127.0.0.1:5004/orgs/acme/mcp/")
    parser.add_argument("--user", default="user-admin", choices=sorted(PASSWORDS))
    parser.add_argument("--org", default="acme")
    args = parser.parse_args()
    outcome = mcp_story(args.endpoint, args.user, args.org)
    print(f"\nMCP: {outcome.statuses}, authorizations asked for {outcome.authorizations}")


if __name__ == "__main__":
    main()
