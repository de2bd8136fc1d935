"""A URLconf with one of each mistake the system checks and ``manage.py scopes check`` name
(the tests switch ROOT_URLCONF to it)."""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework.authentication import SessionAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from resource_server.django import require

from . import views


def ok(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return HttpResponse("ok")


class Deletes(APIView):
    """Serves DELETE, which its map does not cover (E012)."""

    scope_map: ClassVar[dict[str, Any]] = {"GET": "project:read"}

    def get(self, request: Request, org: str) -> Response:
        return Response({})

    def delete(self, request: Request, org: str) -> Response:
        return Response({})


class Audit(APIView):
    """Names a scope no role grants (E013)."""

    scope_map: ClassVar[dict[str, Any]] = {"GET": "audit:read"}

    def get(self, request: Request, org: str) -> Response:
        return Response({})


class Mapless(APIView):
    """Has ScopeMapPermission and no scope_map (E014)."""

    def get(self, request: Request, org: str) -> Response:
        return Response({})


class SessionOnly(APIView):
    """ScopeMapPermission without BearerTokenAuthentication (W020)."""

    authentication_classes: ClassVar[list[Any]] = [SessionAuthentication]
    scope_map: ClassVar[dict[str, Any]] = {"GET": "project:read"}

    def get(self, request: Request, org: str) -> Response:
        return Response({})


urlpatterns = [
    path("orgs/<str:org>/projects", views.Projects.as_view(), name="projects"),
    path("orgs/<str:org>/reports", views.reports, name="reports"),
    path("drf/orgs/<str:org>/reports", views.DRFReports.as_view(), name="drf-reports"),
    path("health", views.health, name="health"),
    path("open", ok, name="open"),  # W010
    path("tenants/<str:tenant>/audit", require({"GET": "project:read"})(ok), name="tenant-audit"),  # E010
    path("orgs/<str:org>/me", require({"GET": "project:read"}, org=None)(ok), name="org-me"),  # E011
    path("orgs/<str:org>/deletes", Deletes.as_view(), name="deletes"),
    path("orgs/<str:org>/audit", Audit.as_view(), name="audit"),
    path("orgs/<str:org>/mapless", Mapless.as_view(), name="mapless"),
    path("orgs/<str:org>/session-only", SessionOnly.as_view(), name="session-only"),
]
