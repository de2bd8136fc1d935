"""The Flask extension on a real Flask app with real tokens: the status and header contract."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Blueprint, Flask
from flask.views import MethodView
from werkzeug.exceptions import HTTPException

from policy import Roles, ScopeMap, parse_challenges
from resource_server import JWTVerifier
from resource_server.flask import ResourceServer, current_access, current_token
from tests.support import AUDIENCE, DROP, ISSUER, Signer, es256, jwks

ROLES = Roles({"member": ["project:read"], "admin": ["project:read", "project:write", "team:write"]})
MEMBERS = {("user-1", "acme"): "admin", ("user-1", "globex"): "member", ("user-2", "acme"): "member"}
PROJECTS = {"GET": "project:read", "POST": "project:write"}


@pytest.fixture(scope="module")
def es() -> Signer:
    return es256()


def make_app(es: Signer, **config: Any) -> tuple[Flask, ResourceServer]:
    app = Flask(__name__)
    app.config.update(config)
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es))
    rs = ResourceServer(app, verifier=verifier, roles=ROLES, membership=lambda s, o: MEMBERS.get((s, o)))

    @app.route("/orgs/<org>/projects", methods=["GET", "POST", "DELETE"])
    @rs.require(PROJECTS)
    def projects(org: str) -> dict[str, Any]:
        return {"org": org, "subject": current_access.subject, "scopes": sorted(current_access.scopes)}

    @app.get("/me")
    @rs.require(ScopeMap({"GET": "project:read"}), org=None)
    def me() -> dict[str, Any]:
        return {"org": current_access.org, "client": current_token.client_id}

    @app.get("/broken/<name>")
    @rs.require(PROJECTS)  # declares org="org", but the route has no <org>
    def broken(name: str) -> str:
        return "should never run"

    @app.get("/open")
    def open_view() -> str:
        return str(current_access.subject)

    return app, rs


@pytest.fixture
def client(es: Signer):
    app, _ = make_app(
        es, RESOURCE_SERVER_RESOURCE="https://api.test", RESOURCE_SERVER_AUTHORIZATION_SERVERS=[ISSUER]
    )
    return app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def challenge_of(response) -> dict[str, str]:
    (challenge,) = parse_challenges(response.headers["WWW-Authenticate"])
    assert challenge.is_scheme("Bearer")
    return dict(challenge.params)


def body_of(response) -> dict[str, str]:
    body = json.loads(response.get_data(as_text=True))
    assert set(body) == {"error", "error_description"}
    return body


def test_allowed_request_sees_access_and_token(client, es: Signer) -> None:
    response = client.get("/orgs/acme/projects", headers=bearer(es.token(scope="project:read project:write")))
    assert response.status_code == 200
    assert response.json == {"org": "acme", "subject": "user-1", "scopes": ["project:read", "project:write"]}


def test_no_credentials_is_401_with_a_plain_challenge(client) -> None:
    response = client.get("/orgs/acme/projects")
    assert response.status_code == 401
    assert challenge_of(response) == {
        "realm": "api",
        "resource_metadata": "https://api.test/.well-known/oauth-protected-resource",
    }
    assert body_of(response)["error"] == "unauthorized"


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Digest username=x", "Bearerabc"])
def test_another_scheme_is_401_without_error(client, value: str) -> None:
    response = client.get("/orgs/acme/projects", headers={"Authorization": value})
    assert response.status_code == 401
    assert "error" not in challenge_of(response)


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": 1, "iat": DROP},
        {"iss": "https://evil.test"},
        {"aud": "https://other.test"},
        {"org_id": "globex"},
    ],
    ids=["expired", "wrong iss", "wrong aud", "other org"],
)
def test_bad_tokens_are_401_invalid_token(client, es: Signer, claims: dict[str, Any]) -> None:
    token = es.token(**claims)
    response = client.get("/orgs/acme/projects", headers=bearer(token))
    assert response.status_code == 401
    params = challenge_of(response)
    assert params["error"] == "invalid_token" and params["error_description"]
    assert body_of(response)["error"] == "invalid_token"
    assert token not in response.get_data(as_text=True) and token not in str(response.headers)


def test_wrong_typ_is_401(client, es: Signer) -> None:
    response = client.get("/orgs/acme/projects", headers=bearer(es.token(headers={"typ": "JWT"})))
    assert (response.status_code, challenge_of(response)["error"]) == (401, "invalid_token")


@pytest.mark.parametrize(
    ("headers", "url", "data"),
    [
        ({"Authorization": "Bearer"}, "/orgs/acme/projects", None),
        ({"Authorization": "Bearer a b"}, "/orgs/acme/projects", None),
        ({"Authorization": 'Bearer "quoted"'}, "/orgs/acme/projects", None),
        ({"Authorization": "Bearer abc@def"}, "/orgs/acme/projects", None),
        ({"Authorization": "Bearer abc,Bearer def"}, "/orgs/acme/projects", None),
        ({"Authorization": "Bearer\tabc"}, "/orgs/acme/projects", None),
        ({"Authorization": "Bearer abc"}, "/orgs/acme/projects?access_token=abc", None),
        ({"Authorization": "Bearer abc"}, "/orgs/acme/projects?access%5Ftoken=abc", None),
        ({}, "/orgs/acme/projects?access_token=abc", None),
        ({"Authorization": "Bearer abc"}, "/orgs/acme/projects", {"access_token": "abc"}),
    ],
    ids=[
        "no token",
        "space in token",
        "quotes",
        "outside b64token",
        "two headers folded",
        "tab",
        "header and query",
        "header and encoded query",
        "query alone",
        "header and form",
    ],
)
def test_malformed_credentials_are_400(client, headers: dict[str, str], url: str, data: Any) -> None:
    response = client.post(url, headers=headers, data=data) if data else client.get(url, headers=headers)
    assert response.status_code == 400
    assert challenge_of(response)["error"] == "invalid_request"
    assert body_of(response)["error"] == "invalid_request"


def test_under_scoped_is_403_with_the_step_up_challenge(client, es: Signer) -> None:
    response = client.post("/orgs/acme/projects", headers=bearer(es.token(scope="project:read")))
    assert response.status_code == 403
    params = challenge_of(response)
    assert (params["error"], params["scope"]) == ("insufficient_scope", "project:write")
    assert params["resource_metadata"] == "https://api.test/.well-known/oauth-protected-resource"


def test_not_a_member_is_403_without_challenge(client, es: Signer) -> None:
    response = client.get("/orgs/initech/projects", headers=bearer(es.token(org_id=DROP)))
    assert response.status_code == 403
    assert "WWW-Authenticate" not in response.headers
    assert body_of(response)["error"] == "forbidden"


def test_role_lacking_the_scope_is_403_without_challenge(client, es: Signer) -> None:
    token = es.token(sub="user-2", scope="project:read project:write")  # user-2 is a member: read only
    response = client.post("/orgs/acme/projects", headers=bearer(token))
    assert response.status_code == 403
    assert "WWW-Authenticate" not in response.headers


def test_unmapped_method_is_403_and_head_follows_get(client, es: Signer) -> None:
    token = es.token(scope="project:read")
    assert client.delete("/orgs/acme/projects", headers=bearer(token)).status_code == 403
    assert client.head("/orgs/acme/projects", headers=bearer(token)).status_code == 200


def test_automatic_options_passes_through(client) -> None:
    response = client.options("/orgs/acme/projects")
    assert response.status_code == 200
    assert "POST" in response.headers["Allow"]


def test_route_without_the_org_variable_fails_closed(client, es: Signer) -> None:
    response = client.get("/broken/x", headers=bearer(es.token()))
    assert response.status_code == 403
    assert "should never run" not in response.get_data(as_text=True)


def test_org_none_routes_ask_about_the_tokens_org(client, es: Signer) -> None:
    assert client.get("/me", headers=bearer(es.token(org_id="acme"))).json == {
        "org": "acme",
        "client": "client-1",
    }
    assert client.get("/me", headers=bearer(es.token(org_id="initech"))).status_code == 403


def test_current_access_outside_a_protected_view_is_an_error(es: Signer) -> None:
    app, _ = make_app(es)
    app.testing = True
    with pytest.raises(RuntimeError, match="protected"):
        app.test_client().get("/open")


def test_verification_errors_never_become_500(es: Signer) -> None:
    app = Flask(__name__)
    closed = "http://127.0.0.1:9/jwks.json"  # discard port: nothing listens
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=closed)
    rs = ResourceServer(app, verifier=verifier, roles=ROLES, membership=lambda s, o: "admin")
    app.add_url_rule("/orgs/<org>/x", "x", rs.require(PROJECTS)(lambda org: "ok"))
    response = app.test_client().get("/orgs/acme/x", headers=bearer(es.token()))
    assert response.status_code == 401


def test_a_catch_all_error_handler_cannot_drop_the_challenge(es: Signer) -> None:
    app, _ = make_app(es)

    @app.errorhandler(HTTPException)
    def everything(exc: HTTPException):
        return {"swallowed": True}, exc.code

    response = app.test_client().post("/orgs/acme/projects", headers=bearer(es.token()))
    assert response.status_code == 403
    assert challenge_of(response)["error"] == "insufficient_scope"


def test_method_view_with_a_scope_map_attribute(es: Signer) -> None:
    app, rs = make_app(es)

    @rs.require()
    class Team(MethodView):
        scope_map = ScopeMap({"GET": "project:read", "PUT": "team:write"})

        def get(self, org: str) -> dict[str, str]:
            return {"read": org}

        def put(self, org: str) -> dict[str, str]:
            return {"written": org}

    app.add_url_rule("/orgs/<org>/team", view_func=Team.as_view("team"))
    client = app.test_client()
    assert client.get("/orgs/acme/team", headers=bearer(es.token())).json == {"read": "acme"}
    refused = client.put("/orgs/acme/team", headers=bearer(es.token()))
    assert challenge_of(refused)["scope"] == "team:write"
    assert client.put("/orgs/acme/team", headers=bearer(es.token(scope="team:write"))).status_code == 200
    assert client.get("/orgs/acme/team").status_code == 401


def test_method_view_with_an_uncovered_method_fails_at_decoration(es: Signer) -> None:
    _, rs = make_app(es)
    with pytest.raises(ValueError, match="DELETE"):

        @rs.require({"GET": "project:read"})
        class Team(MethodView):
            def get(self) -> str:
                return "x"

            def delete(self) -> str:
                return "x"


def test_protect_blueprint(es: Signer) -> None:
    app = Flask(__name__)
    rs = ResourceServer(
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es)),
        roles=ROLES,
        membership=lambda s, o: MEMBERS.get((s, o)),
    )
    bp = Blueprint("api", __name__, url_prefix="/orgs/<org>")
    rs.protect_blueprint(bp, {"GET": "project:read", "POST": "project:write"})
    bp.add_url_rule("/a", "a", lambda org: {"a": org}, methods=["GET", "POST"])
    bp.add_url_rule("/b", "b", rs.require({"GET": "team:write"})(lambda org: {"b": org}))
    app.register_blueprint(bp)
    app.add_url_rule("/outside", "outside", lambda: "free")
    rs.init_app(app)  # the app-factory order: views first, init_app later
    client = app.test_client()
    assert client.get("/orgs/acme/a", headers=bearer(es.token())).json == {"a": "acme"}
    assert client.post("/orgs/acme/a", headers=bearer(es.token())).status_code == 403
    assert client.get("/orgs/acme/a").status_code == 401
    assert challenge_of(client.get("/orgs/acme/b", headers=bearer(es.token())))["scope"] == "team:write"
    assert client.get("/outside").get_data(as_text=True) == "free"
    assert rs.scopes_supported == ["project:read", "project:write", "team:write"]


def test_two_apps_one_extension(es: Signer) -> None:
    rs = ResourceServer(
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es)),
        roles=ROLES,
        membership=lambda s, o: MEMBERS.get((s, o)),
    )
    apps = []
    for realm in ("first", "second"):
        app = Flask(realm)
        app.config["RESOURCE_SERVER_REALM"] = realm
        rs.init_app(app)
        app.add_url_rule("/orgs/<org>/p", "p", rs.require(PROJECTS)(lambda org: "ok"))
        apps.append(app)
    assert [challenge_of(a.test_client().get("/orgs/acme/p"))["realm"] for a in apps] == ["first", "second"]


@pytest.mark.parametrize(
    ("resource", "path"),
    [
        ("https://api.test", "/.well-known/oauth-protected-resource"),
        ("https://api.test/v1", "/.well-known/oauth-protected-resource/v1"),
    ],
)
def test_rfc9728_metadata(es: Signer, resource: str, path: str) -> None:
    app, _ = make_app(es, RESOURCE_SERVER_RESOURCE=resource, RESOURCE_SERVER_AUTHORIZATION_SERVERS=[ISSUER])
    client = app.test_client()
    document = client.get(path).json
    assert document == {
        "resource": resource,
        "authorization_servers": [ISSUER],
        "scopes_supported": ["project:read", "project:write"],
        "bearer_methods_supported": ["header"],
    }
    assert challenge_of(client.get("/orgs/acme/projects"))["resource_metadata"] == f"https://api.test{path}"


def test_no_metadata_endpoint_without_a_resource(es: Signer) -> None:
    app, _ = make_app(es)
    client = app.test_client()
    assert client.get("/.well-known/oauth-protected-resource").status_code == 404
    assert challenge_of(client.get("/orgs/acme/projects")) == {"realm": "api"}


class ExplodingVerifier(JWTVerifier):
    """A verifier subclass with a bug in it: the guard must still answer 401, not 500."""

    def verify(self, token: str):
        raise ZeroDivisionError("a bug inside verification")


def test_an_unexpected_error_inside_verification_is_401(es: Signer) -> None:
    app = Flask(__name__)
    verifier = ExplodingVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es))
    rs = ResourceServer(app, verifier=verifier, roles=ROLES, membership=lambda s, o: "admin")
    app.add_url_rule("/orgs/<org>/x", "x", rs.require(PROJECTS)(lambda org: "ok"))
    response = app.test_client().get("/orgs/acme/x", headers=bearer(es.token()))
    assert response.status_code == 401
    assert "ZeroDivision" not in response.get_data(as_text=True)
    assert challenge_of(response)["error"] == "invalid_token"
