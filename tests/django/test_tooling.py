"""The system checks and ``manage.py scopes routes|check|explain``: each fails on the mistake it
names and on nothing else, ``routes`` prints what ``flask scopes routes`` prints for the same
routes, and ``explain`` says exactly what the server sends."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings
from flask import Flask

from resource_server.django.checks import check_exception_handler, check_middleware, check_routes
from tests.django.helpers import bearer, token

ROOT = Path(__file__).resolve().parents[2]
BROKEN = "tests.django.project.broken_urls"
PARITY = "tests.django.project.parity_urls"


def ids(messages: list[Any]) -> list[str]:
    return sorted(message.id for message in messages)


def scopes(*args: str) -> str:
    out = StringIO()
    call_command("scopes", *args, stdout=out)
    return out.getvalue()


# -- system checks -----------------------------------------------------------------------------------


def test_the_test_project_passes_every_check() -> None:
    assert [m for m in run_checks() if m.id.startswith("resource_server")] == []


def test_each_route_mistake_is_reported_once_under_its_id() -> None:
    with override_settings(ROOT_URLCONF=BROKEN):
        found = check_routes()
    by_id = {m.id: m for m in found}
    assert ids(found) == [
        "resource_server.E010",
        "resource_server.E011",
        "resource_server.E012",
        "resource_server.E013",
        "resource_server.E014",
        "resource_server.W010",
        "resource_server.W020",
    ]
    assert (
        by_id["resource_server.E010"].obj == "tenant-audit" and "'org'" in by_id["resource_server.E010"].msg
    )
    assert by_id["resource_server.E011"].obj == "org-me"
    assert "accepts DELETE" in by_id["resource_server.E012"].msg
    assert "audit:read, which no role grants" in by_id["resource_server.E013"].msg
    assert "Mapless has no scope_map" in by_id["resource_server.E014"].msg
    assert by_id["resource_server.W010"].obj == "open"
    assert "SessionOnly" in by_id["resource_server.W020"].msg


def test_errors_stop_manage_py_check_and_warnings_do_not() -> None:
    from django.core.management.base import SystemCheckError

    with (
        override_settings(ROOT_URLCONF=BROKEN),
        pytest.raises(SystemCheckError, match=r"resource_server\.E013"),
    ):
        call_command("check", stdout=StringIO(), stderr=StringIO())


def test_a_routes_entry_naming_no_pattern_is_an_error() -> None:
    routes = {
        "reports": {"GET": "report:read"},
        "drf-reports": {"GET": "report:read"},
        "report": {"GET": "report:read"},
    }
    with override_settings(RESOURCE_SERVER_ROUTES=routes):
        found = check_routes()
    assert ids(found) == ["resource_server.E041"] and "'report'" in found[0].msg


def test_a_routes_entry_for_a_view_that_protects_itself_is_reported_unused() -> None:
    routes = {
        "reports": {"GET": "report:read"},
        "drf-reports": {"GET": "report:read"},
        "plain-projects": {"GET": "x:y"},
    }
    with override_settings(
        RESOURCE_SERVER_ROUTES=routes,
        RESOURCE_SERVER={
            "VERIFIER": "tests.django.project.server.verifier",
            "ROLES": {"admin": ["x:y", "project:read", "project:write", "team:write", "report:read"]},
            "MEMBERSHIP": "tests.django.project.server.membership",
            "RESOURCE": "https://api.test",
            "VIEWER_CONTEXT": "tests.django.project.server.viewer_contexts",
        },
    ):
        found = check_routes()
    assert ids(found) == ["resource_server.W045"] and found[0].obj == "plain-projects"


MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "resource_server.django.middleware.ViewerContextMiddleware",
    "resource_server.django.middleware.ResourceServerMiddleware",
]


@pytest.mark.parametrize(
    ("middleware", "expected"),
    [
        (MIDDLEWARE, []),
        ([m for m in MIDDLEWARE if "ResourceServerMiddleware" not in m], ["resource_server.E042"]),
        (
            [MIDDLEWARE[0], MIDDLEWARE[1], MIDDLEWARE[4], MIDDLEWARE[2], MIDDLEWARE[3]],
            ["resource_server.W043", "resource_server.W044"],
        ),
    ],
    ids=["in order", "routes without the middleware", "out of order"],
)
def test_middleware_mistakes(middleware: list[str], expected: list[str]) -> None:
    with override_settings(MIDDLEWARE=middleware):
        assert ids(check_middleware()) == expected


def test_the_viewer_context_middleware_needs_a_verifier() -> None:
    from tests.django.project import server

    with override_settings(RESOURCE_SERVER=lambda: server.build(viewer_context=None)):
        assert ids(check_middleware()) == ["resource_server.E040"]


def dropping_handler(exc: Exception, context: dict[str, Any]) -> Any:
    """A project handler that builds its own response: status kept, headers lost."""
    from rest_framework.response import Response

    return Response({"message": str(exc)}, status=getattr(exc, "status_code", 500))


def none_handler(exc: Exception, context: dict[str, Any]) -> Any:
    return None


@pytest.mark.parametrize(
    ("handler", "said"),
    [
        ("tests.django.test_tooling.dropping_handler", "drops the WWW-Authenticate header"),
        ("tests.django.test_tooling.none_handler", "returns None"),
    ],
)
def test_an_exception_handler_losing_the_challenge_is_reported(handler: str, said: str) -> None:
    assert check_exception_handler() == []  # DRF's own keeps it
    with override_settings(REST_FRAMEWORK={"EXCEPTION_HANDLER": handler}):
        found = check_exception_handler()
    assert ids(found) == ["resource_server.W030"] and said in found[0].msg


# -- manage.py scopes ---------------------------------------------------------------------------------


def test_check_passes_the_project_and_fails_each_mistake() -> None:
    assert scopes("check").strip() == "scope maps OK"
    out = StringIO()
    with override_settings(ROOT_URLCONF=BROKEN), pytest.raises(CommandError) as failed:
        call_command("scopes", "check", "--json", stdout=out)
    assert failed.value.returncode == 1
    problems = json.loads(out.getvalue())["problems"]
    assert len(problems) == 6, problems
    assert any("/open (open) has no protection; declare it with @public" in p for p in problems)
    assert any("accepts DELETE" in p for p in problems)


def test_routes_lists_every_pattern_with_its_roles() -> None:
    rows = {(r["rule"], r["method"]): r for r in json.loads(scopes("routes", "--json"))}
    assert rows[("/tenants/<str:tenant>/teams", "PUT")]["scopes"] == [["project:write", "team:write"]]
    assert rows[("/tenants/<str:tenant>/teams", "PUT")]["roles"] == ["admin"]
    assert rows[("/orgs/<str:org>/reports", "GET")]["scopes"] == [["report:read"]]  # the middleware's
    assert rows[("/orgs/<str:org>/agent-token", "POST")]["protection"] == "authenticated"
    assert rows[("/health", "-")]["protection"] == "public"
    assert rows[("/async/orgs/<str:org>/projects", "POST")]["roles"] == ["admin"]


def flask_twin() -> Flask:
    """tests.django.project.parity_urls as a Flask app."""
    from flask import Blueprint

    from resource_server.flask import ResourceServer
    from tests.django.project import server
    from tests.django.project.parity_urls import PROJECTS

    app = Flask(__name__, static_folder=None)
    rs = ResourceServer(app, verifier=server.verifier(), roles=server.ROLES, membership=lambda s, o: None)
    app.add_url_rule(
        "/orgs/<org>/projects", "projects", rs.require(PROJECTS)(lambda org: "ok"), methods=["GET", "POST"]
    )
    teams = Blueprint("teams", __name__, url_prefix="/orgs/<org>/teams")
    rs.protect_blueprint(teams, {"GET": "project:read"})
    teams.add_url_rule("/", "list", lambda org: "ok")
    app.register_blueprint(teams)
    app.add_url_rule("/health", "health", rs.public(lambda: "ok"))
    return app


@pytest.mark.parametrize("args", [["routes"], ["routes", "--json"], ["check"], ["check", "--json"]])
def test_the_same_routes_print_as_flask_scopes_prints_them(args: list[str]) -> None:
    flask = flask_twin().test_cli_runner().invoke(args=["scopes", *args])
    with override_settings(ROOT_URLCONF=PARITY):
        django = scopes(*args)
    assert django == flask.output


EXPLAINED = [
    ("POST", "/orgs/acme/projects", "project:read"),  # insufficient_scope for project:write
    ("GET", "/orgs/acme/projects", "team:write"),  # insufficient_scope, with resource_metadata
    ("GET", "/orgs/acme/projects", "project:read"),  # allowed
    ("GET", "/tenants/acme/teams", "report:read"),  # the org_url_kwarg, alternatives
    ("GET", "/orgs/globex/projects", "project:read"),  # another org's token: 401
    ("GET", "/plain/orgs/acme/projects", "team:write"),  # a decorated view
    ("GET", "/acbv/orgs/acme/projects", ""),  # an async class-based view
    ("GET", "/orgs/acme/reports", "project:read"),  # the middleware's route
    ("HEAD", "/orgs/acme/projects", "team:write"),  # HEAD: the same refusal, no body
    ("GET", "/orgs/acme/projects?page=2", "project:read"),  # a query string
    ("DELETE", "/orgs/acme/vs/projects/", "project:read"),  # a viewset's unmapped method
]


@pytest.mark.parametrize(("method", "path", "scope"), EXPLAINED)
def test_explain_prints_exactly_what_the_server_sends(method: str, path: str, scope: str) -> None:
    raw = token(scope=scope)
    sent = Client().generic(method, path, HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_ACCEPT="application/json")
    explained = json.loads(scopes("explain", "--token", raw, "--json", method, path))
    assert explained["status"] == sent.status_code
    assert explained["www_authenticate"] == sent.headers.get("WWW-Authenticate")
    assert explained["body"] == (
        json.loads(sent.content) if sent.status_code != 200 and sent.content else None
    )
    assert explained["reason"]
    text = scopes("explain", "--token", raw, method, path)
    assert text.startswith(f"{sent.status_code}:")
    if "WWW-Authenticate" in sent.headers:
        assert f"WWW-Authenticate: {sent.headers['WWW-Authenticate']}" in text


def test_explain_refuses_what_it_cannot_explain() -> None:
    raw = token()
    with pytest.raises(CommandError, match=r"matches no route \(404\)"):
        scopes("explain", "--token", raw, "GET", "/nowhere")
    with pytest.raises(CommandError, match="not protected by a scope map"):
        scopes("explain", "--token", raw, "GET", "/health")
    with pytest.raises(CommandError, match="control characters"):
        scopes("explain", "--token", "a\nb", "GET", "/orgs/acme/projects")
    assert scopes("explain", "--token", "nope", "GET", "/orgs/acme/projects").startswith("401:")


def test_explain_runs_no_view() -> None:
    """The granted explanation never calls the view (a POST would create nothing)."""
    from tests.django.project.models import Project

    before = Project.objects.count()
    assert scopes("explain", "--token", token(), "POST", "/orgs/acme/projects").startswith("200:")
    assert Project.objects.count() == before
    assert Client().get("/orgs/acme/projects", **bearer()).status_code == 200


def manage_without_auth(*args: str) -> subprocess.CompletedProcess[str]:
    """``manage.py ARGS`` of tests/django/no_auth_project.py, in a process of its own."""
    return subprocess.run(
        [sys.executable, "-m", "tests.django.no_auth_project", *args],
        cwd=ROOT,
        # Its own settings: not the test project's, which this process's environment names.
        env={
            **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
            "PYTHONPATH": str(ROOT),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_command_runs_in_a_project_without_django_contrib_auth() -> None:
    """An API whose callers all bring tokens may leave auth and contenttypes out of
    INSTALLED_APPS: ``manage.py scopes`` loads, and ``explain`` explains the token alone (such a
    project has no sessions)."""
    listed = manage_without_auth("scopes", "routes", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(row["rule"], row["method"]) for row in json.loads(listed.stdout)] == [
        ("/orgs/<str:org>/projects", "GET"),
        ("/orgs/<str:org>/projects", "POST"),
    ]
    raw = token(scope="project:read")
    explained = manage_without_auth(
        "scopes", "explain", "--token", raw, "--json", "POST", "/orgs/acme/projects"
    )
    assert explained.returncode == 0, explained.stderr
    answer = json.loads(explained.stdout)
    assert answer["status"] == 403 and answer["body"]["error"] == "insufficient_scope"
    assert 'scope="project:write"' in answer["www_authenticate"]
