"""Django middleware: ``ResourceServerMiddleware`` protects URL patterns without touching views;
``ViewerContextMiddleware`` verifies the signed viewer-context headers another service sends.

::

    MIDDLEWARE = [
        ...,
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "resource_server.django.middleware.ViewerContextMiddleware",
        "resource_server.django.middleware.ResourceServerMiddleware",
    ]
    RESOURCE_SERVER_ROUTES = {"reports": {"GET": "report:read"}}     # URL name or route → scope map
    RESOURCE_SERVER_PUBLIC = ["health", "admin:*"]

``ResourceServerMiddleware`` is closed by default, like the WSGI and ASGI middlewares: a
resolved view that no ``RESOURCE_SERVER_ROUTES`` entry covers, that protects itself in no way
(``require``, ``ScopeMapMixin``, a DRF view with ``ScopeMapPermission``) and that is not declared
public is refused ``403``. A view that protects itself is left to its own check (an entry naming
it is not used: ``resource_server.W045``). The org is read from the resolved URL kwargs.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase

from ..bodies import MAX_BOUND_BODY, BodyError
from ..denials import Denial
from ..guard import Granted
from ..tokens.errors import VerificationUnavailable
from ..viewer_context import HEADER, ViewerContext
from .attributes import set_viewer_context
from .conf import get_config, get_resource_server
from .requests import read_body, request_target
from .responses import denial_response, with_grant_headers
from .routes import is_public, protection_of, route_entry
from .server import OUTCOME
from .views import org_of

__all__ = ["ResourceServerMiddleware", "ViewerContextMiddleware"]

log = logging.getLogger("resource_server")

_UNCOVERED = Denial(
    403, "forbidden", "no access policy covers this path", None, "no access policy covers this path"
)
_META_HEADER = "HTTP_" + HEADER.upper().replace("-", "_")


class _Middleware(ABC):
    """Sync and async alike (Django's middleware protocol): the request path runs on the event
    loop under ASGI, never in a thread that would serialize every request."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)  # Django's documented pattern: the handler awaits __call__

    def __call__(self, request: HttpRequest) -> Any:
        return self._acall(request) if self.is_async else self._call(request)

    @abstractmethod
    def _call(self, request: HttpRequest) -> Any: ...

    @abstractmethod
    async def _acall(self, request: HttpRequest) -> Any: ...


class ResourceServerMiddleware(_Middleware):
    """Protects the URL patterns ``RESOURCE_SERVER_ROUTES`` names; refuses every other resolved
    view that neither protects itself nor is declared public."""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        # Django reads process_view once, after this: the async one under ASGI, so checks are awaited.
        self.process_view: Callable[[HttpRequest, Any, Any, dict[str, Any]], Any] = (
            self._aprocess_view if self.is_async else self._process_view
        )
        self._own: dict[Any, bool] = {}  # view -> protects itself or is public (views are few)

    def _call(self, request: HttpRequest) -> Any:
        return _with_headers(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> Any:
        return _with_headers(request, await self.get_response(request))

    def _process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        found = self._route(request, view, kwargs)
        if found is None or isinstance(found, HttpResponseBase):
            return found
        scope_map, org = found
        outcome = get_resource_server().authorize(request, scope_map, org)
        return denial_response(outcome) if isinstance(outcome, Denial) else None

    async def _aprocess_view(self, request: HttpRequest, view: Any, args: Any, kwargs: dict[str, Any]) -> Any:
        found = self._route(request, view, kwargs)
        if found is None or isinstance(found, HttpResponseBase):
            return found
        scope_map, org = found
        outcome = await get_resource_server().aauthorize(request, scope_map, org)
        return denial_response(outcome) if isinstance(outcome, Denial) else None

    def _route(self, request: HttpRequest, view: Any, kwargs: dict[str, Any]) -> Any:
        """None to let the request through, a refusal to send, or (scope map, org) to check."""
        config = get_config()
        match = request.resolver_match
        name, route = (match.view_name, match.route) if match is not None else ("", "")
        if self._protects_itself(view):  # checked once, by the view (a DPoP proof is used once)
            return None
        entry = route_entry(config.routes, name, route)
        if entry is None:
            if is_public(config.public, name, route):
                return None
            # The route Django resolved, which no entry covers: refused, and recorded.
            return denial_response(config.server.refused(request, _UNCOVERED, None))
        org = org_of(config.server, request, kwargs, entry.org)
        if isinstance(org, Denial):
            return denial_response(config.server.refused(request, org, None))
        return entry.scope_map, org

    def _protects_itself(self, view: Any) -> bool:
        known = self._own.get(view)
        if known is None:
            known = self._own[view] = protection_of(view).kind != "unprotected"
        return known


def _with_headers(request: HttpRequest, response: Any) -> Any:
    """The grant's headers (a fresh DPoP nonce) on the view's own response."""
    outcome = request.__dict__.get(OUTCOME)
    return with_grant_headers(response, outcome) if isinstance(outcome, Granted) else response


class ViewerContextMiddleware(_Middleware):
    """Verifies ``X-Viewer-Context`` (issuer → secret map with rotation, bound to this request's
    method, target and body, used once) with the ``ResourceServer``'s ``viewer_context``
    verifier, and sets ``request.viewer_context``: the
    :class:`~resource_server.viewer_context.ViewerContext`, or None. Protected views then accept
    it as the caller when the request carries no token (a token wins); a view granted on a token
    sees None. An unknown issuer or a bad signature is logged and falls through to normal
    authentication, never an error; a body that cannot be read for the binding is ``400``, a
    replay cache that cannot be reached ``503`` (never accepted unchecked)."""

    def _call(self, request: HttpRequest) -> Any:
        refused = self._verify(request)
        return denial_response(refused) if refused is not None else self.get_response(request)

    async def _acall(self, request: HttpRequest) -> Any:
        set_viewer_context(request, None)
        if _META_HEADER in request.META:
            # HMAC and a replay cache (maybe Redis): off the event loop.
            refused = await sync_to_async(self._verify, thread_sensitive=False)(request)
            if refused is not None:
                return denial_response(refused)
        return await self.get_response(request)

    def _verify(self, request: HttpRequest) -> Denial | None:
        set_viewer_context(request, None)
        if _META_HEADER not in request.META:
            return None
        server = get_resource_server()
        verifier = server.viewer_context
        if verifier is None:  # the system check reports it; fail closed meanwhile
            log.error(
                "ViewerContextMiddleware needs ResourceServer(viewer_context=ViewerContextVerifier(...))"
            )
            return None
        try:
            context = verifier.verify(
                request.headers,
                method=request.method or "GET",
                path=request_target(request),
                body=lambda: read_body(request, MAX_BOUND_BODY),  # read only for a sound context
            )
        except BodyError as exc:
            return server.refused(request, server.guard.refusals.bad_body(exc).noting(source="viewer"), None)
        except VerificationUnavailable as exc:
            return server.refused(
                request, server.guard.refusals.unavailable(exc).noting(source="viewer"), None
            )
        set_viewer_context(request, context if isinstance(context, ViewerContext) else None)
        return None
