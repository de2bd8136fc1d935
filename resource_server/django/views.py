"""Plain Django views: :func:`require` for function views (sync or async), :class:`ScopeMapMixin`
for class-based views, :func:`public` for views public on purpose.

::

    @require({"GET": "project:read", "POST": "project:write"})
    def projects(request, org): ...             # request.access, request.auth, request.user

    class Projects(ScopeMapMixin, View):
        scope_map = {"GET": "project:read"}
        org_url_kwarg = "org"                    # None: the route names no organization

An OPTIONS request is checked like any method, except a CORS preflight to a class-based view
(:func:`preflight`). A protected view is exempt from ``CsrfViewMiddleware`` (token clients carry no CSRF token), and a
request authenticated by its session is CSRF-checked instead, exactly as DRF's
``SessionAuthentication`` checks it. ``method_decorator(require(...), name="dispatch")`` protects
a sync class-based view; use :class:`ScopeMapMixin` for async ones.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from asgiref.sync import iscoroutinefunction
from django.apps import apps
from django.http import HttpRequest, HttpResponseBase

from policy import ScopeMap

from ..checks import check_scopes_granted
from ..denials import Denial
from .conf import get_resource_server
from .responses import denial_response, with_grant_headers

__all__ = ["ScopeMapMixin", "compiled_scope_map", "org_of", "preflight", "public", "require"]

F = TypeVar("F")
V = TypeVar("V", bound=Callable[..., Any])

#: The attributes the tooling reads (``manage.py scopes``, the system checks, OpenAPI).
SCOPE_MAP = "_resource_server_scope_map"
ORG = "_resource_server_org"
PUBLIC = "_resource_server_public"


def public(view: F) -> F:
    """Declare a view (a function, a class-based view or a DRF view class) public on purpose
    (``/health``, ``/login``): the system checks and ``manage.py scopes check`` then accept it
    unprotected, and ``ResourceServerMiddleware`` lets it through. For views you do not write,
    list their URL names in ``RESOURCE_SERVER_PUBLIC``."""
    setattr(view, PUBLIC, True)
    return view


def _checked_org(org: object) -> str | None:
    if org is not None and (not isinstance(org, str) or not org.isidentifier()):
        raise ValueError(f"org must name a URL kwarg (or be None), not {org!r}")
    return org


def _compiled(scope_map: ScopeMap | Mapping[str, Any], where: str) -> ScopeMap:
    compiled = scope_map if isinstance(scope_map, ScopeMap) else ScopeMap(scope_map)
    if apps.ready and apps.is_installed("resource_server.django"):
        # Every adapter refuses a scope no role grants when it is given the map (start-up).
        check_scopes_granted(get_resource_server().roles, [(where, compiled)])
    return compiled


def require(scope_map: ScopeMap | Mapping[str, Any], org: str | None = "org") -> Callable[[V], V]:
    """Protect a function view, sync or async, with ``scope_map`` (per HTTP method, any-of
    alternatives each all-of: the grammar of :class:`policy.ScopeMap`), for the organization in
    the URL kwarg ``org`` (None: the route names none, and the token's own org is asked about).
    The map is validated now: a ``ValueError`` names the entry, or the scope no role grants."""
    org = _checked_org(org)

    def decorate(view: V) -> V:
        compiled = _compiled(scope_map, getattr(view, "__qualname__", repr(view)))
        protected = (
            _aprotected(view, compiled, org) if iscoroutinefunction(view) else _protected(view, compiled, org)
        )
        functools.update_wrapper(protected, view)
        _exempt_from_csrf_middleware(protected)
        setattr(protected, SCOPE_MAP, compiled)
        setattr(protected, ORG, org)
        return cast(V, protected)  # update_wrapper: the view's signature, name and attributes

    return decorate


def _protected(view: Callable[..., Any], scope_map: ScopeMap, org: str | None) -> Callable[..., Any]:
    def protected(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        server = get_resource_server()
        named = org_of(server, request, kwargs, org)
        outcome = named if isinstance(named, Denial) else server.authorize(request, scope_map, named)
        if isinstance(outcome, Denial):
            return denial_response(outcome)
        return with_grant_headers(view(request, *args, **kwargs), outcome)

    return protected


def _aprotected(view: Callable[..., Any], scope_map: ScopeMap, org: str | None) -> Callable[..., Any]:
    async def aprotected(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        server = get_resource_server()
        named = org_of(server, request, kwargs, org)
        outcome = named if isinstance(named, Denial) else await server.aauthorize(request, scope_map, named)
        if isinstance(outcome, Denial):
            return denial_response(outcome)
        return with_grant_headers(await view(request, *args, **kwargs), outcome)

    return aprotected


def _exempt_from_csrf_middleware(view: Callable[..., Any]) -> None:
    """What Django's ``csrf_exempt`` does, without a wrapper around the view: session requests
    are CSRF-checked by the guard's session step instead (a token client carries no CSRF token)."""
    function: Any = view  # a function or a view function takes attributes
    function.csrf_exempt = True


def org_of(server: Any, request: HttpRequest, kwargs: Mapping[str, Any], org: str | None) -> Any:
    """The organization the URL names, as text; None for a route declared to name none; for a
    route whose URL lacks the kwarg it declared, the 403 of a misconfigured route (fail closed:
    never the token's own org instead)."""
    if org is None:
        return None
    value = kwargs.get(org)
    if value is None and request.resolver_match is not None:
        value = request.resolver_match.kwargs.get(org)
    if value is None:
        route = request.resolver_match.route if request.resolver_match is not None else request.path
        return server.forbidden(
            f"the route {route} has no URL kwarg {org!r}; use org=None if it names no organization"
        )
    return value if value.__class__ is str else str(value)


def preflight(request: HttpRequest, scope_map: ScopeMap) -> bool:
    """A CORS preflight (Fetch standard): ``OPTIONS`` with ``Access-Control-Request-Method``
    on a route whose map does not cover OPTIONS. It carries no credentials, so a class-based
    view (Django's or DRF's, whose ``options()`` runs no handler) gets it unchecked, as the WSGI
    and ASGI middlewares pass it. A function view answers every method with the same code, so
    :func:`require` and ``ResourceServerMiddleware`` check an OPTIONS like any method: answer
    preflights in the CORS middleware (django-cors-headers does, before any view)."""
    return (
        request.method == "OPTIONS"
        and "OPTIONS" not in scope_map.methods
        and "HTTP_ACCESS_CONTROL_REQUEST_METHOD" in request.META
    )


_compiled_maps: dict[type, ScopeMap] = {}
_compiled_lock = threading.Lock()


def compiled_scope_map(cls: type) -> ScopeMap:
    """The compiled ``scope_map`` attribute of a view class (compiled once per class): a
    ``ValueError`` when it is missing or not a valid scope map."""
    found = _compiled_maps.get(cls)
    if found is None:
        declared = getattr(cls, "scope_map", None)
        if declared is None:
            raise ValueError(f"{cls.__qualname__} has no scope_map")
        found = declared if isinstance(declared, ScopeMap) else ScopeMap(declared)
        with _compiled_lock:
            _compiled_maps[cls] = found
    return found


if TYPE_CHECKING:  # what the mixin extends: Django's View, or DRF's APIView (a View)
    from django.views import View as _ViewBase
else:
    _ViewBase = object


class ScopeMapMixin(_ViewBase):
    """Protect a class-based view (sync or async handlers) with its ``scope_map`` attribute,
    for the organization in the URL kwarg ``org_url_kwarg`` (default ``"org"``; None: the
    route names none). A subclass with an invalid ``scope_map`` fails when it is defined."""

    scope_map: ScopeMap | Mapping[str, Any] | None = None
    org_url_kwarg: str | None = "org"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _checked_org(cls.org_url_kwarg)
        if cls.__dict__.get("scope_map") is not None:
            _compiled(cls.__dict__["scope_map"], cls.__qualname__)

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        view = super().as_view(**initkwargs)
        _exempt_from_csrf_middleware(view)
        return view

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        parent = super().dispatch
        server = get_resource_server()
        try:
            scope_map = compiled_scope_map(type(self))
        except ValueError as exc:
            return denial_response(server.forbidden(str(exc)))
        if preflight(request, scope_map):
            return parent(request, *args, **kwargs)
        org = org_of(server, request, kwargs, self.org_url_kwarg)
        if getattr(self, "view_is_async", False):
            return self._adispatch(parent, server, scope_map, org, request, *args, **kwargs)
        outcome = org if isinstance(org, Denial) else server.authorize(request, scope_map, org)
        if isinstance(outcome, Denial):
            return denial_response(outcome)
        return with_grant_headers(parent(request, *args, **kwargs), outcome)

    async def _adispatch(
        self,
        parent: Callable[..., Any],
        server: Any,
        scope_map: ScopeMap,
        named: Any,
        request: HttpRequest,
        /,
        *args: Any,
        **kwargs: Any,
    ) -> HttpResponseBase:
        outcome = named if isinstance(named, Denial) else await server.aauthorize(request, scope_map, named)
        if isinstance(outcome, Denial):
            return denial_response(outcome)
        response: HttpResponseBase = await parent(request, *args, **kwargs)  # an async view's handler
        return with_grant_headers(response, outcome)
