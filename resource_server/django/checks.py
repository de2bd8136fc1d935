"""System checks (``manage.py check``, and before ``runserver`` and ``migrate``): each mistake that
would make protected routes refuse everything, or leave a route open, reported at start-up.

=====================  =========================================================================
``resource_server.E010``  a protected view reads its org from a URL kwarg its pattern does not have
``resource_server.E011``  a protection names no org on a pattern with an ``org`` kwarg
``resource_server.E012``  a view serves a method its scope map does not cover
``resource_server.E013``  a scope map names a scope no role grants
``resource_server.E014``  a view's ``scope_map`` is missing or not a valid scope map
``resource_server.W010``  a view is neither protected nor declared public
``resource_server.W020``  a DRF view uses ``ScopeMapPermission`` without ``BearerTokenAuthentication``
``resource_server.W030``  the project's DRF ``EXCEPTION_HANDLER`` drops ``WWW-Authenticate``
``resource_server.E040``  ``ViewerContextMiddleware`` without ``ResourceServer(viewer_context=...)``
``resource_server.E041``  a ``RESOURCE_SERVER_ROUTES`` key names no URL pattern
``resource_server.E042``  ``RESOURCE_SERVER_ROUTES`` without ``ResourceServerMiddleware``
``resource_server.W043``  ``ResourceServerMiddleware`` before ``AuthenticationMiddleware``
``resource_server.W044``  ``ViewerContextMiddleware`` after ``ResourceServerMiddleware``
``resource_server.W045``  a ``RESOURCE_SERVER_ROUTES`` key names a view that protects itself
=====================  =========================================================================
"""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from ..tooling import Wording, find_problems
from .conf import ROUTES, get_config
from .routes import MIDDLEWARE, middleware_installed, patterns, project_routes, protection_of

__all__ = ["WORDING", "check_exception_handler", "check_middleware", "check_routes"]

#: How Django users fix what the route checks find.
WORDING = Wording(
    public="declare it with @public or RESOURCE_SERVER_PUBLIC if it is public on purpose",
    no_org="use org=None (org_url_kwarg = None) for a view that names no organization",
    org_none="declares no org (org=None)",
)
_IDS = {"org": "E010", "org_none": "E011", "method": "E012", "scope": "E013", "unprotected": "W010"}
VIEWER = "resource_server.django.middleware.ViewerContextMiddleware"
AUTHENTICATION = "django.contrib.auth.middleware.AuthenticationMiddleware"


def _message(check_id: str, text: str, obj: Any = None, hint: str | None = None) -> CheckMessage:
    kind = Warning if check_id.startswith("W") else Error
    return kind(text, hint=hint, obj=obj, id=f"resource_server.{check_id}")


