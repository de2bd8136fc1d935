"""Settings of the Django project the adapter is tested against (tests/django/project)."""

from __future__ import annotations

import os

SECRET_KEY = "test-" + "s" * 50
DEBUG = False
ALLOWED_HOSTS = ["*"]  # the adapter validates Host itself, first
USE_TZ = True
LOGGING_CONFIG = None  # leave the rest of the test suite's logging as it is
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
ROOT_URLCONF = "tests.django.project.urls"

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "rest_framework",
    "drf_spectacular",
    "resource_server.django",
    "tests.django.project",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "resource_server.django.middleware.ViewerContextMiddleware",
    "resource_server.django.middleware.ResourceServerMiddleware",
]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["RS_TEST_DJANGO_DB"]},
    # The ORM grants store's concurrency test: a PostgreSQL server the tests start in this directory.
    "postgres": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "grants",
        "USER": "postgres",
        "HOST": os.environ.get("RS_TEST_DJANGO_PG", "/nonexistent"),
        "PORT": "5432",
    },
    # A database that never answers: the grants store's 503.
    "unreachable": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "none",
        "USER": "nobody",
        "HOST": "/nonexistent-socket-dir",
        "PORT": "5432",
        "OPTIONS": {"connect_timeout": 1},
    },
}

RESOURCE_SERVER = "tests.django.project.server.build"
RESOURCE_SERVER_ROUTES = {"reports": {"GET": "report:read"}, "drf-reports": {"GET": "report:read"}}
RESOURCE_SERVER_PUBLIC = ["health", "schema"]
RESOURCE_SERVER_OPENAPI = {
    "TOKEN_URL": "https://as.test/token",
    "AUTHORIZATION_URL": "https://as.test/authorize",
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "resource_server.django.rest_framework.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["resource_server.django.rest_framework.ScopeMapPermission"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
