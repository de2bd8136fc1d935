"""A Django project without ``django.contrib.auth`` or ``django.contrib.contenttypes`` (an API whose
callers all come with tokens: no users, no sessions), for test_no_auth.py.

Run as ``python -m tests.django.no_auth_project ARGS...``: ``manage.py ARGS...`` of this project,
in a process of its own, because Django's settings are process-global and the test process runs
the library's test project. Its tokens are the test project's (tests.django.project.keys hands
the signing key to other processes through the environment).
"""

from __future__ import annotations

import sys

from django.http import HttpRequest, JsonResponse
from django.urls import path

from resource_server import JWTVerifier
from resource_server.django import ResourceServer, require
from tests.django.project.keys import SIGNER
from tests.support import AUDIENCE, ISSUER, FakeClock, jwks


def build() -> ResourceServer:
    return ResourceServer(
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=FakeClock()),
        roles={"member": ["project:read"], "admin": ["project:read", "project:write"]},
        membership=lambda subject, org: "admin" if org == "acme" else None,
        resource="https://api.test",
    )


@require({"GET": "project:read", "POST": "project:write"})
def projects(request: HttpRequest, org: str) -> JsonResponse:
    return JsonResponse({"org": org})


urlpatterns = [path("orgs/<str:org>/projects", projects)]


def main() -> None:
    from django.conf import settings
    from django.core.management import execute_from_command_line

    settings.configure(
        SECRET_KEY="no-auth-" + "k" * 50,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["resource_server.django"],
        MIDDLEWARE=[],
        DATABASES={},
        RESOURCE_SERVER=f"{__name__}.build",
        LOGGING_CONFIG=None,
    )
    execute_from_command_line(["manage.py", *sys.argv[1:]])


if __name__ == "__main__":
    main()
