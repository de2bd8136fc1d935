"""Views of the test project, protected every way the adapter offers."""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth import authenticate, login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from rest_framework import viewsets
from rest_framework.authentication import BasicAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from resource_server.django import ScopeMapMixin, json_body, public, require
from resource_server.django.rest_framework import BearerTokenAuthentication


def described(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    """What a protected view sees of its caller."""
    access = request.access  # type: ignore[attr-defined]
    token = getattr(request, "auth", None)
    return {
        "subject": access.subject,
        "org": access.org,
        "scopes": sorted(access.scopes),
        "session": access.is_session,
        "token": token.subject if token is not None else None,
        "user": str(getattr(request, "user", "")),
        **extra,
    }


# -- DRF -----------------------------------------------------------------------------------------


class Projects(APIView):
    scope_map: ClassVar[dict[str, Any]] = {"GET": "project:read", "POST": "project:write"}

    def get(self, request: Request, org: str) -> Response:
        return Response(described(request._request, auth=getattr(request.auth, "subject", None)))

    def post(self, request: Request, org: str) -> Response:
        return Response(described(request._request, data=request.data), status=201)


class Teams(APIView):
    """Alternatives: GET with either scope, PUT with both of one alternative."""

    scope_map: ClassVar[dict[str, Any]] = {
        "GET": ["project:read", "team:write"],
        "PUT": [["project:write", "team:write"]],
    }
    org_url_kwarg = "tenant"

    def get(self, request: Request, tenant: str) -> Response:
        return Response(described(request._request))

    def put(self, request: Request, tenant: str) -> Response:
        return Response(described(request._request))


class Me(APIView):
    """A route that names no organization: the token's own org is asked about."""

    scope_map: ClassVar[dict[str, Any]] = {"GET": "project:read"}
    org_url_kwarg = None

    def get(self, request: Request) -> Response:
        return Response(described(request._request))


class BasicProjects(Projects):
    """Projects, also accepting HTTP Basic (another authentication class)."""

    authentication_classes: ClassVar[list[Any]] = [BearerTokenAuthentication, BasicAuthentication]


@public
class Whoami(APIView):
    """Declared public: DRF's own IsAuthenticated decides, and its 401 carries our challenge."""

    permission_classes: ClassVar[list[Any]] = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return Response({"user": str(request.user)})


class ProjectViewSet(viewsets.ViewSet):
    scope_map: ClassVar[dict[str, Any]] = {"GET": "project:read", "POST": "project:write"}

    def list(self, request: Request, org: str) -> Response:
        return Response(described(request._request))

    def create(self, request: Request, org: str) -> Response:
        return Response(described(request._request), status=201)


# -- plain Django ----------------------------------------------------------------------------------


@require({"GET": "project:read", "POST": "project:write"})
def plain_projects(request: HttpRequest, org: str) -> JsonResponse:
    posted = dict(request.POST.items()) if request.method == "POST" else None
    return JsonResponse(described(request, posted=posted))


@require({"GET": "project:read", "POST": "project:write"})
async def async_projects(request: HttpRequest, org: str) -> JsonResponse:
    return JsonResponse(described(request))


@require({"GET": "project:read"}, org=None)
def plain_me(request: HttpRequest) -> JsonResponse:
    return JsonResponse(described(request))


class ProjectsView(ScopeMapMixin, View):
    scope_map: ClassVar[dict[str, Any]] = {"GET": "project:read", "POST": "project:write"}

    def get(self, request: HttpRequest, org: str) -> JsonResponse:
        return JsonResponse(described(request))

    def post(self, request: HttpRequest, org: str) -> JsonResponse:
        if request.content_type == "application/json":
            return JsonResponse(described(request, body=json_body(request)))
        return JsonResponse(described(request, posted=dict(request.POST.items())))


class AsyncProjectsView(ScopeMapMixin, View):
    scope_map: ClassVar[dict[str, Any]] = {"GET": "project:read"}

    async def get(self, request: HttpRequest, org: str) -> JsonResponse:
        return JsonResponse(described(request))


@method_decorator(require({"GET": "project:read"}), name="dispatch")
class DecoratedView(View):
    def get(self, request: HttpRequest, org: str) -> JsonResponse:
        return JsonResponse(described(request))


def reports(request: HttpRequest, org: str) -> JsonResponse:
    """Protected by ResourceServerMiddleware alone (RESOURCE_SERVER_ROUTES)."""
    return JsonResponse(described(request))


class DRFReports(APIView):
    """A DRF view with no permission of its own: ResourceServerMiddleware protects it
    (RESOURCE_SERVER_ROUTES), and DRF's BearerTokenAuthentication sees the token it admitted."""

    permission_classes: ClassVar[list[Any]] = [AllowAny]

    def get(self, request: Request, org: str) -> Response:
        return Response(described(request._request, auth=getattr(request.auth, "subject", None)))


def health(request: HttpRequest) -> HttpResponse:
    """Public by RESOURCE_SERVER_PUBLIC."""
    return HttpResponse("ok")


@public
@csrf_exempt
def sign_in(request: HttpRequest) -> HttpResponse:
    """The project's first-party login (a form post), for the session tests."""
    user = authenticate(request, username=request.POST.get("username"), password=request.POST.get("password"))
    if user is None:
        return HttpResponse("no", status=401)
    login(request, user)
    return JsonResponse({"csrf": get_token(request)})


@public
def viewer(request: HttpRequest) -> JsonResponse:
    """What ViewerContextMiddleware left for a view that protects nothing."""
    context = request.viewer_context  # type: ignore[attr-defined]
    return JsonResponse(
        None if context is None else {"user_id": context.user_id, "issuer": context.issuer}, safe=False
    )


def unprotected(request: HttpRequest) -> HttpResponse:
    """Neither protected nor public: the middleware refuses it, the checks report it."""
    return HttpResponse("open")
