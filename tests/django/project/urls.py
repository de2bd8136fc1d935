from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from resource_server.django.urls import agent_urls

from . import views
from .server import CAPABILITIES, GRANTS, UNREACHABLE_CAPABILITIES, UNREACHABLE_GRANTS

router = SimpleRouter()
router.register("vs/projects", views.ProjectViewSet, basename="vs-projects")

urlpatterns = [
    path("", include("resource_server.django.urls")),
    path("orgs/<str:org>/projects", views.Projects.as_view(), name="projects"),
    path("tenants/<str:tenant>/teams", views.Teams.as_view(), name="teams"),
    path("me", views.Me.as_view(), name="me"),
    path("basic/orgs/<str:org>/projects", views.BasicProjects.as_view(), name="basic-projects"),
    path("whoami", views.Whoami.as_view(), name="whoami"),
    path("orgs/<str:org>/", include(router.urls)),
    path("plain/orgs/<str:org>/projects", views.plain_projects, name="plain-projects"),
    path("async/orgs/<str:org>/projects", views.async_projects, name="async-projects"),
    path("plain/me", views.plain_me, name="plain-me"),
    path("cbv/orgs/<str:org>/projects", views.ProjectsView.as_view(), name="cbv-projects"),
    path("acbv/orgs/<str:org>/projects", views.AsyncProjectsView.as_view(), name="acbv-projects"),
    path("decorated/orgs/<str:org>/projects", views.DecoratedView.as_view(), name="decorated-projects"),
    path("orgs/<str:org>/reports", views.reports, name="reports"),
    path("drf/orgs/<str:org>/reports", views.DRFReports.as_view(), name="drf-reports"),
    path("orgs/<str:org>/", include(agent_urls(issuer=CAPABILITIES, grants=GRANTS))),
    path(
        "unreachable/orgs/<str:org>/",
        include(agent_urls(issuer=UNREACHABLE_CAPABILITIES, grants=UNREACHABLE_GRANTS, approval_ttl=60)),
    ),
    path("health", views.health, name="health"),
    path("login", views.sign_in, name="login"),
    path("viewer", views.viewer, name="viewer"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
]
