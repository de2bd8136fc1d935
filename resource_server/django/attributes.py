"""What the adapter puts on a request it admits: ``request.access``, ``request.auth`` and
``request.viewer_context``. They are set and read here only, through functions a type checker
follows; :class:`ProtectedHttpRequest` declares them for the views that read them."""

from __future__ import annotations

from django.http import HttpRequest

from policy import Access

from ..tokens import VerifiedToken
from ..viewer_context import ViewerContext

__all__ = ["ProtectedHttpRequest", "set_access", "set_auth", "set_viewer_context", "viewer_context_of"]

_ACCESS = "access"
_AUTH = "auth"
_VIEWER_CONTEXT = "viewer_context"


class ProtectedHttpRequest(HttpRequest):
    """The request a view protected by :func:`~resource_server.django.require`,
    :class:`~resource_server.django.ScopeMapMixin` or ``ResourceServerMiddleware`` receives, as a
    type checker sees it: annotate the view's ``request`` with it to read what the adapter set
    (``def projects(request: ProtectedHttpRequest, org: str) -> JsonResponse``). Django passes
    its own request object all the same; this class only declares the attributes.

    ``access`` is the :class:`policy.Access`; ``auth`` the
    :class:`~resource_server.tokens.VerifiedToken` (None for a session or a viewer context);
    ``viewer_context`` the verified :class:`~resource_server.viewer_context.ViewerContext` the
    request was granted on, else None (set when ``ViewerContextMiddleware`` is installed)."""

    access: Access
    auth: VerifiedToken | None
    viewer_context: ViewerContext | None


def set_access(request: HttpRequest, access: Access) -> None:
    setattr(request, _ACCESS, access)


def set_auth(request: HttpRequest, token: VerifiedToken | None) -> None:
    setattr(request, _AUTH, token)


def set_viewer_context(request: HttpRequest, context: ViewerContext | None) -> None:
    setattr(request, _VIEWER_CONTEXT, context)


def viewer_context_of(request: HttpRequest) -> ViewerContext | None:
    """The verified viewer context ``ViewerContextMiddleware`` put on the request, if any."""
    found = request.__dict__.get(_VIEWER_CONTEXT)  # set by set_viewer_context, on the instance
    return found if isinstance(found, ViewerContext) else None
