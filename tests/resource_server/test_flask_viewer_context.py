"""A verified viewer context as an authentication source, on routes that opt in: the same access
assembly (role from membership, context scope narrowing it, org binding), and stripping."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, request

from policy import Roles
from resource_server import JWTVerifier
from resource_server.flask import ResourceServer, current_access
from resource_server.viewer_context import ViewerContextSigner, ViewerContextVerifier
from tests.support import AUDIENCE, ISSUER, FakeClock, Signer, jwks

KEY = "v" * 32
ROLES = Roles({"member": ["project:read"], "admin": ["project:read", "project:write"]})
MEMBERS = {("user-1", "acme"): "admin", ("user-2", "acme"): "member"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_900_000_000)


@pytest.fixture
def signer(clock: FakeClock) -> ViewerContextSigner:
    return ViewerContextSigner(
        keys={"v1": KEY}, signing_kid="v1", issuer="gateway", audience="api", clock=clock
    )


@pytest.fixture
def client(es: Signer, clock: FakeClock):
    app = Flask(__name__)
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock),
        roles=ROLES,
        membership=lambda s, o: MEMBERS.get((s, o)),
        viewer_context=ViewerContextVerifier(
            keys={"v1": KEY}, audience="api", issuers=["gateway"], clock=clock
        ),
    )

    @app.route("/orgs/<org>/projects", methods=["GET", "POST"])
    @rs.require({"GET": "project:read", "POST": "project:write"}, viewer_context=True)
    def projects(org: str) -> dict[str, Any]:
        return {
            "subject": current_access.subject,
            "scopes": sorted(current_access.scopes),
            "header_seen": request.headers.get("X-Viewer-Context") is not None,
        }

    @app.get("/orgs/<org>/closed")
    @rs.require({"GET": "project:read"})
    def closed(org: str) -> dict[str, Any]:
        return {"header_seen": request.headers.get("X-Viewer-Context") is not None}

    return app.test_client()


def test_a_verified_context_authenticates(client, signer: ViewerContextSigner) -> None:
    headers = signer.headers(user_id="user-1", org_id="acme", method="GET", path="/orgs/acme/projects")
    response = client.get("/orgs/acme/projects", headers=headers)
    assert response.json == {
        "subject": "user-1",
        "scopes": ["project:read", "project:write"],
        "header_seen": True,
    }


def test_the_context_scope_narrows_the_role(client, signer: ViewerContextSigner) -> None:
    headers = signer.headers(
        user_id="user-1", org_id="acme", scopes=["project:read"], method="POST", path="/orgs/acme/projects"
    )
    assert client.post("/orgs/acme/projects", headers=headers).status_code == 403


def test_org_binding_applies(client, signer: ViewerContextSigner) -> None:
    headers = signer.headers(user_id="user-1", org_id="globex", method="GET", path="/orgs/acme/projects")
    assert client.get("/orgs/acme/projects", headers=headers).status_code == 401


def test_a_context_for_another_request_is_stripped_and_ignored(client, signer: ViewerContextSigner) -> None:
    captured = signer.headers(user_id="user-1", org_id="acme", method="GET", path="/orgs/acme/projects")
    assert client.post("/orgs/acme/projects", headers=captured).status_code == 401  # GET context on a POST
    query = signer.headers(user_id="user-1", org_id="acme", method="GET", path="/orgs/acme/projects?all=1")
    assert client.get("/orgs/acme/projects?all=1", headers=query).status_code == 200
    assert client.get("/orgs/acme/projects?all=2", headers=query).status_code == 401


def test_a_token_wins_and_a_forged_header_never_reaches_the_view(
    client, es: Signer, clock: FakeClock
) -> None:
    headers = {"Authorization": f"Bearer {es.token(now=int(clock.now))}", "X-Viewer-Context": "forged.x.y"}
    assert client.get("/orgs/acme/projects", headers=headers).json["header_seen"] is False


def test_routes_that_did_not_opt_in_ignore_and_strip_it(client, es: Signer, clock: FakeClock, signer) -> None:
    context = signer.headers(user_id="user-1", org_id="acme", method="GET", path="/orgs/acme/closed")
    assert client.get("/orgs/acme/closed", headers=context).status_code == 401
    token = {"Authorization": f"Bearer {es.token(now=int(clock.now))}"}
    assert client.get("/orgs/acme/closed", headers={**token, **context}).json == {"header_seen": False}


def test_opting_in_without_a_verifier_fails_at_decoration(es: Signer) -> None:
    rs = ResourceServer(
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es)),
        roles=ROLES,
        membership=lambda s, o: None,
    )
    with pytest.raises(ValueError, match="viewer_context"):
        rs.require({"GET": "project:read"}, viewer_context=True)