@register(Tags.urls, Tags.security)
def check_routes(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every URL pattern: protected as it declares, or declared public (E010-E014, W010, E041)."""
    config = get_config()
    described = project_routes(config)
    found = [
        _message("E014", protection.error, route.endpoint)
        for route, protection in described
        if protection.error
    ]
    for problem in find_problems([route for route, _ in described], config.server.roles, WORDING):
        found.append(_message(_IDS[problem.kind], problem.message, problem.route.endpoint))
    if config.routes and middleware_installed():
        known = {name for pattern in patterns() for name in (pattern.name, pattern.route)}
        found += [
            _message("E041", f"{ROUTES} names {key!r}, which is no URL name or route of this project", key)
            for key in config.routes
            if key not in known
        ]
        found += [
            _message(
                "W045",
                f"{ROUTES} names {key!r}, whose view protects itself: the entry is not used",
                key,
                "remove the entry, or the view's own protection",
            )
            for pattern in patterns()
            for key in (pattern.name, pattern.route)
            if key in config.routes and protection_of(pattern.callback).kind != "unprotected"
        ]
    return found + _drf_views(described)


def _drf_views(described: list[Any]) -> list[CheckMessage]:
    if find_spec("rest_framework") is None:
        return []
    from .rest_framework import BearerTokenAuthentication

    found = []
    for route, protection in described:
        view_class = protection.drf_view
        if view_class is None or protection.kind != "scope map":
            continue
        authenticators = getattr(view_class, "authentication_classes", ())
        if not any(isinstance(a, type) and issubclass(a, BearerTokenAuthentication) for a in authenticators):
            found.append(
                _message(
                    "W020",
                    f"{view_class.__qualname__} ({route.rule}) uses ScopeMapPermission without "
                    "BearerTokenAuthentication: tokens are checked, but request.user is not the token's user",
                    route.endpoint,
                    "add resource_server.django.rest_framework.BearerTokenAuthentication to its "
                    "authentication_classes (or DEFAULT_AUTHENTICATION_CLASSES)",
                )
            )
    return found


@register(Tags.security)
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The middleware are installed, configured and ordered so they can work (E040-W044)."""
    config = get_config()
    middleware = list(getattr(settings, "MIDDLEWARE", None) or ())
    found = []
    if VIEWER in middleware and config.server.viewer_context is None:
        found.append(
            _message(
                "E040",
                "ViewerContextMiddleware is installed but the ResourceServer has no viewer_context verifier",
                hint="give ResourceServer(viewer_context=ViewerContextVerifier(...)) (VIEWER_CONTEXT)",
            )
        )
    if config.routes and not middleware_installed():
        found.append(
            _message(
                "E042",
                f"{ROUTES} is set but {MIDDLEWARE} is not in MIDDLEWARE: those routes are not protected",
            )
        )
    if _runs_before(middleware, MIDDLEWARE, AUTHENTICATION):
        found.append(
            _message(
                "W043", "ResourceServerMiddleware runs before AuthenticationMiddleware: it sees no sessions"
            )
        )
    if _runs_before(middleware, MIDDLEWARE, VIEWER):
        found.append(
            _message(
                "W044",
                "ViewerContextMiddleware runs after ResourceServerMiddleware: it sees no viewer contexts",
            )
        )
    return found


def _runs_before(middleware: list[str], first: str, second: str) -> bool:
    return first in middleware and second in middleware and middleware.index(first) < middleware.index(second)


@register(Tags.security)
def check_exception_handler(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W030: one refusal tried through the project's DRF ``EXCEPTION_HANDLER``; a handler that
    loses its status or its ``WWW-Authenticate`` challenge (DRF #8263's symptom) is reported."""
    if find_spec("rest_framework") is None:
        return []
    from rest_framework.settings import api_settings
    from rest_framework.views import APIView

    from .rest_framework import Refused

    handler = api_settings.EXCEPTION_HANDLER
    denial = get_config().server.guard.refusals.insufficient_scope("scope", "the system check", dpop=False)
    view = APIView()
    view.headers = {}
    failure: str | None
    try:
        response = handler(Refused(denial), {"view": view, "args": (), "kwargs": {}, "request": None})
    except Exception as exc:
        response, failure = None, f"raises {type(exc).__name__}"
    else:
        failure = _lost(response, denial.www_authenticate)
    if failure is None:
        return []
    name = f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', handler)}"
    return [
        _message(
            "W030",
            f"the DRF EXCEPTION_HANDLER {name} {failure} for the library's refusals: clients cannot "
            "step up from its 401 and 403 responses",
            hint="keep the status and headers of the response rest_framework.views.exception_handler "
            "builds (call it first, then change only its data)",
        )
    ]


def _lost(response: Any, challenge: str | None) -> str | None:
    if response is None:
        return "returns None (a 500)"
    if getattr(response, "status_code", None) != 403:
        return f"changes the status to {getattr(response, 'status_code', None)}"
    if not hasattr(response, "get") or response.get("WWW-Authenticate") != challenge:
        return "drops the WWW-Authenticate header"
    return None
