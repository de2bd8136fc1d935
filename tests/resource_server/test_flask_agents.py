"""The agent endpoints on a real Flask app with a real SQLite grants store: minting, approving,
the self-approval refusal, bad bodies, and the step-up loop an agent runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask, session

from policy import Roles, parse_challenges
from resource_server import JWTVerifier
from resource_server.capability import CapabilityIssuer
from resource_server.flask import ResourceServer
from resource_server.flask.agents import agent_blueprint
from resource_server.grants import GrantStore
from tests.support import AUDIENCE, ISSUER, FakeClock, Signer, jwks

ROLES = Roles(
    {"member": ["project:read"], "admin": ["project:read", "project:write", "team:read", "team:write"]}
)
MEMBERS = {("user-1", "acme"): "admin", ("user-1", "globex"): "admin", ("user-2", "acme"): "member"}


@pytest.fixture
def setup(es: Signer, tmp_path: Path):
    clock = FakeClock(1_900_000_000)
    grants = GrantStore(f"sqlite:///{tmp_path}/grants.db", clock=clock)
    grants.create_schema()
    issuer = CapabilityIssuer(
        keys={"k1": "k" * 32},
        issuer="https://api.test",
        readonly_scopes=["project:read"],
        grants=grants,
        clock=clock,
    )
    app = Flask(__name__)
    app.secret_key = "s" * 32
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock),
        roles=ROLES,
        membership=lambda s, o: MEMBERS.get((s, o)),
        capabilities=issuer.verifier(),
        session_loader=lambda: session.get("subject"),
    )
    app.register_blueprint(agent_blueprint(rs, issuer=issuer, grants=grants))

    @app.post("/login/<subject>")  # a stand-in for the app's own first-party login
    def login(subject: str) -> str:
        session["subject"] = subject
        return "ok"

    @app.route("/orgs/<org>/projects", methods=["GET", "POST"])
    @rs.require({"GET": "project:read", "POST": "project:write"})
    def projects(org: str) -> str:
        return "done"

    return app, es, clock, grants


def user_token(es: Signer, clock: FakeClock, **claims: Any) -> dict[str, str]:
    claims.setdefault("scope", "project:read project:write team:write")
    claims.setdefault("org_id", "acme")
    return {"Authorization": f"Bearer {es.token(now=int(clock.now), **claims)}"}


def mint(client, headers: dict[str, str], body: Any = None, org: str = "acme"):
    return client.post(f"/orgs/{org}/agent-token", headers=headers, json=body or {"sessionId": "s-1"})


def test_the_agent_loop(setup) -> None:
    app, es, clock, _ = setup
    agent, user = app.test_client(), app.test_client()
    capability = mint(agent, user_token(es, clock)).json
    assert capability["scopes"] == ["project:read"]
    cap = {"Authorization": f"Bearer {capability['token']}"}
    refused = agent.post("/orgs/acme/projects", headers=cap)
    assert refused.status_code == 403
    wanted = parse_challenges(refused.headers["WWW-Authenticate"])[0].get("scope")
    assert wanted == "project:write"
    assert (
        agent.post(
            "/orgs/acme/agent-approvals", headers=cap, json={"sessionId": "s-1", "scopes": [wanted]}
        ).status_code
        == 403
    )
    user.post("/login/user-1")
    approved = user.post("/orgs/acme/agent-approvals", json={"sessionId": "s-1", "scopes": [wanted]})
    assert (approved.status_code, approved.json["scopes"]) == (201, ["project:write"])
    again = mint(agent, user_token(es, clock)).json
    assert again["scopes"] == ["project:read", "project:write"]
    assert (
        agent.post("/orgs/acme/projects", headers={"Authorization": f"Bearer {again['token']}"}).status_code
        == 200
    )


def test_approvals_are_per_session_and_org(setup) -> None:
    app, es, clock, _ = setup
    user = app.test_client()
    user.post("/login/user-1")
    user.post("/orgs/acme/agent-approvals", json={"sessionId": "s-1", "scopes": ["project:write"]})
    agent = app.test_client()
    assert mint(agent, user_token(es, clock), {"sessionId": "s-2"}).json["scopes"] == ["project:read"]
    other = mint(agent, user_token(es, clock, org_id="globex"), org="globex").json
    assert other["scopes"] == ["project:read"]


def test_approvals_expire(setup) -> None:
    app, es, clock, _ = setup
    user = app.test_client()
    user.post("/login/user-1")
    user.post("/orgs/acme/agent-approvals", json={"sessionId": "s-1", "scopes": ["project:write"]})
    clock.advance(3601)
    assert mint(app.test_client(), user_token(es, clock)).json["scopes"] == ["project:read"]


def test_a_bearer_token_cannot_approve(setup) -> None:
    app, es, clock, grants = setup
    response = app.test_client().post(
        "/orgs/acme/agent-approvals",
        headers=user_token(es, clock),
        json={"sessionId": "s-1", "scopes": ["project:write"]},
    )
    assert response.status_code == 403
    assert grants.active_scopes(org="acme", subject="user-1", session_id="s-1") == frozenset()


def test_approval_is_capped_at_the_approvers_own_scopes(setup) -> None:
    app, *_ = setup
    member = app.test_client()
    member.post("/login/user-2")
    capped = member.post("/orgs/acme/agent-approvals", json={"sessionId": "s", "scopes": ["project:write"]})
    assert capped.status_code == 403
    mixed = member.post(
        "/orgs/acme/agent-approvals", json={"sessionId": "s", "scopes": ["project:read", "team:write"]}
    )
    assert (mixed.status_code, mixed.json["scopes"]) == (201, ["project:read"])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"sessionId": "x" * 129, "scopes": ["project:write"]}, 400),
        ({"sessionId": 12, "scopes": ["project:write"]}, 400),
        ({"scopes": ["project:write"]}, 400),
        ({"sessionId": "s", "scopes": "project:write team:write"}, 201),  # a scope string is fine
        ({"sessionId": "s", "scopes": [1, 2]}, 400),
        ({"sessionId": "s", "scopes": ["no:such"]}, 400),
        ({"sessionId": "s", "scopes": ["bad scope"]}, 400),
        ({"sessionId": "s", "scopes": []}, 400),
        ({"sessionId": "s", "scopes": {"project:write": True}}, 400),
        ({"sessionId": "s\u0000x", "scopes": ["project:write"]}, 400),
        (["not", "an", "object"], 400),
    ],
)
def test_approval_bodies(setup, body: Any, status: int) -> None:
    app, *_ = setup
    user = app.test_client()
    user.post("/login/user-1")
    response = user.post("/orgs/acme/agent-approvals", json=body)
    assert response.status_code == status
    if status == 400:
        assert set(response.json) == {"error", "error_description"}


@pytest.mark.parametrize(
    "body",
    [
        {"sessionId": "x" * 129},
        {"sessionId": None},
        {"sessionId": "s", "requestedScopes": 5},
        {"sessionId": "s", "requestedScopes": [None]},
        {"sessionId": "s\u0000x"},
        {"sessionId": "s", "requestedScopes": ["a\u00a0b"]},
    ],
)
def test_mint_bodies(setup, body: dict[str, Any]) -> None:
    app, es, clock, _ = setup
    response = mint(app.test_client(), user_token(es, clock), body)
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_approvals_need_json_and_post(setup) -> None:
    app, *_ = setup
    user = app.test_client()
    user.post("/login/user-1")
    form = user.post("/orgs/acme/agent-approvals", data={"sessionId": "s", "scopes": "project:write"})
    assert form.status_code == 415
    assert user.get("/orgs/acme/agent-approvals").status_code == 405


def test_minting_needs_a_member(setup) -> None:
    app, es, clock, _ = setup
    assert mint(app.test_client(), {}).status_code == 401
    stranger = user_token(es, clock, sub="user-9")
    assert mint(app.test_client(), stranger).status_code == 403
    assert mint(app.test_client(), user_token(es, clock, org_id="globex")).status_code == 401  # org binding


def test_a_capability_cannot_mint_capabilities(setup) -> None:
    app, es, clock, _ = setup
    agent = app.test_client()
    capability = mint(agent, user_token(es, clock)).json["token"]
    renewed = mint(agent, {"Authorization": f"Bearer {capability}"})
    assert renewed.status_code == 403 and "capability" in renewed.json["error_description"]


def test_an_anonymous_caller_gets_the_challenge_before_any_body_check(setup) -> None:
    app, *_ = setup
    response = app.test_client().post("/orgs/acme/agent-token", data="x", content_type="text/plain")
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")


def test_expires_at_is_integer_seconds_everywhere(setup) -> None:
    """Both endpoints give expires_at as integer Unix seconds, even from a fractional clock."""
    app, es, clock, _ = setup
    clock.now += 0.75
    minted = mint(app.test_client(), user_token(es, clock)).json
    user = app.test_client()
    user.post("/login/user-1")
    approved = user.post("/orgs/acme/agent-approvals", json={"sessionId": "s-1", "scopes": ["project:write"]})
    for body in (minted, approved.json):
        assert type(body["expires_at"]) is int, body
    assert approved.json["expires_at"] == int(clock.now) + 3600


def test_the_blueprint_prefix_must_name_the_org(setup) -> None:
    app, *_ = setup
    rs = app.extensions["resource_server"].server
    issuer = CapabilityIssuer(
        keys={"k1": "k" * 32}, issuer="https://api.test", readonly_scopes=["project:read"]
    )
    with pytest.raises(ValueError, match="<org>"):
        agent_blueprint(rs, issuer=issuer, grants=None, url_prefix="/tenants/<tenant>")
    assert (
        agent_blueprint(rs, issuer=issuer, grants=None, url_prefix="/t/<string:org>").url_prefix
        == "/t/<string:org>"
    )


@pytest.mark.parametrize("session_id", ["\ud800", "s\u202e1", "s\n1", "\x00"])
def test_session_ids_with_control_or_invisible_characters_are_refused(setup, session_id: str) -> None:
    """Refused before any I/O, with our own message: never the database driver's text."""
    app, es, clock, _ = setup
    user = app.test_client()
    user.post("/login/user-1")
    for response in (
        mint(user, user_token(es, clock), {"sessionId": session_id}),
        user.post("/orgs/acme/agent-approvals", json={"sessionId": session_id, "scopes": ["project:write"]}),
    ):
        assert response.status_code == 400
        assert response.json["error_description"] == "sessionId holds control or invisible characters"


