"""The URL rules of a Flask app with what protects each: the table ``flask scopes`` prints and
checks, and OpenAPI describes; and the checks the extension runs on them before it serves
anything (a route serving the function ``@rs.require`` wrapped, a scope no role grants)."""

from __future__ import annotations

import functools
import inspect
import re
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask

from policy import ScopeMap

from .. import tooling
from ..checks import check_scopes_granted
from ..tooling import Route

if TYPE_CHECKING:
    from . import ResourceServer

__all__ = [
    "CONVERTER",
    "Route",
    "WrappedViews",
    "check_routes",
    "checking_routes_once",
    "problems",
    "protected_routes",
    "route_table",
]

_IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})  # HEAD follows GET; OPTIONS is answered by Flask
#: A werkzeug rule variable: ``<converter(args):name>`` or ``<name>``.
CONVERTER = re.compile(r"<(?:([^:<>(]+)(?:\([^<>]*\))?:)?([^<>:]+)>")


def protected_routes(app: Flask, rs: ResourceServer) -> list[Route]:
    """Every URL rule of ``app`` with what protects it, sorted by rule."""
    public_endpoints = {
        "static",
        "resource_server_metadata",
        *app.config.get("RESOURCE_SERVER_PUBLIC_ENDPOINTS", ()),
    }
    routes = []
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        methods = tuple(sorted(set(rule.methods or ()) - _IGNORED_METHODS))
        blueprint = rule.endpoint.rpartition(".")[0]
        # The variables a request can supply: those in the pattern, and defaults that are values
        # (werkzeug counts defaults as arguments, a None default too).
        defaults = {name for name, value in (rule.defaults or {}).items() if value is not None}
        arguments = frozenset(name for _, name in CONVERTER.findall(rule.rule)) | defaults

        def route(kind: str, scope_map: ScopeMap | None = None, org: str | None = None) -> Route:
            return Route(rule.rule, rule.endpoint, methods, kind, scope_map, org, arguments)  # noqa: B023

        scope_map = getattr(view, "_resource_server_scope_map", None)
        if scope_map is not None:
            routes.append(route("scope map", scope_map, getattr(view, "_resource_server_org", None)))
        elif blueprint in rs.blueprint_maps:
            routes.append(route("scope map", *rs.blueprint_maps[blueprint]))
        elif getattr(view, "_resource_server_authenticated", False):
            routes.append(route("authenticated", org=getattr(view, "_resource_server_org", None)))
        elif getattr(view, "_resource_server_resource_token", False):
            routes.append(route("resource token", org=getattr(view, "_resource_server_org", None)))
        elif rule.endpoint in public_endpoints or getattr(view, "_resource_server_public", False):
            routes.append(route("public"))
        else:
            routes.append(route("unprotected"))
    return sorted(routes, key=lambda r: (r.rule, r.endpoint))


def route_table(app: Flask, rs: ResourceServer) -> list[dict[str, Any]]:
    """The rows of ``flask scopes routes`` (:func:`resource_server.tooling.route_table`)."""
    return tooling.route_table(protected_routes(app, rs), rs.roles)


#: How Flask users fix what :func:`problems` finds.
WORDING = tooling.Wording(
    public="declare it with @rs.public or RESOURCE_SERVER_PUBLIC_ENDPOINTS if it is public on purpose"
)


def problems(app: Flask, rs: ResourceServer) -> list[str]:
    """What ``flask scopes check`` fails on: what the start-up checks refuse (a route serving a
    function ``@rs.require`` wrapped, a scope no role grants), and what
    :func:`resource_server.tooling.route_problems` finds (a rule without the org variable its
    protection reads, a method its scope map misses, any route neither protected nor declared
    public)."""
    misordered = rs.wrapped_views.misordered(app)
    # Every route is protected, declared public, or reported: an app with no protected route
    # at all is reported too (its routes may all have @rs.require above @app.route).
    found = list(misordered.values())
    return found + tooling.route_problems(protected_routes(app, rs), rs.roles, WORDING, skip=misordered)


#: How far :meth:`WrappedViews.remember` looks through decorators, and how many callables at most.
_UNWRAP_DEPTH, _UNWRAP_CALLABLES = 8, 64


