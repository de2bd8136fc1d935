"""The API: each view declares, per HTTP method, the scopes it needs. A request's scopes are its
token's intersected with the caller's role in the organization the URL names (``<org>``)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import HttpRequest, JsonResponse
from django.shortcuts import get_object_or_404
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from resource_server.django import public

from .models import Membership, Organization, Project
from .serializers import ProjectSerializer


class OrgProjects:
    """The projects of the URL's organization, and new ones made there, by the token's user."""

    serializer_class = ProjectSerializer
    kwargs: dict[str, Any]
    request: Request

    def get_queryset(self) -> Any:
        return Project.objects.filter(organization__slug=self.kwargs["org"]).select_related("created_by")

    def perform_create(self, serializer: ProjectSerializer) -> None:
        organization = get_object_or_404(Organization, slug=self.kwargs["org"])
        serializer.save(organization=organization, created_by=self.request.user)


class ProjectList(OrgProjects, generics.ListCreateAPIView):
    scope_map: ClassVar[dict[str, Any]] = {"GET": "project:read", "POST": "project:write"}


class ProjectDetail(OrgProjects, generics.RetrieveUpdateDestroyAPIView):
    scope_map: ClassVar[dict[str, Any]] = {
        "GET": "project:read",
        "PUT": "project:write",
        "PATCH": "project:write",
        "DELETE": "org:admin",  # owners only: no token helps an admin here (a 403, no challenge)
    }


class Members(APIView):
    """Who is a member of the organization: either scope will do."""

    scope_map: ClassVar[dict[str, Any]] = {"GET": ["team:write", "org:admin"]}

    def get(self, request: Request, org: str) -> Response:
        rows = (
            Membership.objects.filter(organization__slug=org)
            .select_related("user")
            .order_by("user__username")
        )
        return Response([{"user": row.user.username, "role": row.role} for row in rows])


class Me(APIView):
    """Who the token speaks for: this URL names no organization, so the token's own is asked about."""

    scope_map: ClassVar[dict[str, Any]] = {"GET": "project:read"}
    org_url_kwarg = None

    def get(self, request: Request) -> Response:
        access = request.access  # type: ignore[attr-defined]
        return Response(
            {
                "subject": access.subject,
                "org": access.org,
                "scopes": sorted(access.scopes),
                "client_id": request.auth.client_id,
            }
        )


@public
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})
