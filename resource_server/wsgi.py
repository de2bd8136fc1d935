"""``BearerMiddleware``: the same bearer-token checks for any WSGI application.

For APIs that are not Flask apps (or not only): route patterns map to scope maps, and each
request is authenticated and authorized before the wrapped application sees it. The granted
:class:`policy.Access` and :class:`~resource_server.tokens.VerifiedToken` are put in the WSGI
environ under ``resource_server.access`` and ``resource_server.token``.

Every protected pattern must name the organization its requests act in, or say explicitly that
it names none (:class:`Route` with ``org=None``)::

    BearerMiddleware(app, verifier=..., roles=..., membership=..., routes={
        "/orgs/<org>/projects": {"GET": "project:read"},                 # the middleware's org="org"
        "/teams/<org_id>": Route({"GET": "team:read"}, org="org_id"),      # another variable name
        "/me": Route({"GET": "profile:read"}, org=None),                   # no org in the URL
    })
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wsgi import get_path_info

from policy import Actors, Roles, ScopeMap

from .bodies import BodyError
from .checks import check_scopes_granted, check_sync_membership
from .credentials import MalformedHost, check_host, request_url, token_elsewhere
from .dpop import DPoPRequest, DPoPVerifier, dpop_request
from .guard import Denial, Guard, Membership
from .telemetry import audit
from .tokens import TokenVerifier

__all__ = ["ACCESS_KEY", "TOKEN_KEY", "BearerMiddleware", "Route"]

ACCESS_KEY = "resource_server.access"
TOKEN_KEY = "resource_server.token"
_PUBLIC = "public"
_UNCOVERED = Denial(403, "forbidden", "no access policy covers this path", None)
_CACHED_PATHS = 4096
_CACHED_PATH_LENGTH = 512

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class Route:
    """One protected route: its scope map and the URL variable naming the organization.

    ``org=None`` declares that the route names no organization: its requests are checked in the
    org the token is bound to (if any), which is a choice to make on purpose, never a fallback
    for a misspelt variable.
    """

    __slots__ = ("org", "scope_map")

    def __init__(self, scope_map: ScopeMap | Mapping[str, Any], *, org: str | None) -> None:
        self.scope_map = scope_map if isinstance(scope_map, ScopeMap) else ScopeMap(scope_map)
        if org is not None and (not isinstance(org, str) or not org):
            raise ValueError("Route org must be a URL variable name or None")
        self.org = org

    def __repr__(self) -> str:
        return f"Route({self.scope_map!r}, org={self.org!r})"


class BearerMiddleware:
    """Wrap ``app`` so that every path matching one of ``routes`` (werkzeug rule syntax, e.g.
    ``"/orgs/<org>/projects/<int:id>"``) needs a bearer token that satisfies its scope map.

    Paths in ``public`` pass through untouched. Every other path is refused with ``403``: an API
    behind this middleware is closed by default, so a route nobody listed is not silently open.
    ``org`` names the URL variable holding the organization in every pattern given with a plain
    scope map; a :class:`Route` names its own (or ``None``). A pattern without its org variable
    is a ``ValueError`` here, at start-up: otherwise one org's token would pass on another's URL;
    so is a scope map naming a scope that no role grants. ``membership`` is a plain function
    (``TypeError`` for a coroutine function: this middleware cannot await it). ``actors`` (a
    :class:`policy.Actors`) caps what each agent acting for a person may do (RFC 8693).
    """

    def __init__(
        self,
        app: WSGIApp,
        *,
        verifier: TokenVerifier,
        roles: Roles,
        membership: Membership,
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
        check_sync_membership(membership, "resource_server.wsgi.BearerMiddleware")
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
        # DPoP proofs name the URL the client used (RFC 9449 §4.3): this resource's scheme and
        # authority when given, else what the WSGI server reports.
        self.resource = resource
        self.routes = [r if isinstance(r, Route) else Route(r, org=org) for r in routes.values()]
        self._patterns = list(routes)  # each route's pattern: its http.route in telemetry
        check_scopes_granted(
            roles, [(f"route {p!r}", r.scope_map) for p, r in zip(routes, self.routes, strict=True)]
        )
        try:
            rules = [Rule(pattern, endpoint=index) for index, pattern in enumerate(routes)]
            public_rules = [Rule(pattern, endpoint=_PUBLIC) for pattern in public]
            # No slash redirects: a middleware answers or passes, never redirects for the app.
            self._map = Map(rules + public_rules, strict_slashes=False, merge_slashes=False)
        except (ValueError, SyntaxError, LookupError) as exc:  # werkzeug: bad syntax, unknown converter
            raise ValueError(f"a route pattern is not valid werkzeug rule syntax: {exc}") from None
        for rule, route in zip(rules, self.routes, strict=True):
            check_org_variable(rule, route, {"org", org} - {None})
        # Bound once (no host or method rules are used): matching a path costs about 7 µs, so
        # the answers for recently seen paths are kept, a bounded dict cleared when full.
        self._adapter = self._map.bind("localhost")
        self._matches: dict[str, tuple[Any, Mapping[str, Any]] | None] = {}

    def _match(self, path: str) -> tuple[Any, Mapping[str, Any]] | None:
        """(endpoint, URL variables) of the rule matching ``path``, or None for no rule."""
        try:
            return self._matches[path]
        except KeyError:
            pass
        try:
            matched: tuple[Any, Mapping[str, Any]] | None = self._adapter.match(path)
        except HTTPException:
            matched = None
        if len(path) <= _CACHED_PATH_LENGTH:
            if len(self._matches) >= _CACHED_PATHS:
                self._matches.clear()
            self._matches[path] = matched
        return matched

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        matched = self._match(get_path_info(environ))
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if matched is None:
            return _send(self.guard.refused(_UNCOVERED, method=method), start_response)
        endpoint, args = matched
        if endpoint == _PUBLIC:
            return self.app(environ, start_response)
        route = self.routes[endpoint]
        scope_map = route.scope_map
        if (
            method == "OPTIONS"
            and "OPTIONS" not in scope_map.methods
            and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in environ
        ):
            # A CORS preflight (Fetch standard) carries no credentials: the app answers it. Any
            # other OPTIONS is checked like every method, so no view runs unauthenticated.
            return self.app(environ, start_response)
        try:
            check_host(environ.get("HTTP_HOST"))  # RFC 9112 §3.2: a bad Host is a 400, first
            # Most requests have neither a query string nor a body: nothing to look into.
            elsewhere = (
                token_elsewhere(environ)
                if environ.get("QUERY_STRING") or environ.get("CONTENT_TYPE")
                else False
            )
        except MalformedHost as exc:
            refused = self.guard.refusals.bad_host(exc)
            return _send(
                self.guard.refused(refused, route=self._patterns[endpoint], method=method), start_response
            )
        except BodyError as exc:
            refused = self.guard.bad_body(exc)
            return _send(
                self.guard.refused(refused, route=self._patterns[endpoint], method=method), start_response
            )
        outcome = self.guard.authorize(
            authorization=environ.get("HTTP_AUTHORIZATION"),
            token_elsewhere=elsewhere,
            method=method,
            scope_map=scope_map,
            # Validated at start-up: a route that declares an org variable always has it.
            org=None if route.org is None else str(args[route.org]),
            dpop=self._dpop_request(environ, method) if self.guard.dpop is not None else None,
            route=self._patterns[endpoint],
        )
        if type(outcome) is Denial:
            return _send(outcome, start_response)
        environ[ACCESS_KEY] = outcome.access
        environ[TOKEN_KEY] = outcome.token
        if outcome.headers:  # a fresh DPoP nonce (RFC 9449 §8.2) on the app's own response
            return self.app(environ, _adding(outcome.headers, start_response))
        return self.app(environ, start_response)

    def _dpop_request(self, environ: dict[str, Any], method: str) -> DPoPRequest | None:
        return dpop_request(
            environ.get("HTTP_AUTHORIZATION"),
            environ.get("HTTP_DPOP"),
            method,
            lambda: request_url(environ, self.resource),
        )


def _adding(headers: tuple[tuple[str, str], ...], start_response: Callable[..., Any]) -> Callable[..., Any]:
    def start(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, [*response_headers, *headers], exc_info)

    return start


def _send(denial: Denial, start_response: Callable[..., Any]) -> list[bytes]:
    body = denial.body
    status = HTTPStatus(denial.status)
    start_response(f"{status.value} {status.phrase}", [*denial.headers, ("Content-Length", str(len(body)))])
    return [body]


def check_org_variable(rule: Any, route: Route, org_names: set[str | None]) -> None:
    """Fail closed at start-up: a route reads its organization from a variable it has, and a
    route that names an org variable does not declare that it has none."""
    if route.org is not None and route.org not in rule.arguments:
        reason = (
            f"route {rule.rule!r} has no URL variable {route.org!r}: name the variable that "
            "holds the organization with Route(scope_map, org=...), or declare "
            "Route(scope_map, org=None) for a route that names no organization"
        )
        raise ValueError(audit.misconfigured("routes", reason))
    named = org_names & rule.arguments
    if route.org is None and named:
        reason = (
            f"route {rule.rule!r} has the URL variable {sorted(named)[0]!r} but declares org=None, "
            "which would check its requests in the token's own organization: give "
            f"Route(scope_map, org={sorted(named)[0]!r})"
        )
        raise ValueError(audit.misconfigured("routes", reason))
