"""``BearerMiddleware``: the bearer-token checks of :mod:`resource_server.wsgi` for any ASGI app.

Route patterns (Starlette path syntax) map to scope maps, and each HTTP request is authenticated
and authorized before the wrapped application sees it; a path no pattern covers is refused. The
granted :class:`policy.Access` and :class:`~resource_server.tokens.VerifiedToken` go in the
request's ``scope["state"]`` under ``resource_server_access`` and ``resource_server_token``
(Starlette: ``request.state.resource_server_access``)::

    app = BearerMiddleware(app, verifier=..., roles=..., membership=..., routes={
        "/orgs/{org}/projects": {"GET": "project:read"},                    # the middleware's org="org"
        "/teams/{org_id}/{id:int}": Route({"GET": "team:read"}, org="org_id"),  # another variable name
        "/me": Route({"GET": "profile:read"}, org=None),                      # no org in the URL
    })

It runs on the event loop: a token already verified is decided there, with no thread hop, and so
is a new token whose keys are in hand; one whose verification may wait on the network (a key-set
fetch, discovery, introspection) is verified in a worker thread
(:class:`~resource_server.async_guard.AsyncGuard`), so a slow authorization server stalls only the
requests that wait for it. ``membership`` may be a
coroutine function, and should be one if it does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

try:
    from starlette.routing import compile_path
except ModuleNotFoundError as exc:
    from .checks import missing_extra

    raise missing_extra("asgi", "resource_server.asgi", exc) from exc

from policy import Actors, Roles, ScopeMap

from .asgi_http import (
    ASGIApp,
    Receive,
    Scope,
    Send,
    adding_headers,
    authorization_and_form,
    bad_host,
    dpop_request,
    header,
    send_denial,
    token_elsewhere,
)
from .async_guard import AsyncGuard
from .bodies import BodyError
from .checks import check_scopes_granted
from .credentials import names_access_token
from .denials import Denial
from .dpop import DPoPVerifier
from .guard import AsyncMembership, Granted, Guard
from .tokens import TokenVerifier
from .wsgi import Route, check_org_variable

__all__ = ["ACCESS_KEY", "TOKEN_KEY", "BearerMiddleware", "Route"]

#: The names, in ``scope["state"]`` (Starlette's ``request.state``), of the granted access and token.
ACCESS_KEY = "resource_server_access"
TOKEN_KEY = "resource_server_token"

_UNCOVERED = Denial(403, "forbidden", "no access policy covers this path", None)
_PUBLIC = -1
_CACHED_PATHS = 4096
_CACHED_PATH_LENGTH = 512
# Starlette's parameter syntax: what is left of a pattern once its parameters are removed must
# hold no brace, or a typo such as "/orgs/{org" would silently become a literal path.
_PARAMETER = re.compile(r"{[a-zA-Z_][a-zA-Z0-9_]*(?::[a-zA-Z_][a-zA-Z0-9_]*)?}")
# RFC 6455 §1.3: a policy violation; before the handshake completes servers answer it with 403.
_POLICY_VIOLATION = 1008


class _Pattern:
    """One compiled pattern: its regular expression and where the organization comes from."""

    __slots__ = ("arguments", "convert", "index", "org", "regex", "rule")

    def __init__(self, pattern: object, index: int, org: str | None) -> None:
        if not isinstance(pattern, str) or not pattern.startswith("/"):
            raise ValueError(f"route pattern {pattern!r} must be a path starting with '/'")
        literal = _PARAMETER.sub("", pattern)
        if "{" in literal or "}" in literal:
            raise ValueError(f"route pattern {pattern!r} is not valid Starlette path syntax")
        try:
            self.regex, _, convertors = compile_path(pattern)
        except (AssertionError, KeyError, ValueError) as exc:  # unknown convertor, repeated name
            raise ValueError(f"route pattern {pattern!r} is not valid Starlette path syntax: {exc}") from None
        self.rule = pattern
        self.index = index
        self.org = org
        self.convert = convertors[org].convert if org is not None and org in convertors else None
        self.arguments = frozenset(convertors)

    def org_of(self, found: re.Match[str]) -> str | None:
        """The organization named in the URL, as the app sees it (after its convertor: a
        ``{org:int}`` of ``007`` is ``7``), or None for a route that names none."""
        if self.org is None:
            return None
        value = found.group(self.org)
        return str(self.convert(value)) if self.convert is not None else value


class BearerMiddleware:
    """Wrap the ASGI ``app`` so that every HTTP request whose path matches one of ``routes``
    (Starlette path syntax: ``"/orgs/{org}/projects/{id:int}"``) needs an access token that
    satisfies that route's scope map.

    Paths matching ``public`` patterns pass untouched; every other path is refused with ``403``:
    an API behind this middleware is closed by default, so a route nobody listed is not open.
    ``org`` names the URL variable holding the organization in every pattern given with a plain
    scope map; a :class:`~resource_server.wsgi.Route` names its own (or ``None``). A pattern
    without its org variable is a ``ValueError`` here, at start-up: otherwise one org's token
    would pass on another's URL; so is a scope map naming a scope that no role grants.

    Matching: protected routes in the order given, then the same path with its trailing slash
    added or removed (checked the same way, never redirected), then the public patterns, which
    match exactly as written. A path that a protected route covers is protected even if a public
    pattern matches it too.

    WebSocket handshakes are checked like a ``GET`` of their path (RFC 6455 §4.1: the handshake
    is one), with the ``Authorization`` header; a refusal is sent as the HTTP response of the
    status table where the server supports the ASGI ``websocket.http.response`` extension, and
    as a close (code 1008, which servers answer with ``403``) where it does not. Lifespan and
    other scopes pass through. ``actors`` (a :class:`policy.Actors`) caps what each agent acting
    for a person may do (RFC 8693).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: TokenVerifier,
        roles: Roles,
        membership: AsyncMembership,
        routes: Mapping[str, Route | ScopeMap | Mapping[str, Any]],
        public: Iterable[str] = (),
        org: str | None = "org",
        realm: str = "api",
        resource_metadata: str | None = None,
        cache_size: int = 4096,
        dpop: DPoPVerifier | None = None,
        dpop_required: bool = False,
        resource: str | None = None,
        actors: Actors | None = None,
    ) -> None:
        self.app = app
        self.guard = Guard(
            verifier=verifier,
            roles=roles,
            membership=membership,
            realm=realm,
            resource_metadata=resource_metadata,
            cache_size=cache_size,
            dpop=dpop,
            dpop_required=dpop_required,
            actors=actors,
        )
        self.async_guard = AsyncGuard(self.guard)
        # DPoP proofs name the URL the client used (RFC 9449 §4.3): this resource's scheme and
        # authority when given, else the request's own Host.
        self.resource = resource
        self.routes = [r if isinstance(r, Route) else Route(r, org=org) for r in routes.values()]
        check_scopes_granted(
            roles, [(f"route {p!r}", r.scope_map) for p, r in zip(routes, self.routes, strict=True)]
        )
        self._protected = [
            _Pattern(pattern, index, route.org)
            for index, (pattern, route) in enumerate(zip(routes, self.routes, strict=True))
        ]
        for pattern, route in zip(self._protected, self.routes, strict=True):
            check_org_variable(pattern, route, {"org", org} - {None})
        if isinstance(public, str):
            raise ValueError("public must be a collection of patterns, not one string")
        self._public = [_Pattern(pattern, _PUBLIC, None) for pattern in public]
        # Matching runs up to three passes of regular expressions: the answers for recently
        # seen paths are kept, a bounded dict cleared when full.
        self._matches: dict[str, tuple[int, str | None] | None] = {}

    def _match(self, path: str) -> tuple[int, str | None] | None:
        """(route index or _PUBLIC, the org the URL names) for ``path``; None for no pattern."""
        try:
            return self._matches[path]
        except KeyError:
            pass
        matched = self._search(path)
        if len(path) <= _CACHED_PATH_LENGTH:
            if len(self._matches) >= _CACHED_PATHS:
                self._matches.clear()
            self._matches[path] = matched
        return matched

    def _search(self, path: str) -> tuple[int, str | None] | None:
        other = path[:-1] if path.endswith("/") and len(path) > 1 else path + "/"
        for candidate in (path, other):
            for pattern in self._protected:
                found = pattern.regex.match(candidate)
                if found is not None:
                    try:
                        return pattern.index, pattern.org_of(found)
                    except (ValueError, OverflowError):  # a convertor refused it (an int of 5,000 digits)
                        continue  # not this route: as if the pattern had not matched
        for pattern in self._public:
            if pattern.regex.match(path) is not None:
                return _PUBLIC, None
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "websocket":
                return await self._websocket(scope, receive, send)
            return await self.app(scope, receive, send)
        matched = self._match(_route_path(scope))
        method = scope["method"]
        if matched is None:
            return await send_denial(send, self.guard.refused(_UNCOVERED, method=method))
        index, org = matched
        if index == _PUBLIC:
            return await self.app(scope, receive, send)
        scope_map = self.routes[index].scope_map
        if (
            method == "OPTIONS"
            and "OPTIONS" not in scope_map.methods
            and header(scope, b"access-control-request-method") is not None
        ):
            # A CORS preflight (Fetch standard) carries no credentials: the app answers it. Any
            # other OPTIONS is checked like every method, so no view runs unauthenticated.
            return await self.app(scope, receive, send)
        route = self._protected[index].rule  # http.route, for telemetry
        if (refused := bad_host(scope)) is not None:  # RFC 9112 §3.2: a bad Host is a 400, first
            return await send_denial(send, self.guard.refused(refused, route=route, method=method))
        authorization, form = authorization_and_form(scope)
        elsewhere = False
        # Most requests have neither a query string nor a form body: nothing to look into.
        if form or scope.get("query_string"):
            try:
                elsewhere, receive = await token_elsewhere(scope, receive)
            except BodyError as exc:
                refused = self.guard.bad_body(exc)
                return await send_denial(send, self.guard.refused(refused, route=route, method=method))
        outcome = await self._authorize(scope, authorization, elsewhere, method, scope_map, org, route)
        if type(outcome) is Denial:
            return await send_denial(send, outcome)
        return await self._admit(scope, receive, send, outcome)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket handshake: checked as a GET of its path, refused before it is accepted."""
        matched = self._match(_route_path(scope))
        if matched is None:
            return await _refuse_websocket(scope, send, self.guard.refused(_UNCOVERED, method="GET"))
        index, org = matched
        if index == _PUBLIC:
            return await self.app(scope, receive, send)
        route = self._protected[index].rule
        if (refused := bad_host(scope)) is not None:
            return await _refuse_websocket(
                scope, send, self.guard.refused(refused, route=route, method="GET")
            )
        authorization, _ = authorization_and_form(scope)
        # A handshake has no body: only the query can carry a second token (RFC 6750 §2.3).
        query: bytes | None = scope.get("query_string")
        elsewhere = names_access_token(query) if query else False
        # The handshake is an HTTP GET of the http(s) URL its ws(s) URL stands for (RFC 6455 §3):
        # that is the URL a DPoP proof names.
        http_scope = {**scope, "scheme": "https" if scope.get("scheme") == "wss" else "http"}
        outcome = await self._authorize(
            http_scope, authorization, elsewhere, "GET", self.routes[index].scope_map, org, route
        )
        if type(outcome) is Denial:
            return await _refuse_websocket(scope, send, outcome)
        return await self._admit(scope, receive, send, outcome)

    async def _authorize(
        self,
        scope: Scope,
        authorization: str | None,
        elsewhere: bool,
        method: str,
        scope_map: ScopeMap,
        org: str | None,
        route: str,
    ) -> Granted | Denial:
        guard = self.guard
        return await self.async_guard.authorize(
            authorization=authorization,
            token_elsewhere=elsewhere,
            method=method,
            scope_map=scope_map,
            org=org,
            dpop=dpop_request(scope, authorization, self.resource) if guard.dpop is not None else None,
            route=route,
        )

    def _admit(self, scope: Scope, receive: Receive, send: Send, granted: Granted) -> Awaitable[None]:
        """Run the app with the granted access in ``scope["state"]``: a per-request copy of the
        lifespan state (ASGI), which Starlette's ``request.state`` reads and writes."""
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state[ACCESS_KEY] = granted.access
        state[TOKEN_KEY] = granted.token
        if granted.headers:
            # A fresh DPoP nonce (RFC 9449 §8.2) on the app's own response.
            send = adding_headers(granted.headers, send)
        return self.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path the app routes on: ``path`` without the ``root_path`` the app is mounted at (as
    Starlette's routing computes it)."""
    path: str = scope["path"]
    root = scope.get("root_path")
    if not root or not path.startswith(root):
        return path
    if len(path) == len(root):
        return "/"
    return path[len(root) :] if path[len(root)] == "/" else path


async def _refuse_websocket(scope: Scope, send: Send, denial: Denial) -> None:
    """The refusal as the handshake's HTTP response when the server can send one (the ASGI
    ``websocket.http.response`` extension), else a close before the handshake completes."""
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": _POLICY_VIOLATION, "reason": denial.error})
        return
    await send_denial(send, denial, "websocket.http.response")
