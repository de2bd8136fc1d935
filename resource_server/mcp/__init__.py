"""MCP servers (the Model Context Protocol, streamable HTTP) as OAuth 2.0 resource servers.

Two ways in, for servers built with the MCP SDK (``MCPServer``) or with FastMCP 4:

- :func:`protect_mcp` wraps an MCP streamable-HTTP app (any ASGI app: the SDK's
  ``streamable_http_app()``, FastMCP's ``http_app()``) with the whole
  pipeline: the token, the caller's member role in the org the URL names, and a scope map per
  tool. It reads each JSON-RPC POST itself (bounded, strict JSON), decides a ``tools/call``
  against that tool's requirement, and refuses at the HTTP level, before the SDK runs anything:
  ``403`` with ``Bearer error="insufficient_scope", scope="…", resource_metadata="…"``, which
  MCP clients answer by stepping up (asking the authorization server for that scope).
- :class:`McpTokenVerifier` gives the SDK's own bearer auth (``MCPServer(token_verifier=...,
  auth=AuthSettings(...))``) this library's strict token verification, and nothing more: no
  membership, no org binding, no per-tool scopes; :class:`~resource_server.mcp.fastmcp.FastMCPTokenVerifier`
  does the same for FastMCP's ``auth=`` (it needs the ``fastmcp`` extra).

The package's modules: :mod:`~resource_server.mcp.tools` (the scopes each tool needs),
:mod:`~resource_server.mcp.jsonrpc` (reading and refusing JSON-RPC messages),
:mod:`~resource_server.mcp.context` (``current_access`` and ``current_token``),
:mod:`~resource_server.mcp.metadata` (the RFC 9728 document as an ASGI app),
:mod:`~resource_server.mcp.verifier` (``McpTokenVerifier``) and
:mod:`~resource_server.mcp.fastmcp` (``FastMCPTokenVerifier``). See docs/mcp.md.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from urllib.parse import urlsplit

try:
    from mcp.server.auth.middleware.auth_context import auth_context_var
    from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
    from mcp.server.auth.provider import AccessToken
    from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
    from starlette.authentication import AuthCredentials
except ModuleNotFoundError as exc:
    from ..checks import missing_extra

    raise missing_extra("mcp", "resource_server.mcp", exc) from exc

from policy import Actors, Roles, ScopeMap

from ..asgi import ACCESS_KEY, TOKEN_KEY
from ..asgi_http import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    adding_headers,
    authorization_and_form,
    bad_host,
    dpop_request,
    replaying,
    send_denial,
)
from ..asgi_http import token_elsewhere as find_token_elsewhere
from ..async_guard import AsyncGuard, run_in_thread
from ..bodies import BodyError
from ..checks import check_scopes_granted
from ..denials import Denial
from ..dpop import DPoPVerifier
from ..guard import AsyncMembership, Granted, Guard
from ..metadata import check_resource, metadata_document, metadata_url_for
from ..tokens import TokenVerifier
from .context import GRANTED, current_access, current_token
from .jsonrpc import (
    INVALID_PARAMS,
    INVALID_REQUEST,
    Refused,
    parse_message,
    read_message,
    request_id,
    send_rpc_error,
)
from .metadata import ResourceMetadata, authorization_servers_of
from .tools import scope_map_of, tool_maps, undeclared_tool
from .verifier import McpTokenVerifier

__all__ = [
    "McpTokenVerifier",
    "ProtectedMcp",
    "ResourceMetadata",
    "current_access",
    "current_token",
    "protect_mcp",
]

log = logging.getLogger("resource_server")

#: Bodies larger than this are parsed in a worker thread: a 4 MiB body of small objects takes
#: about half a second to parse strictly, which must not stall every other request on the loop.
_PARSE_ON_LOOP = 64 * 1024
#: The SDK users kept for cached grants (a bounded dict, cleared when full).
_CACHED_USERS = 4096
# RFC 6455 §7.4.1: policy violation; before the handshake completes servers answer it with 403.
_POLICY_VIOLATION = 1008


class ProtectedMcp:
    """An MCP streamable-HTTP app behind this library's guard; built by :func:`protect_mcp`.

    ``guard`` is the :class:`~resource_server.guard.Guard`; ``tools`` maps each tool name to its
    compiled :class:`policy.ScopeMap` (under ``POST``); ``metadata_url`` is the RFC 9728 URL put
    in every challenge, ``metadata_path`` its path and ``metadata_app`` an ASGI app serving the
    document, for an enclosing app to route when this one is mounted under a prefix.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: TokenVerifier,
        roles: Roles,
        membership: AsyncMembership,
        tool_scopes: Mapping[str, object],
        default: object = None,
        org: str | None = None,
        resource: str,
        authorization_servers: str | Collection[str] | None = None,
        realm: str = "api",
        cache_size: int = 4096,
        dpop: DPoPVerifier | None = None,
        dpop_required: bool = False,
        max_body_bytes: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
        actors: Actors | None = None,
    ) -> None:
        check_resource(resource, query=False)
        if org is not None and (not isinstance(org, str) or not org):
            raise ValueError("org must name the path variable holding the organization, or be None")
        if not isinstance(max_body_bytes, int) or isinstance(max_body_bytes, bool) or max_body_bytes < 1:
            raise ValueError("max_body_bytes must be a positive integer")
        self.app = app
        self.org = org
        self.resource = resource
        self.max_body_bytes = max_body_bytes
        self.metadata_url = metadata_url_for(resource)
        self.metadata_path = urlsplit(self.metadata_url).path
        self._resource_path = urlsplit(resource).path or "/"
        self.tools = tool_maps(tool_scopes)
        self.default = None if default is None else scope_map_of("default", default)
        # A client asks for the scope the 401 names (the MCP authorization specification): the
        # first alternative of ``default``, which every other method needs.
        alternatives = None if self.default is None else self.default.alternatives("POST")
        first = alternatives[0] if alternatives else None
        self.guard = Guard(
            verifier=verifier,
            roles=roles,
            membership=membership,
            realm=realm,
            resource_metadata=self.metadata_url,
            cache_size=cache_size,
            dpop=dpop,
            dpop_required=dpop_required,
            scope_on_401=" ".join(sorted(first)) if first else None,
            actors=actors,
        )
        self.async_guard = AsyncGuard(self.guard)
        check_scopes_granted(
            roles,
            [
                *((f"tool_scopes[{name!r}]", scope_map) for name, scope_map in self.tools.items()),
                *([("default", self.default)] if self.default is not None else []),
            ],
        )
        servers = authorization_servers_of(authorization_servers, verifier)
        maps = [*self.tools.values(), *([self.default] if self.default is not None else [])]
        document = metadata_document(
            resource=resource,
            scopes_supported=frozenset().union(*(m.scopes for m in maps)),
            authorization_servers=servers,
            dpop=dpop,
            dpop_required=dpop_required,
        )
        self.metadata_app = ResourceMetadata(document)
        self._users: dict[int, tuple[Granted, str, AuthenticatedUser]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                # Streamable HTTP has no WebSocket: nothing reaches the app without a decision.
                await send({"type": "websocket.close", "code": _POLICY_VIOLATION})
                return
            return await self.app(scope, receive, send)  # lifespan: the SDK's session manager
        method = scope["method"]
        if method in ("GET", "HEAD") and _full_path(scope) == self.metadata_path:
            return await self.metadata_app(scope, receive, send)
        guard, route = self.guard, self._route(scope)
        if (refused := bad_host(scope)) is not None:  # RFC 9112 §3.2: a bad Host is a 400, first
            return await send_denial(send, guard.refused(refused, route=route, method=method))
        org = self._org(scope)
        if type(org) is Denial:
            return await send_denial(send, guard.refused(org, route=route, method=method))
        authorization, form = authorization_and_form(scope)
        elsewhere = False
        if form or scope.get("query_string"):  # RFC 6750 §2.2, §2.3: refused, so looked for
            try:
                elsewhere, receive = await find_token_elsewhere(scope, receive)
            except BodyError as exc:
                refused = guard.refused(guard.bad_body(exc), route=route, method=method, org=org)
                return await send_denial(send, refused)
        # One record per request (resource_server.telemetry): the authentication, and the
        # decision on the message when there is one.
        observer = guard.observer
        begun = observer.begin(authorization, elsewhere)
        granted = await self._authenticate(scope, authorization, elsewhere, org)
        if type(granted) is Denial:
            observer.end(begun, granted, route, method, authorization, org, None)
            return await send_denial(send, granted)
        if method == "POST" or method.upper() == "POST":  # methods are case-sensitive; be safe
            try:
                body = await read_message(scope, receive, self.max_body_bytes)
                decided, scope_map = await self._decide(body, granted)
            except Refused as error:  # a message the wrapper answers itself: a refusal, recorded so
                reason = f"JSON-RPC {error.code}: {error.message}"
                refused = Denial(error.status, "invalid_request", error.message, None, reason).noting(
                    token=granted.token, access=granted.access, source=granted.source
                )
                observer.refused(refused, route, method, authorization, org)
                return await send_rpc_error(send, error)
            observer.end(begun, decided, route, method, authorization, org, scope_map)
            if type(decided) is Denial:
                return await send_denial(send, decided)
            granted = decided
            receive = replaying(body, receive)
        else:
            observer.end(begun, granted, route, method, authorization, org, None)
        user, send = self._admit(scope, send, authorization, granted)
        # The SDK hands each message to its handler with the context of the request that sent
        # it, so both variables reach the tool. Set and awaited in this frame: each of the SDK's
        # awaits passes through one coroutine frame of ours, not two.
        user_token = auth_context_var.set(user)
        granted_token = GRANTED.set(granted)
        try:
            await self.app(scope, receive, send)
        finally:
            GRANTED.reset(granted_token)
            auth_context_var.reset(user_token)

    def _route(self, scope: Scope) -> str:
        """The route template (``http.route``, for telemetry): the pattern the enclosing router
        matched (Starlette's ``Mount("/orgs/{org}/mcp", ...)``), else the resource's own path."""
        template = getattr(scope.get("route"), "path", None)
        return template if isinstance(template, str) else self._resource_path

    # -- the steps ----------------------------------------------------------------------------

    def _org(self, scope: Scope) -> str | Denial | None:
        """The organization the enclosing router found in the URL (``scope["path_params"]``)."""
        if self.org is None:
            return None
        value = (scope.get("path_params") or {}).get(self.org)
        if value is None:
            # Fail closed: never fall back to the token's own org when the server names one.
            reason = f"no path variable {self.org!r} reaches the MCP app; mount it under a path naming it, or use org=None"
            log.error(reason)
            return Denial(403, "forbidden", "this endpoint is misconfigured", None, reason)
        return value if type(value) is str else str(value)

    async def _authenticate(
        self, scope: Scope, authorization: str | None, elsewhere: bool, org: str | None
    ) -> Granted | Denial:
        guard = self.guard
        return await self.async_guard.authenticate(
            authorization=authorization,
            token_elsewhere=elsewhere,
            org=org,
            dpop=dpop_request(scope, authorization, self.resource) if guard.dpop is not None else None,
        )

    async def _decide(self, body: bytes, granted: Granted) -> tuple[Granted | Denial, ScopeMap | None]:
        """The decision for one JSON-RPC message: a ``tools/call`` against its tool's map,
        anything else against ``default`` (or authentication alone), with the map decided on."""
        message = (
            parse_message(body) if len(body) <= _PARSE_ON_LOOP else await run_in_thread(parse_message, body)
        )
        rpc_method = message.get("method")
        if rpc_method == "tools/call":
            params = message.get("params")
            if type(params) is not dict:
                raise Refused(
                    400,
                    INVALID_PARAMS,
                    "tools/call needs params: an object naming the tool",
                    request_id(message),
                )
            name = params.get("name")
            if type(name) is not str:
                raise Refused(400, INVALID_PARAMS, "the tool name must be a string", request_id(message))
            scope_map = self.tools.get(name)
            if scope_map is None:
                raise undeclared_tool(name, request_id(message))
            return self.guard.decision(granted, "POST", scope_map), scope_map
        if rpc_method is not None and type(rpc_method) is not str:
            raise Refused(400, INVALID_REQUEST, "the method must be a string", request_id(message))
        if self.default is not None:
            return self.guard.decision(granted, "POST", self.default), self.default
        return granted, None

    def _admit(
        self, scope: Scope, send: Send, authorization: str | None, granted: Granted
    ) -> tuple[AuthenticatedUser, Send]:
        """Ready the request for the app as the granted caller: the SDK's ``scope["user"]`` (its
        sessions are bound to the principal that opened them; ``get_access_token()`` in tools)
        and ``scope["auth"]``, ``scope["state"]`` as the ASGI middleware fills it; the user to
        set as the SDK's current one, and the ``send`` to use (adding a fresh DPoP nonce)."""
        token = granted.token
        assert token is not None and authorization is not None
        user = self._user(authorization, granted)
        scope["user"] = user
        scope["auth"] = AuthCredentials(user.scopes)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state[ACCESS_KEY] = granted.access  # as the ASGI middleware puts them
        state[TOKEN_KEY] = token
        if granted.headers:
            send = adding_headers(granted.headers, send)  # a fresh DPoP nonce (RFC 9449 §8.2)
        return user, send

    def _user(self, authorization: str, granted: Granted) -> AuthenticatedUser:
        """The SDK's user for a grant: built once per cached grant (a warm request reuses the
        guard's :class:`Granted`, so it is the key, held, so its ``id`` is not reused)."""
        found = self._users.get(id(granted))
        if found is not None and found[0] is granted and found[1] == authorization:
            return found[2]
        token = granted.token
        assert token is not None
        user = AuthenticatedUser(
            AccessToken(
                token=authorization.partition(" ")[2].strip(),
                client_id=token.client_id or "",
                scopes=sorted(granted.access.scopes),  # what the request may exercise
                expires_at=token.expires_at,
                resource=self.resource,
                subject=token.subject,
                claims=dict(token.claims),
            )
        )
        if len(self._users) >= _CACHED_USERS:
            self._users.clear()
        self._users[id(granted)] = (granted, authorization, user)
        return user


def protect_mcp(
    app: ASGIApp,
    *,
    verifier: TokenVerifier,
    roles: Roles,
    membership: AsyncMembership,
    tool_scopes: Mapping[str, object],
    default: object = None,
    org: str | None = None,
    resource: str,
    authorization_servers: str | Collection[str] | None = None,
    realm: str = "api",
    cache_size: int = 4096,
    dpop: DPoPVerifier | None = None,
    dpop_required: bool = False,
    max_body_bytes: int = DEFAULT_MAX_REQUEST_BODY_SIZE,
    actors: Actors | None = None,
) -> ProtectedMcp:
    """Wrap an MCP streamable-HTTP ASGI ``app`` (``MCPServer(...).streamable_http_app()``) so
    that every request needs an access token of a member, and each ``tools/call`` the scopes
    ``tool_scopes`` lists for its tool.

    ``tool_scopes`` maps a tool name to its alternatives, as a :class:`policy.ScopeMap` method
    does: ``"project:read"``, ``["project:read", "project:admin"]`` (either), ``[["project:write",
    "team:write"]]`` (both). Every entry is validated here, and a scope no role grants (in an
    entry or in ``default``) is a ``ValueError``. A ``tools/call`` for a tool it does not name is
    answered ``400`` with JSON-RPC error ``-32602`` (the tool has no declared scopes) and never
    runs. Every other POST
    (``initialize``, ``tools/list``, notifications, responses) needs ``default`` when given, else
    authentication alone, as do GET (the SSE stream) and DELETE (the end of a session).

    An alternative may be a :class:`policy.Requirement`: ``Requirement("project:admin",
    acr=["mfa"], max_age=300)`` answers a call whose token shows too weak or too old an
    authentication of the person with ``401 insufficient_user_authentication`` (RFC 9470 §3)
    before the tool runs, and ``actors=()`` refuses agents acting for a person. ``actors`` (a
    :class:`policy.Actors`) caps what each agent may do (RFC 8693); inside a tool,
    ``current_access().actor`` names it.

    ``org`` names the path variable the enclosing router puts in ``scope["path_params"]``
    (``Mount("/orgs/{org}/mcp", app=protect_mcp(..., org="org"))``); None means the server
    names no org (``membership`` is then asked about the org the token is bound to).
    ``resource`` is this server's RFC 9728 resource identifier: challenges carry its metadata
    URL, and the document is served here when that URL's path reaches this app (when it is the
    top-level app; otherwise route ``metadata_path`` to ``metadata_app``). Its
    ``authorization_servers`` are those given, else the issuers the verifier accepts tokens from
    (a :class:`~resource_server.tokens.TrustedIssuers`' issuers, a
    :class:`~resource_server.tokens.JWTVerifier`'s issuer, an
    :class:`~resource_server.tokens.IntrospectionVerifier`'s when it names one): at least one,
    or a ``ValueError``.

    A body the wrapper cannot decide on is answered here with ``400`` and a JSON-RPC error (not
    UTF-8 or not JSON ``-32700``, a batch or duplicate member names ``-32600``, a ``tools/call``
    without params or a string tool name ``-32602``); a body over ``max_body_bytes`` with ``413``.
    """
    return ProtectedMcp(
        app,
        verifier=verifier,
        roles=roles,
        membership=membership,
        tool_scopes=tool_scopes,
        default=default,
        org=org,
        resource=resource,
        authorization_servers=authorization_servers,
        realm=realm,
        cache_size=cache_size,
        dpop=dpop,
        dpop_required=dpop_required,
        max_body_bytes=max_body_bytes,
        actors=actors,
    )


# -- inside ---------------------------------------------------------------------------------------


def _full_path(scope: Scope) -> str:
    """The request's path from the server's root, whether or not ``path`` holds ``root_path``
    (Starlette's does; the ASGI specification's does not)."""
    path: str = scope["path"]
    root = scope.get("root_path") or ""
    return path if not root or path.startswith(root) else root + path