def test_an_integer_org_converter_compares_as_text(setup, tmp_path) -> None:
    """A prefix with <int:org> hands the views an int; they act in str(org), as every route does."""
    _, es, clock, grants = setup
    app = Flask(__name__)
    issuer = CapabilityIssuer(
        keys={"k1": "k" * 32},
        issuer="https://api.test",
        readonly_scopes=["project:read"],
        grants=grants,
        clock=clock,
    )
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock),
        roles=ROLES,
        membership=lambda s, o: "admin" if (s, o) == ("user-1", "5") else None,
    )
    app.register_blueprint(agent_blueprint(rs, issuer=issuer, grants=grants, url_prefix="/orgs/<int:org>"))
    response = mint(app.test_client(), user_token(es, clock, org_id="5"), org="5")
    assert response.status_code == 200, response.json


def test_a_grants_database_that_cannot_be_opened_is_503_then_recovers(setup) -> None:
    """The status table's "a shared store cannot be reached": a real SQLite database whose file
    cannot be opened (a directory stands where it was, and the pool holds no open connection)
    is 503 with Retry-After and the library's JSON body, for minting (which reads approvals)
    and approving (which writes one); once the file is back, both work again."""
    app, es, clock, grants = setup
    user = app.test_client()
    user.post("/login/user-1")
    path = Path(grants.engine.url.database)
    path.unlink()
    path.mkdir()
    grants.engine.dispose()  # as after a restart: every connection is opened anew
    for response in (
        mint(app.test_client(), user_token(es, clock)),
        user.post("/orgs/acme/agent-approvals", json={"sessionId": "s-1", "scopes": ["project:write"]}),
    ):
        assert response.status_code == 503, response.get_data(as_text=True)
        assert int(response.headers["Retry-After"]) >= 1
        assert "WWW-Authenticate" not in response.headers
        assert response.json == {
            "error": "temporarily_unavailable",
            "error_description": "the grants store cannot be reached right now; retry later",
        }
    path.rmdir()
    grants.create_schema()
    approved = user.post("/orgs/acme/agent-approvals", json={"sessionId": "s-1", "scopes": ["project:write"]})
    assert approved.status_code == 201
    assert mint(app.test_client(), user_token(es, clock)).json["scopes"] == ["project:read", "project:write"]
