"""drf-spectacular: the security scheme of BearerTokenAuthentication and one requirement per
scope-map alternative, per operation and method; the generated schema is valid OpenAPI."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client, override_settings
from openapi_spec_validator import OpenAPIV30SpecValidator


def schema() -> dict[str, Any]:
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)  # type: ignore[no-any-return]


def test_the_schema_is_valid_openapi() -> None:
    document = schema()
    OpenAPIV30SpecValidator(document).validate()


def test_each_alternative_is_its_own_requirement_and_sessions_are_one_too() -> None:
    paths = schema()["paths"]
    teams = paths["/tenants/{tenant}/teams"]
    assert teams["get"]["security"][:2] == [{"oauth2": ["project:read"]}, {"oauth2": ["team:write"]}]
    assert teams["put"]["security"][0] == {"oauth2": ["project:write", "team:write"]}
    assert {"cookieAuth": []} in teams["get"]["security"]  # SessionAuthentication: the role's scopes
    projects = paths["/orgs/{org}/projects"]
    assert projects["post"]["security"][0] == {"oauth2": ["project:write"]}


def test_no_protected_method_is_described_as_public() -> None:
    for path, item in schema()["paths"].items():
        for method, operation in item.items():
            if path.startswith(("/orgs/", "/tenants/", "/me", "/basic/", "/unreachable/")):
                assert operation.get("security"), (path, method)
                assert {} not in operation["security"], (path, method)


def test_the_security_scheme_is_the_configured_one() -> None:
    scheme = schema()["components"]["securitySchemes"]["oauth2"]
    flow = scheme["flows"]["authorizationCode"]
    assert (flow["tokenUrl"], flow["authorizationUrl"]) == (
        "https://as.test/token",
        "https://as.test/authorize",
    )
    assert {"project:read", "project:write", "team:write", "report:read"} <= set(flow["scopes"])
    with override_settings(RESOURCE_SERVER_OPENAPI={"SCHEME_NAME": "api"}):
        bare = schema()
    assert bare["components"]["securitySchemes"]["api"]["type"] == "http"  # never a guessed endpoint
    assert bare["paths"]["/me"]["get"]["security"][0] == {"api": ["project:read"]}


def test_agent_endpoints_require_the_scheme_without_scopes() -> None:
    operation = schema()["paths"]["/orgs/{org}/agent-token"]["post"]
    assert operation["security"][0] == {"oauth2": []}


@pytest.mark.parametrize("path", ["/schema"])
def test_the_schema_view_is_public(path: str) -> None:
    assert Client().get(path).status_code == 200
