"""The tooling and the OpenAPI documents describe what a Requirement asks beyond scopes:
``flask scopes explain`` prints the RFC 9470 refusal exactly as the server sends it, ``flask
scopes routes`` lists the conditions, and the Flask and FastAPI documents carry them in the
operation extension ``x-authorization-conditions``, valid OpenAPI."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from flask import Flask, jsonify
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator

from policy import Access, parse_challenges
from resource_server import JWTVerifier
from resource_server.fastapi import ResourceServer as FastAPIServer
from resource_server.flask import ResourceServer as FlaskServer
from resource_server.flask import current_access
from resource_server.openapi import CONDITIONS
from tests.resource_server import delegation_scenario as scenario
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, es256, jwks

SIGNER = es256("tooling")
#: The DELETE alternative as the extension and ``scopes routes --json`` list it.
DELETE = {"scopes": ["project:admin"], "acr_values": ["mfa", "hwk"], "max_age": 300}
PUT = {"scopes": ["project:write"], "actors": []}


def verifier() -> JWTVerifier:
    return JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=FakeClock(NOW))


def flask_app() -> tuple[Flask, FlaskServer]:
    app = Flask(__name__)
    app.config["RESOURCE_SERVER_RESOURCE"] = "https://api.test"
    rs = FlaskServer(
        app, verifier=verifier(), roles=scenario.ROLES, membership=scenario.membership, actors=scenario.ACTORS
    )

    @app.route("/orgs/<org>/projects", methods=["GET", "POST", "PUT", "DELETE"])
    @rs.require(scenario.SCOPE_MAP)
    def projects(org: str) -> Any:
        return jsonify(scenario.seen(current_access))

    return app, rs


def test_explain_prints_the_step_up_refusal_exactly_as_sent() -> None:
    app, _ = flask_app()
    token = SIGNER.token(scope=scenario.EVERYTHING, acr="pwd", auth_time=NOW - 10)
    sent = app.test_client().delete(scenario.PATH, headers={"Authorization": f"Bearer {token}"})
    runner = app.test_cli_runner()
    explained = json.loads(
        runner.invoke(args=["scopes", "explain", "--token", token, "--json", "DELETE", scenario.PATH]).output
    )
    assert explained["status"] == sent.status_code == 401
    assert explained["www_authenticate"] == sent.headers["WWW-Authenticate"]
    assert explained["body"] == sent.json
    (challenge,) = parse_challenges(explained["www_authenticate"])
    assert challenge.get("error") == "insufficient_user_authentication"
    assert (challenge.get("acr_values"), challenge.get("max_age")) == ("mfa hwk", "300")
    assert explained["reason"] == (
        "DELETE denied: the person must authenticate again for project:admin (acr mfa or hwk; "
        "authenticated within 300 s) (the token's acr is 'pwd', its auth_time 1899999990)."
    )
    text = runner.invoke(args=["scopes", "explain", "--token", token, "DELETE", scenario.PATH]).output
    assert text.splitlines()[:2] == [
        f"401: {explained['reason']}",
        f"WWW-Authenticate: {sent.headers['WWW-Authenticate']}",
    ]


def test_explain_allows_a_fresh_sign_in_and_names_the_actor_a_ceiling_refuses() -> None:
    app, _ = flask_app()
    runner = app.test_cli_runner()
    strong = SIGNER.token(scope=scenario.EVERYTHING, acr="mfa", auth_time=NOW - 10)
    allowed = runner.invoke(args=["scopes", "explain", "--token", strong, "DELETE", scenario.PATH]).output
    assert allowed.startswith(
        "200: DELETE allowed: the effective scopes include project:admin (acr mfa or hwk;"
    )
    agent = SIGNER.token(scope=scenario.EVERYTHING, act={"sub": "agent:reporting"})
    capped = runner.invoke(args=["scopes", "explain", "--token", agent, "POST", scenario.PATH]).output
    assert capped.splitlines()[0] == (
        "403: POST denied: the actor 'agent:reporting' may not exercise project:write, so no token can help."
    )
    assert "WWW-Authenticate" not in capped


def test_routes_list_the_conditions() -> None:
    app, _ = flask_app()
    runner = app.test_cli_runner()
    listed = json.loads(runner.invoke(args=["scopes", "routes", "--json"]).output)
    rows = {r["method"]: r for r in listed if r["rule"] == "/orgs/<org>/projects"}
    assert rows["DELETE"]["scopes"] == [["project:admin"]]  # as before: the scopes of each alternative
    assert rows["DELETE"]["requirements"] == [DELETE]
    assert rows["PUT"]["requirements"] == [PUT]
    assert rows["GET"]["requirements"] == [{"scopes": ["project:read"]}]
    text = runner.invoke(args=["scopes", "routes"]).output
    assert "DELETE  project:admin (acr mfa or hwk; authenticated within 300 s)   roles: admin" in text
    assert "PUT     project:write (no actor)   roles: admin" in text
    assert "GET     project:read   roles: admin, reader" in text


def test_flask_openapi_carries_the_conditions() -> None:
    app, rs = flask_app()
    with app.app_context():
        fragment = rs.openapi_security(token_url="https://as.test/token")
    operations = fragment["paths"]["/orgs/{org}/projects"]
    assert operations["delete"]["security"] == [{"oauth2": ["project:admin"]}]
    assert operations["delete"][CONDITIONS] == [DELETE]
    assert operations["put"][CONDITIONS] == [PUT]
    assert CONDITIONS not in operations["get"] and CONDITIONS not in operations["post"]
    assert "insufficient_user_authentication" in operations["delete"]["responses"]["401"]["description"]
    document = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, **fragment}
    OpenAPIV30SpecValidator(document).validate()


def test_fastapi_openapi_carries_the_conditions() -> None:
    rs = FastAPIServer(
        verifier=verifier(),
        roles=scenario.ROLES,
        membership=scenario.membership,
        resource="https://api.test",
        authorization_servers=[ISSUER],
        actors=scenario.ACTORS,
    )
    app = FastAPI()
    projects = rs.require(scenario.SCOPE_MAP)
    admin = rs.require({"DELETE": "project:read"})  # a second requirement: both must hold

    @app.delete("/orgs/{org}/projects")
    async def delete(access: Access = Depends(projects), also: Access = Depends(admin)) -> Any:  # noqa: B008
        return {}

    @app.get("/orgs/{org}/projects")
    async def read(access: Access = Depends(projects)) -> Any:  # noqa: B008
        return {}

    rs.install(app, token_url="https://as.test/token")
    document = TestClient(app).get("/openapi.json").json()
    operations = document["paths"]["/orgs/{org}/projects"]
    assert operations["delete"]["security"] == [{"oauth2": ["project:admin", "project:read"]}]
    assert operations["delete"][CONDITIONS] == [DELETE]
    assert CONDITIONS not in operations["get"]
    assert (
        "insufficient_user_authentication"
        in document["components"]["responses"]["BearerUnauthorized"]["description"]
    )
    OpenAPIV31SpecValidator(document).validate()
