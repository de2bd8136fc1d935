"""Step-up authentication (RFC 9470) asks the person to sign in again, which only an access token
from the authorization server can then carry. A capability token or a viewer context never
carries ``acr`` or ``auth_time``: on a route that asks for them they get ``403`` without a
challenge (DESIGN.md: no token could help), not a ``401`` that sends a client to make the person
sign in for nothing."""

from __future__ import annotations

import hashlib

import pytest
from flask import Flask, jsonify
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from policy import Requirement, Roles, parse_challenges
from resource_server import JWTVerifier
from resource_server.capability import CapabilityIssuer
from resource_server.flask import ResourceServer
from resource_server.flask.agents import agent_blueprint
from resource_server.grants import GrantStore
from resource_server.viewer_context import ViewerContextSigner, ViewerContextVerifier
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, es256, jwks

SIGNER = es256("step-up-credentials")
CAPABILITY_KEY = hashlib.sha256(b"step-up-credentials capability").digest()
VIEWER_KEY = hashlib.sha256(b"step-up-credentials viewer").digest()
STRONG = Requirement("project:admin", acr=["mfa"], max_age=300)


@pytest.fixture
def client() -> FlaskClient:
    clock = FakeClock(NOW)
    app = Flask(__name__)
    grants = GrantStore("sqlite://")
    grants.create_schema()
    issuer = CapabilityIssuer(
        keys={"k": CAPABILITY_KEY}, issuer="https://api.test", readonly_scopes=["project:admin"], clock=clock
    )
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=clock),
        roles=Roles({"admin": ["project:admin"]}),
        membership=lambda subject, org: "admin",
        capabilities=issuer.verifier(),
        viewer_context=ViewerContextVerifier(
            keys={"v1": VIEWER_KEY}, audience="api", issuers=["gw"], clock=clock
        ),
    )
    app.register_blueprint(agent_blueprint(rs, issuer=issuer, grants=grants))

    @app.route("/orgs/<org>/projects", methods=["DELETE"])
    @rs.require({"DELETE": STRONG}, viewer_context=True)
    def delete(org: str) -> object:
        return jsonify(deleted=org)

    return app.test_client()


def person(auth_time: int) -> str:
    return SIGNER.token(sub="user-1", scope="project:admin", acr="mfa", auth_time=auth_time)


def refused_without_challenge(response: TestResponse) -> None:
    assert response.status_code == 403
    assert "WWW-Authenticate" not in response.headers


def test_the_person_token_steps_up_and_passes(client: FlaskClient) -> None:
    stale = client.delete("/orgs/acme/projects", headers={"Authorization": f"Bearer {person(NOW - 3600)}"})
    assert stale.status_code == 401
    (challenge,) = parse_challenges(stale.headers["WWW-Authenticate"])
    assert challenge.get("error") == "insufficient_user_authentication"
    fresh = client.delete("/orgs/acme/projects", headers={"Authorization": f"Bearer {person(NOW - 5)}"})
    assert fresh.status_code == 200


def test_a_capability_minted_right_after_a_strong_sign_in_gets_403_without_a_challenge(
    client: FlaskClient,
) -> None:
    minted = client.post(
        "/orgs/acme/agent-token",
        headers={"Authorization": f"Bearer {person(NOW - 5)}"},
        json={"sessionId": "s-1"},
    )
    assert minted.status_code == 200
    capability = minted.get_json()["token"]
    answer = client.delete("/orgs/acme/projects", headers={"Authorization": f"Bearer {capability}"})
    refused_without_challenge(answer)
    assert "sign-in" in answer.get_json()["error_description"]


@pytest.mark.parametrize("scopes", [None, ["project:admin"]], ids=["role scopes", "named scopes"])
def test_a_viewer_context_gets_403_without_a_challenge(client: FlaskClient, scopes: list[str] | None) -> None:
    signer = ViewerContextSigner(
        keys={"v1": VIEWER_KEY}, signing_kid="v1", issuer="gw", audience="api", clock=FakeClock(NOW)
    )
    headers = signer.headers(
        user_id="user-1", org_id="acme", scopes=scopes, method="DELETE", path="/orgs/acme/projects"
    )
    refused_without_challenge(client.delete("/orgs/acme/projects", headers=headers))
