"""Settings of the example API: Django REST Framework protected by ``resource_server.django``.

Configured by the environment, so that ``serve.py`` (which picks the ports) and ``manage.py``
agree: ``DJANGO_API_ISSUER`` (the authorization server; default ``http://127.0.0.1:8001``),
``DJANGO_API_RESOURCE`` (this API's URL, the tokens' audience; default ``http://127.0.0.1:8000``),
``DJANGO_API_DB`` (the SQLite file; default one in the system's temporary directory).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

ISSUER = os.environ.get("DJANGO_API_ISSUER", "http://127.0.0.1:8001")
RESOURCE = os.environ.get("DJANGO_API_RESOURCE", "http://127.0.0.1:8000")

# A demo on loopback: a new key each start (nothing here outlives the process that matters).
SECRET_KEY = os.environ.get("DJANGO_API_SECRET_KEY") or secrets.token_urlsafe(50)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "api_site.urls"
WSGI_APPLICATION = "api_site.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "resource_server.django",
    "projects",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Closed by default: a view that neither protects itself nor is declared public is refused.
    "resource_server.django.middleware.ResourceServerMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_API_DB")
        or str(Path(tempfile.gettempdir()) / "django-api-example.sqlite3"),
    }
}

# The one settings entry: dotted paths where a Python object is needed, as DRF's settings have them.
RESOURCE_SERVER = {
    "VERIFIER": "projects.auth.verifier",  # a JWTVerifier of ISSUER, built once at start-up
    "ROLES": {
        "member": ["project:read"],
        "admin": ["project:read", "project:write", "team:write"],
        "owner": ["project:read", "project:write", "team:write", "org:admin"],
    },
    "MEMBERSHIP": "projects.auth.membership",  # (subject, org slug) -> role, from the database
    "USER_FOR": "projects.auth.user_for",  # the token's subject -> a User, or None (401)
    "RESOURCE": RESOURCE,  # RFC 9728: the metadata document is served and named in challenges
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["resource_server.django.rest_framework.BearerTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["resource_server.django.rest_framework.ScopeMapPermission"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"resource_server": {"handlers": ["console"], "level": "INFO"}},
}
