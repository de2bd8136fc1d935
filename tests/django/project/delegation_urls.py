"""The URLs of the delegation and step-up tests (tests/django/test_delegation_and_step_up.py): one
view per way the adapter protects a view, each with the scenario's scope map. Imported only as
``ROOT_URLCONF`` while :data:`tests.django.project.delegation.RESOURCE_SERVER` is in force: the
decorators check the map's scopes against its roles."""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from resource_server.django import ScopeMapMixin, require
from tests.resource_server import delegation_scenario as scenario

from .delegation import seen


class Projects(APIView):
    scope_map: ClassVar[dict[str, Any]] = scenario.SCOPE_MAP

    def get(self, request: Request, org: str) -> Response:
        return Response(seen(request._request))

    post = put = delete = get


@require(scenario.SCOPE_MAP)
def plain(request: HttpRequest, org: str) -> JsonResponse:
    return JsonResponse(seen(request))


@require(scenario.SCOPE_MAP)
async def asynchronous(request: HttpRequest, org: str) -> JsonResponse:
    return JsonResponse(seen(request))


class Mixin(ScopeMapMixin, View):
    scope_map: ClassVar[dict[str, Any]] = scenario.SCOPE_MAP

    def get(self, request: HttpRequest, org: str) -> JsonResponse:
        return JsonResponse(seen(request))

    post = put = delete = get


@csrf_exempt  # the middleware, unlike the decorator, leaves CsrfViewMiddleware to the view
def by_middleware(request: HttpRequest, org: str) -> JsonResponse:
    """Protected by ResourceServerMiddleware alone (RESOURCE_SERVER_ROUTES names it)."""
    return JsonResponse(seen(request))


urlpatterns = [
    path("drf/orgs/<str:org>/projects", Projects.as_view(), name="drf"),
    path("plain/orgs/<str:org>/projects", plain, name="plain"),
    path("async/orgs/<str:org>/projects", asynchronous, name="async"),
    path("mixin/orgs/<str:org>/projects", Mixin.as_view(), name="mixin"),
    path("middleware/orgs/<str:org>/projects", by_middleware, name="middleware"),
]
