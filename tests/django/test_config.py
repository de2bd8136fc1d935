"""Configuration, Django's way: one settings entry (a dotted path, or a dict of dotted paths and
values), read and validated once in AppConfig.ready() and again when a test overrides it; every
mistake fails at start-up with an error naming the setting. And the extra: importing the adapter
without Django says what to install."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, override_settings

from resource_server.django import ResourceServer, get_resource_server
from tests.django.helpers import assert_refused, bearer
from tests.resource_server.test_extras import attempt

DICT = {
    "VERIFIER": "tests.django.project.server.verifier",  # a zero-argument factory
    "ROLES": {
        "member": ["project:read"],
        "admin": ["project:read", "project:write", "team:write", "report:read"],
    },
    "MEMBERSHIP": "tests.django.project.server.membership",
    "RESOURCE": "https://api.test",
    "REALM": "projects",
    "USER_FOR": "tests.django.project.server.user_for",
    "VIEWER_CONTEXT": "tests.django.project.server.viewer_contexts",
}


def test_the_dotted_path_names_a_factory() -> None:
    server = get_resource_server()
    assert isinstance(server, ResourceServer) and server.resource == "https://api.test"


def test_the_dict_form_builds_the_same_server() -> None:
    with override_settings(RESOURCE_SERVER=DICT):
        server = get_resource_server()
        response = Client().get("/orgs/acme/projects")
        granted = Client().get("/plain/orgs/acme/projects", **bearer())
    assert server.guard.realm == "projects" and server.authorization_servers == ("https://as.test",)
    assert_refused(response, 401, "unauthorized", realm="projects")
    assert granted.status_code == 200


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ({**DICT, "VERIFER": "x"}, r"RESOURCE_SERVER has unknown keys \['VERIFER'\]"),
        ({k: v for k, v in DICT.items() if k != "MEMBERSHIP"}, "RESOURCE_SERVER needs MEMBERSHIP"),
        (
            {**DICT, "MEMBERSHIP": "tests.django.project.server.nothing"},
            r"RESOURCE_SERVER\['MEMBERSHIP'\]: .* cannot be imported",
        ),
        (
            {**DICT, "VERIFIER": "tests.django.project.server.ROLES"},
            r"RESOURCE_SERVER\['VERIFIER'\] is not what it must be",
        ),
        ({**DICT, "ROLES": {"admin": ["bad scope!"]}}, "RESOURCE_SERVER: .*scope"),
        ({**DICT, "RESOURCE": "api.test"}, "RESOURCE_SERVER: resource must be an absolute URL"),
        ({**DICT, "DPOP_REQUIRED": True}, "RESOURCE_SERVER: dpop_required=True needs a DPoP verifier"),
        ({**DICT, "USER_FOR": 42}, r"RESOURCE_SERVER\['USER_FOR'\] must be a callable"),
        (
            "tests.django.project.server.ROLES",
            "RESOURCE_SERVER must name a resource_server.django.ResourceServer",
        ),
        ("tests.django.project.nowhere.build", "RESOURCE_SERVER: .* cannot be imported"),
    ],
    ids=lambda value: (
        value if isinstance(value, str) and not value.startswith(("tests.", "RESOURCE")) else None
    ),
)
def test_a_bad_setting_fails_naming_it(setting: Any, said: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=said), override_settings(RESOURCE_SERVER=setting):
        pass
    assert get_resource_server().resource == "https://api.test"  # the settings as they were


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        (
            "RESOURCE_SERVER_ROUTES",
            {"reports": {"GET": "audit:read"}},
            r"RESOURCE_SERVER_ROUTES\['reports'\]: .*audit:read, which no role grants",
        ),
        ("RESOURCE_SERVER_ROUTES", {"reports": {"GET": "a b"}}, r"RESOURCE_SERVER_ROUTES\['reports'\]"),
        (
            "RESOURCE_SERVER_ROUTES",
            {"reports": {"scope_map": {"GET": "project:read"}, "orgs": "x"}},
            "unknown keys",
        ),
        ("RESOURCE_SERVER_ROUTES", ["reports"], "must be a dict"),
        ("RESOURCE_SERVER_PUBLIC", "health", "must be a list"),
    ],
)
def test_bad_route_settings_fail_naming_them(name: str, value: Any, said: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=said), override_settings(**{name: value}):
        pass


def test_a_route_entry_may_name_its_org_kwarg() -> None:
    routes = {"reports": {"scope_map": {"GET": "report:read"}, "org": None}}
    with override_settings(RESOURCE_SERVER_ROUTES=routes):
        granted = Client().get("/orgs/globex/reports", **bearer(org_id="acme"))  # the token's own org
    assert granted.status_code == 200 and granted.json()["org"] == "acme"


def test_a_misconfigured_decorator_fails_at_import() -> None:
    from resource_server.django import require

    with pytest.raises(ValueError, match="audit:read, which no role grants"):
        require({"GET": "audit:read"})(lambda request: None)
    with pytest.raises(ValueError, match="ScopeMap method"):
        require({"FETCH": "project:read"})(lambda request: None)
    with pytest.raises(ValueError, match="org must name a URL kwarg"):
        require({"GET": "project:read"}, org="")


def test_a_mixin_view_with_a_bad_map_fails_when_defined() -> None:
    from django.views import View

    from resource_server.django import ScopeMapMixin

    with pytest.raises(ValueError):

        class Broken(ScopeMapMixin, View):
            scope_map = {"GET": "bad scope"}  # noqa: RUF012


def test_without_django_the_adapter_names_its_extra() -> None:
    said = attempt(("django",), "import resource_server.django")
    assert said == (
        "ImportError: resource_server.django needs django, which is not installed: "
        "pip install 'scoped-resource-server[django]'"
    )
    said = attempt(("rest_framework",), "import resource_server.django.rest_framework")
    assert "pip install 'scoped-resource-server[django]'" in said and "needs rest_framework" in said


def test_the_shared_core_imports_no_django() -> None:
    statement = (
        "import resource_server.guard, resource_server.tooling, resource_server.grant_rules, "
        "resource_server.agent_endpoints, resource_server.grants"
    )
    assert attempt(("django", "rest_framework", "drf_spectacular"), statement) == "done"
