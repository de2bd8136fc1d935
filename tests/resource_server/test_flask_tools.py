"""`flask scopes routes|check|explain` and the OpenAPI security requirements, on a real app."""

from __future__ import annotations

import json

import pytest
from flask import Blueprint, Flask

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
    if not clean:
        app.add_url_rule(
            "/orgs/<org>/audit",
            "audit",
            rs.require({"GET": "audit:read"})(lambda org: "x"),
            methods=["GET", "DELETE"],
        )
        app.add_url_rule("/debug", "debug", lambda: "open")
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
    assert app.test_cli_runner().invoke(args=["scopes", "check"]).exit_code == 0
    broken, _ = make_app(es, clean=False)
    result = broken.test_cli_runner().invoke(args=["scopes", "check", "--json"])
    assert result.exit_code == 1
    found = json.loads(result.output)["problems"]
    assert any("accepts DELETE" in p for p in found)
    assert any("audit:read, which no role grants" in p for p in found)
    assert any("/debug" in p and "no protection" in p for p in found)


def test_explain(es: Signer) -> None:
    app, _ = make_app(es)
    runner = app.test_cli_runner()
    token = es.token(scope="project:read")
    denied = runner.invoke(
        args=["scopes", "explain", "--token", token, "--json", "post", "/orgs/acme/projects"]
    )
    result = json.loads(denied.output)
    assert result["status"] == 200  # project:read is the second alternative
    put = runner.invoke(
        args=["scopes", "explain", "--token", es.token(scope="team:write"), "GET", "/orgs/acme/projects"]
    )
    assert put.output.startswith("403:") and 'scope="project:read"' in put.output
    bad = runner.invoke(args=["scopes", "explain", "--token", "nope", "GET", "/orgs/acme/projects"])
    assert bad.output.startswith("401:")
    assert runner.invoke(args=["scopes", "explain", "--token", token, "GET", "/nowhere"]).exit_code != 0


def test_openapi_security(es: Signer) -> None:
    app, rs = make_app(es)
    with app.app_context():
        spec = rs.openapi_security(
            token_url="https://as.test/token", authorization_url="https://as.test/authorize"
        )
    flows = spec["securitySchemes"]["oauth2"]["flows"]["authorizationCode"]
    assert flows["tokenUrl"] == "https://as.test/token"
    assert set(flows["scopes"]) == {"project:read", "project:write", "team:write"}
    assert spec["paths"]["/orgs/{org}/projects"]["post"] == [
        {"oauth2": ["project:write", "team:write"]},
        {"oauth2": ["project:read"]},
    ]
    assert spec["paths"]["/orgs/{org}/teams/"]["get"] == [{"oauth2": ["project:read"]}]
    client_credentials = rs.openapi_security(app, token_url="https://as.test/token")
    assert "clientCredentials" in client_credentials["securitySchemes"]["oauth2"]["flows"]


@pytest.mark.parametrize("args", [["scopes", "routes"], ["scopes", "check"]])
def test_commands_need_the_extension(args: list[str]) -> None:
    from resource_server.flask_tools import scopes_cli

    app = Flask(__name__)
    app.cli.add_command(scopes_cli)
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code != 0 and "ResourceServer" in result.output


def test_openapi_token_url_defaults_to_the_authorization_server(es: Signer) -> None:
    app, rs = make_app(es)
    with pytest.raises(ValueError, match="token_url"):
        rs.openapi_security(app)
    configured = Flask(__name__)
    configured.config["RESOURCE_SERVER_AUTHORIZATION_SERVERS"] = ["https://as.test/"]
    rs.init_app(configured)
    flows = rs.openapi_security(configured)["securitySchemes"]["oauth2"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == "https://as.test/token"