class WrappedViews:
    """The functions ``@rs.require`` wrapped, and what they wrap, by id, held so that no id is
    reused. None of them may be what a route serves: with ``@rs.require`` written above
    ``@app.route``, the route registers the function before it is wrapped, and every request
    reaches it unchecked.

    "What they wrap" follows ``__wrapped__`` (which ``functools.wraps`` sets) and, for
    decorators that do not set it, the callables a wrapper closes over (``__closure__``), the
    function of a bound method and the callable attributes of a callable object, a few levels
    deep: a plain decorator between ``@rs.require`` and ``@app.route`` hides nothing."""

    def __init__(self) -> None:
        self._views: dict[int, Callable[..., Any]] = {}

    def remember(self, view: Callable[..., Any]) -> None:
        level: list[Any] = [view]
        seen = 0
        for _ in range(_UNWRAP_DEPTH):
            inner: list[Any] = []
            for found in level:
                if id(found) in self._views or seen >= _UNWRAP_CALLABLES:
                    continue
                self._views[id(found)] = found
                seen += 1
                inner.extend(_wrapped_by(found))
            if not inner:
                return
            level = inner

    def misordered(self, app: Flask) -> dict[str, str]:
        """Endpoint → what is wrong, for each endpoint of ``app`` serving one of them, unless
        that endpoint is declared public (``@rs.public`` or ``RESOURCE_SERVER_PUBLIC_ENDPOINTS``):
        the same function may be served public at one route and wrapped at another."""
        public = set(app.config.get("RESOURCE_SERVER_PUBLIC_ENDPOINTS", ()))
        found = {}
        for endpoint, view in app.view_functions.items():
            if self._views.get(id(view)) is not view:
                continue
            if endpoint in public or getattr(view, "_resource_server_public", False):
                continue
            rules = ", ".join(sorted(rule.rule for rule in app.url_map.iter_rules(endpoint)))
            found[endpoint] = (
                f"{rules} ({endpoint}) serves {getattr(view, '__qualname__', view)!r} unprotected: "
                "@rs.require is above @app.route, so the route has the function as it was before "
                "require wrapped it. Put @rs.require below @app.route (or, to serve the same "
                "function unprotected on purpose, declare that route public with @rs.public)"
            )
        return found


def _wrapped_by(found: Any) -> list[Any]:
    """The callables ``found`` may be a decorator's wrapper around. Read without running any of
    its code: ``type()`` and :func:`inspect.getattr_static` only, since a wrapper may close over
    a proxy (``current_access``) that evaluates itself on any attribute access or ``isinstance``."""
    kind = type(found)
    inner = []
    wrapped = inspect.getattr_static(found, "__wrapped__", None)
    if wrapped is not None and kind in _ROUTINES:
        inner.append(wrapped)
    if kind is types.MethodType:
        inner.append(found.__func__)
    elif kind is types.FunctionType:
        for cell in found.__closure__ or ():
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if type(content) in _ROUTINES or _is_callable_object(content):
                inner.append(content)
    elif _is_callable_object(found):  # a decorator written as a class holds the view as an attribute
        attributes = getattr(found, "__dict__", None)  # a plain class: nothing forwarded
        if type(attributes) is dict:
            inner += [v for v in attributes.values() if type(v) in _ROUTINES or _is_callable_object(v)]
    return inner


_ROUTINES = (types.FunctionType, types.MethodType, functools.partial)


def _is_callable_object(value: Any) -> bool:
    """An instance of a class defined in Python with its own ``__call__`` (not a proxy, a type
    or a builtin)."""
    kind = type(value)
    return (
        kind.__module__ != "builtins"
        and not issubclass(kind, type)
        and "__call__" in vars(kind)
        and "__getattr__" not in vars(kind)  # proxies forward everything: not followed
        and type(vars(kind)["__call__"]) is types.FunctionType
    )


def check_routes(app: Flask, rs: ResourceServer) -> None:
    """``ValueError`` for a route that serves a function ``@rs.require`` wrapped, or whose scope
    map names a scope no role grants (the check every adapter runs at start-up:
    :func:`resource_server.checks.check_scopes_granted`)."""
    misordered = rs.wrapped_views.misordered(app)
    if misordered:
        raise ValueError("; ".join(misordered.values()))
    maps = [
        (route.rule, route.scope_map) for route in protected_routes(app, rs) if route.scope_map is not None
    ]
    check_scopes_granted(rs.roles, maps)


def checking_routes_once(app: Flask, rs: ResourceServer) -> Callable[[], None]:
    """A ``before_request`` function running :func:`check_routes` at the first request, when
    every route and blueprint is registered (Flask refuses new ones after it). Until the routes
    pass, every request fails (a 500, the error in the log): none reaches an unchecked view.
    Once they pass, it leaves the app's list, so later requests do not pay for it."""
    checked = False

    def check_routes_once() -> None:
        nonlocal checked
        if checked:
            return
        check_routes(app, rs)
        checked = True
        hooks = app.before_request_funcs.get(None)
        if hooks is not None and check_routes_once in hooks:
            # A new list, not an in-place removal: Flask is iterating the current one.
            app.before_request_funcs[None] = [hook for hook in hooks if hook is not check_routes_once]

    return check_routes_once
