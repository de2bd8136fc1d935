"""The URL patterns of a Django project with what protects each, as
:class:`resource_server.tooling.Route` values: what ``manage.py scopes`` prints and checks, the
system checks report, ``ResourceServerMiddleware`` lets through and OpenAPI describes.

A view is protected by :func:`~resource_server.django.require` (or ``method_decorator`` of it on
``dispatch``), :class:`~resource_server.django.ScopeMapMixin`, a DRF view whose
``permission_classes`` hold ``ScopeMapPermission`` (or ``OrgMemberPermission``: any member), or
an entry of ``RESOURCE_SERVER_ROUTES`` when ``ResourceServerMiddleware`` is installed; it is
public by :func:`~resource_server.django.public` or ``RESOURCE_SERVER_PUBLIC``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

from policy import ScopeMap

from ..tooling import Route
from ..wsgi import Route as MiddlewareRoute
from .conf import Config
from .views import ORG, PUBLIC, SCOPE_MAP, ScopeMapMixin, compiled_scope_map

__all__ = [
    "MIDDLEWARE",
    "Pattern",
    "Protection",
    "class_protection",
    "is_public",
    "patterns",
    "project_routes",
    "protection_of",
]

MIDDLEWARE = "resource_server.django.middleware.ResourceServerMiddleware"
_IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})  # HEAD follows GET; OPTIONS is each framework's


@dataclass(frozen=True)
class Protection:
    """What protects one view: ``kind`` as :class:`~resource_server.tooling.Route` has it, its
    scope map and org kwarg, and ``error`` when the view declares a map that is not valid."""

    kind: str
    scope_map: ScopeMap | None = None
    org: str | None = None
    error: str | None = None
    drf_view: type | None = None  # the DRF view class, for the checks that concern DRF


@dataclass(frozen=True)
class Pattern:
    """One URL pattern: its route (as ``request.resolver_match.route`` spells it), its view name
    (``namespace:name``, or the view's dotted path), its callback and the kwargs it supplies."""

    route: str
    name: str
    callback: Any
    arguments: frozenset[str]


def patterns(urlconf: Any = None) -> Iterator[Pattern]:
    """Every URL pattern of the project's URLconf, includes followed."""
    yield from _walk(get_resolver(urlconf).url_patterns, "", (), frozenset())


def _walk(
    entries: Any, route: str, namespaces: tuple[str, ...], arguments: frozenset[str]
) -> Iterator[Pattern]:
    for entry in entries:
        here = _join_route(route, str(entry.pattern))
        names = arguments | _arguments(entry.pattern)
        if isinstance(entry, URLResolver):
            defaults = {k for k, v in (entry.default_kwargs or {}).items() if v is not None}
            spaces = (*namespaces, entry.namespace) if entry.namespace else namespaces
            yield from _walk(entry.url_patterns, here, spaces, names | defaults)
        elif isinstance(entry, URLPattern):
            defaults = {k for k, v in (entry.default_args or {}).items() if v is not None}
            name = entry.name or _function_path(entry.callback)
            yield Pattern(here, ":".join((*namespaces, name)), entry.callback, names | defaults)


def _join_route(first: str, second: str) -> str:
    """Django's ``ResolverMatch.route``: the patterns joined, later ``^`` anchors dropped."""
    return second if not first else first + second.removeprefix("^")


def _arguments(pattern: Any) -> frozenset[str]:
    if isinstance(pattern, RoutePattern):
        return frozenset(pattern.converters)
    if isinstance(pattern, RegexPattern):
        return frozenset(pattern.regex.groupindex)
    return frozenset()


def _function_path(callback: Any) -> str:
    """The dotted path Django's ``ResolverMatch`` names an unnamed view by."""
    func = getattr(callback, "view_class", None) or getattr(callback, "cls", None) or callback
    return f"{func.__module__}.{getattr(func, '__qualname__', func.__class__.__name__)}"


def _view_class(callback: Any) -> type | None:
    found = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    return found if isinstance(found, type) else None


def _drf_protection(view_class: type) -> Protection | None:
    """The protection of a DRF view class, from its ``permission_classes`` (DRF itself is
    imported only when the class is a DRF view)."""
    try:
        from rest_framework.views import APIView
    except ImportError:
        return None
    if not issubclass(view_class, APIView):
        return None
    from .rest_framework import OrgMemberPermission, ScopeMapPermission

    permissions = [p for p in getattr(view_class, "permission_classes", ()) if isinstance(p, type)]
    org = getattr(view_class, "org_url_kwarg", "org")
    if any(issubclass(p, ScopeMapPermission) for p in permissions):
        return _class_map(view_class, org, drf=True)
    if any(issubclass(p, OrgMemberPermission) for p in permissions):
        return Protection("authenticated", org=org, drf_view=view_class)
    return None


def _class_map(view_class: type, org: str | None, *, drf: bool = False) -> Protection:
    drf_view = view_class if drf else None
    try:
        return Protection("scope map", compiled_scope_map(view_class), org, drf_view=drf_view)
    except ValueError as exc:
        return Protection("scope map", None, org, f"{view_class.__qualname__}: {exc}", drf_view)


def protection_of(callback: Any) -> Protection:
    """What protects the view ``callback`` itself (its decorator, mixin or DRF permission
    classes); ``"unprotected"`` when nothing does."""
    if getattr(callback, PUBLIC, False):
        return Protection("public")
    if getattr(callback, SCOPE_MAP, None) is not None:
        return Protection("scope map", getattr(callback, SCOPE_MAP), getattr(callback, ORG, "org"))
    view_class = _view_class(callback)
    return class_protection(view_class) if view_class is not None else Protection("unprotected")


def class_protection(view_class: type) -> Protection:
    """What protects a class-based view (DRF or Django) by its class."""
    if getattr(view_class, PUBLIC, False):
        return Protection("public")
    drf = _drf_protection(view_class)
    if drf is not None:
        return drf
    if issubclass(view_class, ScopeMapMixin):
        return _class_map(view_class, view_class.org_url_kwarg)
    dispatch = getattr(view_class, "dispatch", None)  # method_decorator(require(...), "dispatch")
    if getattr(dispatch, SCOPE_MAP, None) is not None:
        return Protection("scope map", getattr(dispatch, SCOPE_MAP), getattr(dispatch, ORG, "org"))
    return Protection("unprotected")


def middleware_installed() -> bool:
    return MIDDLEWARE in (getattr(settings, "MIDDLEWARE", None) or ())


def route_entry(routes: Mapping[str, MiddlewareRoute], name: str, route: str) -> MiddlewareRoute | None:
    """The ``RESOURCE_SERVER_ROUTES`` entry for a view name or route, if any."""
    return routes.get(name) or routes.get(route)


def is_public(public: frozenset[str], name: str, route: str) -> bool:
    """Whether ``RESOURCE_SERVER_PUBLIC`` names this view (its name, route or namespace)."""
    if name in public or route in public:
        return True
    namespace = name.rpartition(":")[0]
    while namespace:
        if f"{namespace}:*" in public:
            return True
        namespace = namespace.rpartition(":")[0]
    return False


def _methods(callback: Any, protection: Protection) -> tuple[str, ...]:
    """The methods a view serves: a DRF viewset's actions, the handlers a class-based view
    defines; a function view serves what its scope map names (unmapped methods are refused)."""
    actions = getattr(callback, "actions", None)
    view_class = _view_class(callback)
    if isinstance(actions, Mapping):
        methods = {method.upper() for method in actions}
    elif view_class is not None:
        methods = {m.upper() for m in getattr(view_class, "http_method_names", ()) if hasattr(view_class, m)}
    elif protection.scope_map is not None:
        methods = set(protection.scope_map.methods)
    else:
        methods = set()
    return tuple(sorted(methods - _IGNORED_METHODS))


def describe(pattern: Pattern, config: Config) -> tuple[Route, Protection]:
    """The :class:`~resource_server.tooling.Route` of one pattern (and its protection)."""
    protection = protection_of(pattern.callback)  # a view's own protection comes first
    entry = route_entry(config.routes, pattern.name, pattern.route) if middleware_installed() else None
    if protection.kind == "unprotected" and entry is not None:
        protection = Protection("scope map", entry.scope_map, entry.org)
    elif protection.kind == "unprotected" and is_public(config.public, pattern.name, pattern.route):
        protection = Protection("public")
    route = Route(
        "/" + pattern.route.removeprefix("^"),
        pattern.name,
        _methods(pattern.callback, protection),
        protection.kind,
        protection.scope_map,
        protection.org if protection.kind in ("scope map", "authenticated") else None,
        pattern.arguments,
    )
    return route, protection


def project_routes(config: Config, urlconf: Any = None) -> list[tuple[Route, Protection]]:
    """Every URL pattern of the project with what protects it, sorted by rule."""
    found = [describe(pattern, config) for pattern in patterns(urlconf)]
    return sorted(found, key=lambda pair: (pair[0].rule, pair[0].endpoint))
