"""`flask scopes routes|check|explain` and the OpenAPI security requirements, on a real app."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from flask import Blueprint, Flask
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator

from policy import Roles
from resource_server import JWTVerifier
from resource_server.flask import ResourceServer
from tests.support import AUDIENCE, ISSUER, FakeClock, Signer, jwks

ROLES = Roles({"member": ["project:read"], "admin": ["project:read", "project:write", "team:write"]})


def make_app(es: Signer, *, clean: bool = True) -> tuple[Flask, ResourceServer]:
    app = Flask(__name__)
    app.config["RESOURCE_SERVER_RESOURCE"] = "https://api.test"
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=FakeClock()),
        roles=ROLES,
        membership=lambda s, o: {"user-1": "admin"}.get(s),
    )
    app.add_url_rule(
        "/orgs/<org>/projects",
        "projects",
        rs.require({"GET": "project:read", "POST": [["project:write", "team:write"], "project:read"]})(
            lambda org: "ok"
        ),
        methods=["GET", "POST"],
    )
    bp = Blueprint("teams", __name__, url_prefix="/orgs/<org>/teams")
    rs.protect_blueprint(bp, {"GET": "project:read"})
    bp.add_url_rule("/", "list", lambda org: "ok")
    app.register_blueprint(bp)
    app.add_url_rule("/health", "health", rs.public(lambda: "ok"))
    if not clean:
        app.add_url_rule(
            "/orgs/<org>/audit",
            "audit",
            rs.require({"GET": "audit:read"})(lambda org: "x"),
            methods=["GET", "DELETE"],
        )
        app.add_url_rule("/debug", "debug", lambda: "open")
        # The default org="org", on rules that call the variable something else or have none.
        app.add_url_rule(
            "/tenants/<tenant>/projects",
            "tenant_projects",
            rs.require({"GET": "project:read"})(lambda tenant: "x"),
        )
        other = Blueprint("other", __name__, url_prefix="/o/<org_id>")
        rs.protect_blueprint(other, {"GET": "project:read"})
        other.add_url_rule("/x", "x", lambda org_id: "x")
        app.register_blueprint(other)
    return app, rs


def test_routes_table(es: Signer) -> None:
    app, _ = make_app(es)
    result = app.test_cli_runner().invoke(args=["scopes", "routes", "--json"])
    rows = {(r["rule"], r["method"]): r for r in json.loads(result.output)}
    post = rows[("/orgs/<org>/projects", "POST")]
    assert post["scopes"] == [["project:write", "team:write"], ["project:read"]]
    assert post["roles"] == ["member", "admin"]
    assert rows[("/orgs/<org>/teams/", "GET")]["scopes"] == [["project:read"]]
    assert rows[("/.well-known/oauth-protected-resource", "GET")]["protection"] == "public"
    text = app.test_cli_runner().invoke(args=["scopes", "routes"]).output
    assert "project:write team:write | project:read" in text


def test_check_passes_a_clean_app_and_fails_a_broken_one(es: Signer) -> None:
    app, _ = make_app(es)
    clean = app.test_cli_runner().invoke(args=["scopes", "check"])
    assert (clean.exit_code, clean.output.strip()) == (0, "scope maps OK")  # /health is declared public
    broken, _ = make_app(es, clean=False)
    result = broken.test_cli_runner().invoke(args=["scopes", "check", "--json"])
    assert result.exit_code == 1
    found = json.loads(result.output)["problems"]
    assert any("accepts DELETE" in p for p in found)
    assert any("audit:read, which no role grants" in p for p in found)
    assert any("/debug" in p and "no protection" in p for p in found)
    assert any(p.startswith("/tenants/<tenant>/projects") and "'org'" in p for p in found)
    assert any(p.startswith("/o/<org_id>/x") and "'org'" in p for p in found)
    assert len(found) == 5, found


def test_routes_declared_public_by_config_pass_the_check(es: Signer) -> None:
    app, _ = make_app(es)
    app.add_url_rule("/status", "status", lambda: "ok")
    assert app.test_cli_runner().invoke(args=["scopes", "check"]).exit_code == 1
    app.config["RESOURCE_SERVER_PUBLIC_ENDPOINTS"] = ["status"]
    assert app.test_cli_runner().invoke(args=["scopes", "check"]).exit_code == 0


def test_a_method_a_method_view_lacks_is_caught_at_import(es: Signer) -> None:
    """MethodViews fail when decorated (their methods are known then); function views, whose
    methods come with the URL rule later, are caught by the check (above)."""
    from flask.views import MethodView

    _, rs = make_app(es)
    with pytest.raises(ValueError, match="DELETE"):

        @rs.require({"GET": "project:read"})
        class Projects(MethodView):
            def get(self, org: str) -> str:
                return "x"

            def delete(self, org: str) -> str:
                return "x"


EXPLAINED = [
    ("POST", "/orgs/acme/projects", "project:read"),  # allowed through the second alternative
    ("GET", "/orgs/acme/projects", "team:write"),  # insufficient_scope, with resource_metadata
    ("POST", "/orgs/acme/projects", ""),  # insufficient_scope naming the alternative the role holds
    ("GET", "/orgs/acme/teams/", "project:read"),  # a blueprint-protected route
    ("GET", "/orgs/globex/projects", "project:read"),  # another org's token: 401
    ("HEAD", "/orgs/acme/projects", "team:write"),  # HEAD: the same refusal, with no body
    ("GET", "/orgs/acme/projects?page=2", "project:read"),  # a query string
]


@pytest.mark.parametrize(("method", "path", "scope"), EXPLAINED)
def test_explain_prints_exactly_what_the_server_sends(es: Signer, method: str, path: str, scope: str) -> None:
    app, _ = make_app(es)
    token = es.token(scope=scope, now=int(FakeClock().now))
    sent = app.test_client().open(path, method=method, headers={"Authorization": f"Bearer {token}"})
    result = app.test_cli_runner().invoke(
        args=["scopes", "explain", "--token", token, "--json", method, path]
    )
    explained = json.loads(result.output)
    assert explained["status"] == sent.status_code
    assert explained["www_authenticate"] == sent.headers.get("WWW-Authenticate")
    assert explained["body"] == (sent.get_json() if sent.status_code != 200 and sent.data else None)
    assert explained["reason"]
    text = app.test_cli_runner().invoke(args=["scopes", "explain", "--token", token, method, path]).output
    assert text.startswith(f"{sent.status_code}:")
    if "WWW-Authenticate" in sent.headers:
        assert f"WWW-Authenticate: {sent.headers['WWW-Authenticate']}" in text


def test_explain_keeps_resource_metadata_in_the_challenge(es: Signer) -> None:
    app, _ = make_app(es)
    token = es.token(scope="team:write", now=int(FakeClock().now))
    result = app.test_cli_runner().invoke(
        args=["scopes", "explain", "--token", token, "--json", "GET", "/orgs/acme/projects"]
    )
    header = json.loads(result.output)["www_authenticate"]
    assert 'resource_metadata="https://api.test/.well-known/oauth-protected-resource"' in header


def test_explain_refuses_what_it_cannot_explain(es: Signer) -> None:
    app, _ = make_app(es)
    runner = app.test_cli_runner()
    token = es.token(now=int(FakeClock().now))
    assert runner.invoke(args=["scopes", "explain", "--token", token, "GET", "/nowhere"]).exit_code != 0
    assert runner.invoke(args=["scopes", "explain", "--token", token, "GET", "/health"]).exit_code != 0
    bad = runner.invoke(args=["scopes", "explain", "--token", "nope", "GET", "/orgs/acme/projects"])
    assert bad.output.startswith("401:")
    broken = runner.invoke(args=["scopes", "explain", "--token", "a\nb", "GET", "/orgs/acme/projects"])
    assert broken.exit_code == 1 and "control characters" in broken.output


def test_openapi_security(es: Signer) -> None:
    app, rs = make_app(es)
    with app.app_context():
        spec = rs.openapi_security(
            token_url="https://as.test/token", authorization_url="https://as.test/authorize"
        )
    flows = spec["components"]["securitySchemes"]["oauth2"]["flows"]["authorizationCode"]
    assert flows["tokenUrl"] == "https://as.test/token"
    assert set(flows["scopes"]) == {"project:read", "project:write", "team:write"}
    projects = spec["paths"]["/orgs/{org}/projects"]
    assert projects["post"]["security"] == [
        {"oauth2": ["project:write", "team:write"]},
        {"oauth2": ["project:read"]},
    ]
    assert projects["parameters"] == [
        {"name": "org", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert set(projects["post"]["responses"]) == {"401", "403"}
    assert spec["paths"]["/orgs/{org}/teams/"]["get"]["security"] == [{"oauth2": ["project:read"]}]
    assert spec["paths"]["/health"]["get"]["security"] == []  # declared public
    client_credentials = rs.openapi_security(app, token_url="https://as.test/token")
    assert "clientCredentials" in client_credentials["components"]["securitySchemes"]["oauth2"]["flows"]


def test_openapi_never_calls_an_unmapped_method_public(es: Signer) -> None:
    """``security: []`` means "no authentication" in OpenAPI; a method the route accepts but its
    map lacks is refused to everyone, so it is left out rather than described as public."""
    app, rs = make_app(es, clean=False)
    spec = rs.openapi_security(app, token_url="https://as.test/token")
    audit = spec["paths"]["/orgs/{org}/audit"]
    assert "delete" not in audit and audit["get"]["security"] == [{"oauth2": ["audit:read"]}]
    public = [
        (p, m)
        for p, item in spec["paths"].items()
        for m, op in item.items()
        if m != "parameters" and op["security"] == []
    ]
    assert public == [("/.well-known/oauth-protected-resource", "get"), ("/health", "get")]
    assert "/debug" not in spec["paths"]  # undeclared: nothing is claimed about it


def test_openapi_path_parameters_follow_the_converters(es: Signer) -> None:
    app, rs = make_app(es)
    app.add_url_rule(
        "/orgs/<org>/projects/<int:project>/files/<path:name>",
        "file",
        rs.require({"GET": "project:read"})(lambda org, project, name: "x"),
    )
    item = rs.openapi_security(app, token_url="https://as.test/token")["paths"][
        "/orgs/{org}/projects/{project}/files/{name}"
    ]
    assert [(p["name"], p["schema"]) for p in item["parameters"]] == [
        ("org", {"type": "string"}),
        ("project", {"type": "integer"}),
        ("name", {"type": "string"}),
    ]


@pytest.mark.parametrize("args", [["scopes", "routes"], ["scopes", "check"]])
def test_commands_need_the_extension(args: list[str]) -> None:
    from resource_server.flask.cli import scopes_cli

    app = Flask(__name__)
    app.cli.add_command(scopes_cli)
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code != 0 and "ResourceServer" in result.output


def validated(spec: dict[str, Any], *validators: Any) -> dict[str, Any]:
    document = {"info": {"title": "api", "version": "1"}, **spec}
    for validator, version in validators:
        validator({"openapi": version, **document}).validate()
    return spec


def test_openapi_guesses_no_token_endpoint(es: Signer) -> None:
    """Without endpoints, the scheme is an HTTP bearer token from the verifier's issuer, not an
    ``oauth2`` flow at a made-up ``<issuer>/token``; the fragment is valid OpenAPI 3.1."""
    app, rs = make_app(es)
    spec = validated(rs.openapi_security(app), (OpenAPIV31SpecValidator, "3.1.0"))
    assert spec["components"]["securitySchemes"]["oauth2"] == {
        "type": "http",
        "scheme": "bearer",
        "description": f"An OAuth 2.0 access token from {ISSUER}",
    }
    assert "/token" not in json.dumps(spec)
    assert spec["paths"]["/orgs/{org}/projects"]["get"]["security"] == [{"oauth2": ["project:read"]}]
    with pytest.raises(ValueError, match="token_url too"):
        rs.openapi_security(app, authorization_url="https://as.test/authorize")


def test_openapi_of_a_discovering_verifier_points_at_the_discovery_document() -> None:
    app = Flask(__name__)
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, discover=True),
        roles=ROLES,
        membership=lambda s, o: None,
    )
    app.add_url_rule("/orgs/<org>/projects", "projects", rs.require({"GET": "project:read"})(lambda org: "x"))
    spec = rs.openapi_security(app)
    validated(spec, (OpenAPIV30SpecValidator, "3.0.3"), (OpenAPIV31SpecValidator, "3.1.0"))
    assert spec["components"]["securitySchemes"]["oauth2"] == {
        "type": "openIdConnect",
        "openIdConnectUrl": f"{ISSUER}/.well-known/openid-configuration",
    }
    configured = "https://as.test/.well-known/oauth-authorization-server"
    explicit = rs.openapi_security(app, openid_connect_url=configured)["components"]["securitySchemes"]
    assert explicit["oauth2"] == {"type": "openIdConnect", "openIdConnectUrl": configured}


def test_nested_and_renamed_blueprints_are_seen_by_the_tooling(es: Signer) -> None:
    app, rs = make_app(es)
    parent = Blueprint("parent", __name__, url_prefix="/p")
    child = Blueprint("child", __name__, url_prefix="/orgs/<org>/child")
    rs.protect_blueprint(child, {"GET": "project:read"})
    child.add_url_rule("/", "list", lambda org: "ok")
    parent.register_blueprint(child)
    app.register_blueprint(parent)
    renamed = Blueprint("reports", __name__)
    rs.protect_blueprint(renamed, {"GET": "project:read"})
    renamed.add_url_rule("/orgs/<org>/reports", "list", lambda org: "ok")
    app.register_blueprint(renamed, name="finance_reports")
    rows = json.loads(app.test_cli_runner().invoke(args=["scopes", "routes", "--json"]).output)
    kinds = {(r["rule"], r["protection"]) for r in rows}
    assert ("/p/orgs/<org>/child/", "scope map") in kinds
    assert ("/orgs/<org>/reports", "scope map") in kinds
    assert app.test_cli_runner().invoke(args=["scopes", "check"]).exit_code == 0
    assert app.test_client().get("/p/orgs/acme/child/").status_code == 401  # protected at runtime too


def test_check_catches_org_none_on_a_rule_with_an_org_variable(es: Signer) -> None:
    app, rs = make_app(es)
    app.add_url_rule(
        "/orgs/<org>/audit", "audit", rs.require({"GET": "project:read"}, org=None)(lambda org: "x")
    )
    result = app.test_cli_runner().invoke(args=["scopes", "check", "--json"])
    (problem,) = json.loads(result.output)["problems"]
    assert problem.startswith("/orgs/<org>/audit") and "org=None" in problem


def test_check_does_not_count_a_none_default_as_the_org_variable(es: Signer) -> None:
    """werkzeug lists defaults among a rule's arguments; a None default gives no organization,
    and every request to the rule is refused as misconfigured."""
    app, rs = make_app(es)
    app.add_url_rule(
        "/audit", "audit", rs.require({"GET": "project:read"})(lambda org: "x"), defaults={"org": None}
    )
    app.add_url_rule(
        "/acme-audit",
        "acme_audit",
        rs.require({"GET": "project:read"})(lambda org: "x"),
        defaults={"org": "acme"},
    )
    found = json.loads(app.test_cli_runner().invoke(args=["scopes", "check", "--json"]).output)["problems"]
    assert [p.split()[0] for p in found] == ["/audit"]


def test_a_refused_issuer_is_named_in_the_log_and_by_explain_never_in_the_response(
    es: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    """A configuration that differs by a trailing slash: the operator sees both values, in the
    log line and in ``flask scopes explain``; the client sees neither."""
    app, _ = make_app(es)
    token = es.token(iss=f"{ISSUER}/", now=int(FakeClock().now))
    with caplog.at_level(logging.INFO, "resource_server"):
        sent = app.test_client().get("/orgs/acme/projects", headers={"Authorization": f"Bearer {token}"})
    assert sent.status_code == 401
    assert sent.get_json()["error_description"] == "the token issuer is not accepted"
    assert ISSUER not in sent.get_data(as_text=True)
    assert not [value for _, value in sent.headers if ISSUER in value]
    both = f"the token issuer '{ISSUER}/' is not the expected '{ISSUER}'"
    assert [r.getMessage() for r in caplog.records if both in r.getMessage()]
    explained = app.test_cli_runner().invoke(
        args=["scopes", "explain", "--token", token, "GET", "/orgs/acme/projects"]
    )
    assert explained.output.startswith(f"401: {both}")
    body = json.loads(explained.output.splitlines()[-1])
    assert ISSUER not in json.dumps(body)
