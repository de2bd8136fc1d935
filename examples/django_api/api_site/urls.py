"""The example's URLs: the RFC 9728 metadata document, the projects API, a health check."""

from __future__ import annotations

from django.urls import include, path
from projects import views

urlpatterns = [
    path("", include("resource_server.django.urls")),  # /.well-known/oauth-protected-resource
    path("orgs/<slug:org>/projects", views.ProjectList.as_view(), name="projects"),
    path("orgs/<slug:org>/projects/<int:pk>", views.ProjectDetail.as_view(), name="project"),
    path("orgs/<slug:org>/members", views.Members.as_view(), name="members"),
    path("me", views.Me.as_view(), name="me"),
    path("health", views.health, name="health"),
]
