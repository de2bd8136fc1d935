"""The demo API under the tooling: `flask scopes check` passes, and the OpenAPI fragment, merged as
is into a document, validates as OpenAPI 3.0 and 3.1."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from demo_api import create_api
from demo_auth_server import MEMBERSHIPS, PASSWORDS, ROLES


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    return create_api(
        issuer="https://as.test",
        jwks_uri="https://as.test/jwks.json",  # never fetched: no token is verified here
        resource="https://api.test",
        roles=ROLES,
        memberships=MEMBERSHIPS,
        passwords=PASSWORDS,
        grants_url=f"sqlite:///{tmp_path_factory.mktemp('grants')}/grants.db",
    )


def test_the_demo_passes_flask_scopes_check(api: Flask) -> None:
    result = api.test_cli_runner().invoke(args=["scopes", "check"])
    assert (result.exit_code, result.output.strip()) == (0, "scope maps OK")


def document(api: Flask, version: str) -> dict[str, Any]:
    with api.app_context():
        fragment = api.extensions["resource_server"].server.openapi_security(
            token_url="https://as.test/token", authorization_url="https://as.test/authorize"
        )
    return {"openapi": version, "info": {"title": "demo", "version": "1"}, **fragment}


@pytest.mark.parametrize(
    ("version", "validator"), [("3.0.3", OpenAPIV30SpecValidator), ("3.1.0", OpenAPIV31SpecValidator)]
)
def test_the_openapi_fragment_makes_a_valid_document(api: Flask, version: str, validator: Any) -> None:
    spec = document(api, version)
    errors = [error.message for error in validator(spec).iter_errors()]
    assert errors == []
    paths = spec["paths"]
    # What the validator does not check: each requirement names a declared scheme and its scopes.
    schemes = spec["components"]["securitySchemes"]
    declared = set(schemes["oauth2"]["flows"]["authorizationCode"]["scopes"])
    for item in paths.values():
        for method, operation in item.items():
            if method != "parameters":
                for requirement in operation["security"]:
                    assert set(requirement) <= set(schemes)
                    assert set(*requirement.values()) <= declared
    assert paths["/orgs/{org}/projects"]["post"]["security"] == [{"oauth2": ["project:write"]}]
    assert paths["/orgs/{org}/team"]["put"]["security"] == [{"oauth2": ["project:write", "team:write"]}]
    # The agent endpoints need a member's credentials but no particular scope.
    assert paths["/orgs/{org}/agent-token"]["post"]["security"] == [{"oauth2": []}]
    assert paths["/orgs/{org}/agent-approvals"]["post"]["security"] == [{"oauth2": []}]
    assert paths["/login"]["post"]["security"] == []  # declared public with @rs.public
