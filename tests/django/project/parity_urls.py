"""The routes of tests/django/test_tooling.py's Flask app, as a Django URLconf: ``manage.py scopes``
and ``flask scopes`` must print the same table for them."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views import View

from resource_server.django import public, require


def ok(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    return HttpResponse("ok")


class Health(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse("ok")


PROJECTS = {"GET": "project:read", "POST": [["project:write", "team:write"], "project:read"]}

urlpatterns = [
    path("orgs/<org>/projects", require(PROJECTS)(ok), name="projects"),
    path("orgs/<org>/teams/", require({"GET": "project:read"})(ok), name="teams.list"),
    path("health", public(Health.as_view()), name="health"),
]
