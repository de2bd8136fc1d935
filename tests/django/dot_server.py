"""django-oauth-toolkit as an authorization server, for the interop test (test_dot_interop.py).

Run as ``python -m tests.django.dot_server DIRECTORY``: a process of its own, because Django's
settings are process-global and the test process runs the library's test project. It configures
Django with DOT alone (its SQLite database in ``DIRECTORY``), migrates, registers the clients
below and one user with a token of her own, serves on a loopback port the OS picks (werkzeug,
threaded), prints one JSON line (its URL and the user's token) once it serves, and serves until
it is stopped.

What it serves is DOT's own: the token endpoint (``/o/token/``, client credentials with RFC 8707
``resource``), RFC 7662 introspection (``/o/introspect/``, ``IntrospectTokenView``), RFC 7009
revocation (``/o/revoke_token/``), and a DRF view protected by DOT's own
``OAuth2Authentication`` + ``TokenMatchesOASRequirements``, to compare its refusals with ours.
``/o/introspect-sub/`` is ``IntrospectTokenView`` with RFC 7662 §2.2's ``sub`` added beside
DOT's ``username``: a server that names the user as ``sub`` too, which the verifier's default
reads (docs/django.md has the API read ``username`` from the stock view instead).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, ClassVar

#: The resource server, as a client of DOT: it may introspect (HTTP Basic, RFC 6749 §2.3.1).
API_CLIENT, API_SECRET = "rs-api", "rs-api-introspection-secret-0123456789abcdef"
#: A service account: client credentials, its tokens' subject is itself (RFC 9068 §2.2).
SERVICE_CLIENT, SERVICE_SECRET = "svc-reporting", "svc-reporting-secret-0123456789abcdef"
#: The public client the user's token was issued to.
USER_CLIENT = "cli"
USER = "user-1"
RESOURCE = "https://api.test"  # RFC 8707: DOT puts it in the introspection answer's aud
SCOPES = {"project:read": "read projects", "project:write": "write projects", "team:write": "edit teams"}


def configure(directory: Path) -> None:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        SECRET_KEY="dot-peer-" + "k" * 50,
        ALLOWED_HOSTS=["127.0.0.1"],
        ROOT_URLCONF=__name__,
        USE_TZ=True,
        LOGGING_CONFIG=None,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "rest_framework",
            "oauth2_provider",
        ],
        MIDDLEWARE=[],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(directory / "dot.sqlite3")}
        },
        # DOT hashes client secrets with Django's password hashers, and checks one on every
        # introspection call: a fast hasher for a test server's secrets, as Django's testing
        # docs advise (never a deployment's).
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        OAUTH2_PROVIDER={"SCOPES": SCOPES, "ACCESS_TOKEN_EXPIRE_SECONDS": 3600},
        REST_FRAMEWORK={"DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]},
    )
    django.setup()


def seed() -> str:
    """The clients and the user; the user's token as DOT's authorization code flow stores one."""
    import datetime
    import secrets

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.utils import timezone
    from oauth2_provider.models import AccessToken, Application

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user(USER)
    for client_id, secret in ((API_CLIENT, API_SECRET), (SERVICE_CLIENT, SERVICE_SECRET)):
        Application.objects.create(
            name=client_id,
            client_id=client_id,
            client_secret=secret,
            client_type=Application.CLIENT_CONFIDENTIAL,
            authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        )
    cli = Application.objects.create(
        name=USER_CLIENT,
        client_id=USER_CLIENT,
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris="http://127.0.0.1/callback",
    )
    token = secrets.token_urlsafe(30)
    AccessToken.objects.create(
        user=user,
        application=cli,
        token=token,
        scope="project:read",
        resource=[RESOURCE],
        expires=timezone.now() + datetime.timedelta(hours=1),
    )
    return token


def patterns() -> list[Any]:
    from django.http import JsonResponse
    from django.urls import include, path
    from oauth2_provider.contrib.rest_framework import OAuth2Authentication, TokenMatchesOASRequirements
    from oauth2_provider.views import IntrospectTokenView
    from rest_framework.response import Response
    from rest_framework.views import APIView

    class IntrospectWithSubject(IntrospectTokenView):
        """DOT's introspection, with ``sub`` (RFC 7662 §2.2) beside its ``username``."""

        @staticmethod
        def get_token_response(token_value: str | None = None) -> Any:
            response = IntrospectTokenView.get_token_response(token_value)
            answer = json.loads(response.content)
            if "username" in answer:
                answer["sub"] = answer["username"]
            return JsonResponse(answer, status=response.status_code)

    class Projects(APIView):
        """A DRF view protected the way DOT protects one: its per-method any-of-all-of map."""

        authentication_classes: ClassVar[list[Any]] = [OAuth2Authentication]
        permission_classes: ClassVar[list[Any]] = [TokenMatchesOASRequirements]
        required_alternate_scopes: ClassVar[dict[str, Any]] = {
            "GET": [["project:read"]],
            "POST": [["project:write"]],
        }

        def get(self, request: Any, org: str) -> Response:
            return Response({"org": org})

        def post(self, request: Any, org: str) -> Response:
            return Response({"org": org}, status=201)

    return [
        path("o/introspect-sub/", IntrospectWithSubject.as_view()),
        path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
        path("dot/orgs/<str:org>/projects", Projects.as_view()),
    ]


urlpatterns: list[Any] = []


def main() -> None:
    configure(Path(sys.argv[1]))
    global urlpatterns
    urlpatterns = patterns()
    token = seed()
    from django.core.wsgi import get_wsgi_application
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, get_wsgi_application(), threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    print(json.dumps({"url": url, "user_token": token}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
