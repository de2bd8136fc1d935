"""URL patterns to include: the RFC 9728 protected-resource metadata document, and the agent
endpoints.

::

    urlpatterns = [
        path("", include("resource_server.django.urls")),   # /.well-known/oauth-protected-resource...
        path("orgs/<str:org>/", include(agent_urls(issuer=issuer, grants=DjangoGrantStore()))),
    ]

The metadata document is served at the well-known URL RFC 9728 §3.1 derives from the
``ResourceServer``'s ``resource`` (and not at all without one); its ``scopes_supported`` lists
every scope the project's protected routes name.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.http import Http404, HttpRequest, JsonResponse
from django.urls import URLPattern, path, re_path
from django.views.decorators.http import require_GET

from ..capability import CapabilityIssuer
from ..metadata import WELL_KNOWN
from .conf import get_config
from .routes import project_routes
from .views import public

__all__ = ["agent_urls", "metadata_view", "urlpatterns"]

app_name = "resource_server"


@public
@require_GET
def metadata_view(request: HttpRequest, suffix: str | None = None) -> JsonResponse:
    """RFC 9728 §2: the protected resource metadata document."""
    config = get_config()
    server = config.server
    if server.resource is None or server.resource_metadata is None:
        raise Http404("no resource is configured")
    if f"{WELL_KNOWN}{suffix or ''}" != urlsplit(server.resource_metadata).path:
        raise Http404("not this resource's metadata")  # RFC 9728 §3.1: one document per resource
    scopes = {
        scope for route, _ in project_routes(config) if route.scope_map for scope in route.scope_map.scopes
    }
    return JsonResponse(server.metadata_document(sorted(scopes)))


urlpatterns = [
    re_path(r"^\.well-known/oauth-protected-resource(?P<suffix>/.*)?$", metadata_view, name="metadata"),
]


def agent_urls(*, issuer: CapabilityIssuer, grants: Any, approval_ttl: int = 3600) -> list[URLPattern]:
    """The agent endpoints (``agent-token``, ``agent-approvals``), to include under a prefix
    that names the org (``"orgs/<str:org>/"``); ``grants`` is the store ``issuer`` reads
    approvals from (:class:`~resource_server.django.grants.DjangoGrantStore`, or the SQLAlchemy
    :class:`~resource_server.grants.GrantStore`)."""
    from .agents import AgentApprovalView, AgentTokenView  # DRF, only for projects that use them

    return [
        path("agent-token", AgentTokenView.as_view(issuer=issuer), name="agent-token"),
        path(
            "agent-approvals",
            AgentApprovalView.as_view(grants=grants, approval_ttl=approval_ttl),
            name="agent-approvals",
        ),
    ]
