"""The Flask extension against real apps, real keys and real signed tokens.

Every refusal is checked against the status and header table in DESIGN.md: the status, the
``WWW-Authenticate`` value parsed back with ``policy.parse_challenges``, and the JSON body.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import pytest
from flask import Blueprint, Flask, jsonify, request
from flask.views import MethodView
from werkzeug.exceptions import HTTPException

from policy import Challenge, Roles, ScopeMap, parse_challenges
from resource_server import JWTVerifier
from resource_server.flask import ResourceServer, current_access, current_token
from tests.support import AUDIENCE, DROP, ISSUER, NOW, FakeClock, JWKSServer, es256, jwks, serve_wsgi

SIGNER = es256("es-1")
# Same kid, different key: its tokens carry a signature our key set cannot verify.
IMPOSTOR = es256("es-1")

ROLES = Roles(
    {
        "member": ["project:read"],
        "admin": ["project:read", "project:write", "team:write"],
        "viewer": [],
    }
)
MEMBERS = {
    ("user-1", "acme"): "admin",
    ("user-2", "acme"): "member",
    ("user-1", "globex"): "member",
    # A role the Roles object does not know: treated as a role with no scopes.
    ("user-4", "acme"): "owner",
}
PROJECTS = ScopeMap({"GET": "project:read", "POST": "project:write"})
ALL_SCOPES = "project:read project:write team:write"
HOSTILE = "hostileMARKER0123456789-hostileMARKER"


def membership(subject: str, org: str | None) -> str | None:
    return MEMBERS.get((subject, org))


def verifier(**options: Any) -> JWTVerifier:
    """At the tests' fixed instant (``token()`` mints there too) unless a ``clock`` is given."""
    return JWTVerifier(
        issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), **{"clock": FakeClock(), **options}
    )


VERIFIER = verifier()


def token(signer: Any = SIGNER, **overrides: Any) -> str:
    return signer.token(**overrides)


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


class Items(MethodView):
    scope_map: ClassVar[dict[str, str]] = {"GET": "project:read", "POST": "project:write"}

    def get(self, org: str) -> Any:
        return jsonify(view="items", org=org, scopes=sorted(current_access.scopes))

    def post(self, org: str) -> Any:
        return jsonify(view="items", created=True, subject=current_access.subject)


def build_app(
    token_verifier: JWTVerifier | None = None,
    *,
    config: dict[str, Any] | None = None,
    catch_all: bool = False,
    **options: Any,
) -> tuple[Flask, ResourceServer]:
    """One app with every way of protecting a view, all on one ResourceServer."""
    app = Flask(__name__)
    app.config.update(config or {})
    rs = ResourceServer(
        app, verifier=token_verifier or VERIFIER, roles=ROLES, membership=membership, **options
    )

    @app.route("/orgs/<org>/projects", methods=["GET", "POST", "DELETE"])
    @rs.require(PROJECTS)
    def projects(org: str) -> Any:
        return jsonify(
            org=org,
            subject=current_access.subject,
            access_org=current_access.org,
            scopes=sorted(current_access.scopes),
            token_subject=current_token.subject,
            token_scopes=sorted(current_token.scopes),
            client_id=current_token.client_id,
            form=request.form.to_dict(),
        )

    @app.route("/orgs/<org>/teams", methods=["PUT"])
    @rs.require({"PUT": [["project:write", "team:write"]]})
    def teams(org: str) -> Any:
        return jsonify(view="teams")

    @app.route("/me")
    @rs.require({"GET": "project:read"}, org=None)
    def me() -> Any:
        return jsonify(subject=current_access.subject, org=current_access.org)

    @app.route("/broken")
    @rs.require({"GET": "project:read"})  # org="org", yet the URL has no <org>
    def broken() -> Any:
        return jsonify(view="broken")

    @app.route("/public")
    def public() -> Any:
        try:
            current_access.subject  # noqa: B018
        except RuntimeError as exc:
            return jsonify(public=True, outside=str(exc))
        return jsonify(public=True, outside=None)

    app.add_url_rule("/orgs/<org>/items", view_func=rs.require()(_items_class()).as_view("items"))

    reports = Blueprint("reports", __name__, url_prefix="/orgs/<org>/reports")

    @reports.route("/", methods=["GET", "POST"])
    def report_list(org: str) -> Any:
        return jsonify(view="reports", org=org, scopes=sorted(current_access.scopes))

    @reports.route("/admin")
    @rs.require({"GET": "team:write"})
    def report_admin(org: str) -> Any:
        return jsonify(view="report-admin", scopes=sorted(current_access.scopes))

    rs.protect_blueprint(reports, {"GET": "project:read", "POST": "project:write"})
    app.register_blueprint(reports)

    if catch_all:

        @app.errorhandler(HTTPException)
        def swallow(exc: HTTPException) -> Any:
            return jsonify(error="swallowed"), exc.code

    return app, rs


def _items_class() -> type[MethodView]:
    # A fresh subclass per app: require() records its decorator on the class it is given.
    return type("Items", (Items,), {})


@pytest.fixture(scope="module")
def app() -> Flask:
    return build_app()[0]


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


# -- assertion helpers ------------------------------------------------------------------------------


def challenge_of(response: Any) -> Challenge:
    values = response.headers.getlist("WWW-Authenticate")
    assert len(values) == 1, values
    challenges = parse_challenges(values[0])
    assert len(challenges) == 1, challenges
    assert challenges[0].is_scheme("Bearer")
    return challenges[0]


def error_body(response: Any, error: str) -> dict[str, str]:
    assert response.mimetype == "application/json"
    body = json.loads(response.get_data(as_text=True))
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == error
    assert isinstance(body["error_description"], str) and body["error_description"]
    assert "Traceback" not in body["error_description"]
    return body


def assert_no_credentials(response: Any, realm: str = "api", metadata: str | None = None) -> None:
    assert response.status_code == 401
    challenge = challenge_of(response)
    assert challenge.get("realm") == realm
    assert challenge.get("error") is None
    assert challenge.get("resource_metadata") == metadata
    error_body(response, "unauthorized")


def assert_invalid_token(response: Any, realm: str = "api") -> Challenge:
    assert response.status_code == 401, response.get_data(as_text=True)
    challenge = challenge_of(response)
    assert challenge.get("realm") == realm
    assert challenge.get("error") == "invalid_token"
    body = error_body(response, "invalid_token")
    assert challenge.get("error_description") == body["error_description"]
    return challenge


def assert_invalid_request(response: Any) -> None:
    assert response.status_code == 400, response.get_data(as_text=True)
    challenge = challenge_of(response)
    assert challenge.get("realm") == "api"
    assert challenge.get("error") == "invalid_request"
    body = error_body(response, "invalid_request")
    assert challenge.get("error_description") == body["error_description"]


def assert_forbidden(response: Any) -> None:
    assert response.status_code == 403, response.get_data(as_text=True)
    assert "WWW-Authenticate" not in response.headers
    error_body(response, "forbidden")


def assert_insufficient_scope(response: Any, scope: str) -> Challenge:
    assert response.status_code == 403, response.get_data(as_text=True)
    challenge = challenge_of(response)
    assert challenge.get("realm") == "api"
    assert challenge.get("error") == "insufficient_scope"
    assert challenge.get("scope") == scope
    error_body(response, "insufficient_scope")
    return challenge


# -- allowed requests -------------------------------------------------------------------------------


def test_a_member_reads_with_a_read_token(client: Any) -> None:
    response = client.get("/orgs/acme/projects", headers=bearer(token(scope="project:read")))
    assert response.status_code == 200
    assert response.get_json() == {
        "org": "acme",
        "subject": "user-1",
        "access_org": "acme",
        "scopes": ["project:read"],
        "token_subject": "user-1",
        "token_scopes": ["project:read"],
        "client_id": "client-1",
        "form": {},
    }


def test_effective_scopes_are_role_and_token_intersected(client: Any) -> None:
    # A member's token may list write scopes; the role still caps what the request can exercise.
    response = client.get("/orgs/acme/projects", headers=bearer(token(sub="user-2", scope=ALL_SCOPES)))
    assert response.status_code == 200
    assert response.get_json()["scopes"] == ["project:read"]


def test_an_admin_writes_with_a_write_token(client: Any) -> None:
    response = client.post(
        "/orgs/acme/projects", headers=bearer(token(scope="project:write")), data={"name": "apollo"}
    )
    assert response.status_code == 200
    assert response.get_json()["form"] == {"name": "apollo"}


def test_an_unbound_token_works_on_any_org_the_subject_belongs_to(client: Any) -> None:
    response = client.get("/orgs/globex/projects", headers=bearer(token(org_id=DROP)))
    assert response.status_code == 200
    assert response.get_json()["access_org"] == "globex"


def test_a_token_bound_to_the_url_org_is_accepted(client: Any) -> None:
    response = client.get("/orgs/globex/projects", headers=bearer(token(org_id="globex")))
    assert response.status_code == 200


def test_scheme_name_is_case_insensitive(client: Any) -> None:
    response = client.get("/orgs/acme/projects", headers={"Authorization": f"bEaReR {token()}"})
    assert response.status_code == 200


def test_head_falls_back_to_get(client: Any) -> None:
    allowed = client.head("/orgs/acme/projects", headers=bearer(token()))
    assert allowed.status_code == 200
    assert allowed.get_data() == b""
    refused = client.head("/orgs/acme/projects")
    assert refused.status_code == 401
    assert challenge_of(refused).get("error") is None
    assert refused.get_data() == b""


def test_all_of_alternative_needs_every_scope(client: Any) -> None:
    response = client.put("/orgs/acme/teams", headers=bearer(token(scope="project:write team:write")))
    assert response.status_code == 200
    partial = client.put("/orgs/acme/teams", headers=bearer(token(scope="project:write")))
    # The challenge names the whole alternative, sorted.
    assert_insufficient_scope(partial, "project:write team:write")


# -- routes without an org --------------------------------------------------------------------------


def test_org_less_route_asks_membership_about_the_token_org(client: Any) -> None:
    response = client.get("/me", headers=bearer(token(org_id="globex")))
    assert response.status_code == 200
    assert response.get_json() == {"subject": "user-1", "org": "globex"}


def test_org_less_route_with_an_unbound_token_asks_about_no_org(app: Flask) -> None:
    asked: list[tuple[str, str | None]] = []

    def recording(subject: str, org: str | None) -> str | None:
        asked.append((subject, org))
        return "member" if org is None else None

    probe = Flask(__name__)
    rs = ResourceServer(probe, verifier=VERIFIER, roles=ROLES, membership=recording)

    @probe.route("/me")
    @rs.require({"GET": "project:read"}, org=None)
    def me() -> Any:
        return jsonify(org=current_access.org)

    response = probe.test_client().get("/me", headers=bearer(token(org_id=DROP)))
    assert response.status_code == 200
    assert response.get_json() == {"org": None}
    assert asked == [("user-1", None)]


def test_org_less_route_with_no_membership_is_forbidden(client: Any) -> None:
    assert_forbidden(client.get("/me", headers=bearer(token(org_id=DROP))))


# -- 401 without an error code ----------------------------------------------------------------------


def test_no_credentials(client: Any) -> None:
    assert_no_credentials(client.get("/orgs/acme/projects"))


def test_empty_authorization_header_counts_as_no_credentials(client: Any) -> None:
    assert_no_credentials(client.get("/orgs/acme/projects", headers={"Authorization": ""}))


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", 'Digest username="a", realm="b"', "Token abc"])
def test_another_scheme_gets_a_plain_challenge(client: Any, value: str) -> None:
    assert_no_credentials(client.get("/orgs/acme/projects", headers={"Authorization": value}))


# -- 401 invalid_token ------------------------------------------------------------------------------

BAD_TOKENS = {
    "expired": lambda: token(now=NOW - 3600),
    "not yet valid": lambda: token(nbf=NOW + 3600),
    "wrong issuer": lambda: token(iss="https://evil.test"),
    "wrong audience": lambda: token(aud="https://other.test"),
    "no audience": lambda: token(aud=DROP),
    "typ JWT": lambda: token(headers={"typ": "JWT"}),
    "no typ": lambda: token(headers={"typ": DROP}),
    "unknown kid": lambda: token(headers={"kid": "nobody"}),
    "bad signature": lambda: token(IMPOSTOR),
    "no subject": lambda: token(sub=DROP),
    "not a JWT": lambda: "abc.def.ghi",
    "one segment": lambda: "opaque-token-value",
    "too large": lambda: "a" * 9000,
}


@pytest.mark.parametrize("case", BAD_TOKENS)
def test_bad_tokens_are_invalid_token(client: Any, case: str) -> None:
    raw = BAD_TOKENS[case]()
    response = client.get("/orgs/acme/projects", headers=bearer(raw))
    assert_invalid_token(response)
    assert raw not in response.get_data(as_text=True)


def test_a_token_bound_to_another_org_is_invalid_token(client: Any) -> None:
    # user-1 is an admin of acme too, so only the org binding refuses this.
    response = client.get("/orgs/acme/projects", headers=bearer(token(org_id="globex")))
    challenge = assert_invalid_token(response)
    assert "organization" in (challenge.get("error_description") or "")


def test_org_mismatch_beats_missing_membership(client: Any) -> None:
    response = client.get("/orgs/initech/projects", headers=bearer(token(org_id="acme")))
    assert_invalid_token(response)


def assert_unavailable(response: Any) -> None:
    """503 with Retry-After and no challenge: the token may be good, so nothing tells the client
    to throw it away (RFC 6750 §3.1 ``invalid_token`` would)."""
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.get_json()["error"] == "temporarily_unavailable"
    assert int(response.headers["Retry-After"]) >= 1
    assert "WWW-Authenticate" not in response.headers


def test_a_jwks_uri_on_a_closed_port_is_503_not_500() -> None:
    # The port stays bound (and never listens) while the request is made, so connecting is
    # refused for sure: no other process can take the port in between.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        unreachable = JWTVerifier(
            issuer=ISSUER, audience=AUDIENCE, jwks_uri=f"http://127.0.0.1:{port}/jwks", clock=FakeClock()
        )
        app, _ = build_app(unreachable)
        response = app.test_client().get("/orgs/acme/projects", headers=bearer(token()))
    assert_unavailable(response)


def test_a_failing_jwks_server_is_503_until_keys_are_fetched() -> None:
    server = JWKSServer(jwks(SIGNER))
    server.status = 500
    with server.running():
        remote = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=server.url, clock=FakeClock())
        app, _ = build_app(remote)
        response = app.test_client().get("/orgs/acme/projects", headers=bearer(token()))
    assert_unavailable(response)
    assert server.requests >= 1


def test_an_exception_inside_verification_is_401_not_500() -> None:
    def broken_clock() -> float:
        raise OSError("the clock is unavailable")

    app, _ = build_app(verifier(clock=broken_clock))
    app.testing = True  # exceptions would propagate out of the test client instead of becoming 500
    response = app.test_client().get("/orgs/acme/projects", headers=bearer(token()))
    challenge = assert_invalid_token(response)
    assert "clock" not in (challenge.get("error_description") or "")


def test_membership_errors_propagate() -> None:
    def failing(subject: str, org: str | None) -> str | None:
        raise LookupError("membership store is down")

    app = Flask(__name__)
    app.testing = True
    rs = ResourceServer(app, verifier=VERIFIER, roles=ROLES, membership=failing)

    @app.route("/orgs/<org>/projects")
    @rs.require(PROJECTS)
    def projects(org: str) -> Any:
        return "unreachable"

    with pytest.raises(LookupError):
        app.test_client().get("/orgs/acme/projects", headers=bearer(token()))


# -- 400 invalid_request ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "Bearer",
        "Bearer ",
        "bearer",
        "Bearer a b",
        "Bearer  a b",
        "Bearer a@b",
        "Bearer a,b",
        "Bearer <script>",
        "Bearer abc=def",
        'Bearer realm="x"',
        "Bearer\ttoken",
        "Bearer a, Bearer b",
        "Bearer é",
    ],
)
def test_malformed_bearer_credentials(client: Any, value: str) -> None:
    response = client.get("/orgs/acme/projects", headers={"Authorization": value})
    assert_invalid_request(response)


def test_a_valid_token_with_trailing_garbage_is_malformed(client: Any) -> None:
    response = client.get("/orgs/acme/projects", headers={"Authorization": f"Bearer {token()} extra"})
    assert_invalid_request(response)


def test_token_in_header_and_query(client: Any) -> None:
    raw = token()
    response = client.get(f"/orgs/acme/projects?access_token={raw}", headers=bearer(raw))
    assert_invalid_request(response)


def test_empty_access_token_query_parameter_with_header(client: Any) -> None:
    response = client.get("/orgs/acme/projects?access_token=", headers=bearer(token()))
    assert_invalid_request(response)


def test_a_lone_query_token_is_refused(client: Any) -> None:
    response = client.get(f"/orgs/acme/projects?access_token={token()}")
    assert_invalid_request(response)


def test_token_in_header_and_form_body(client: Any) -> None:
    raw = token(scope="project:write")
    response = client.post("/orgs/acme/projects", headers=bearer(raw), data={"access_token": raw})
    assert_invalid_request(response)


def test_a_lone_form_token_is_refused(client: Any) -> None:
    response = client.post(
        "/orgs/acme/projects", data={"access_token": token(scope="project:write"), "name": "x"}
    )
    assert_invalid_request(response)


def test_form_with_charset_parameter_is_still_inspected(client: Any) -> None:
    raw = token(scope="project:write")
    response = client.post(
        "/orgs/acme/projects",
        headers={**bearer(raw), "Content-Type": "application/x-www-form-urlencoded; charset=UTF-8"},
        data=f"access_token={raw}",
    )
    assert_invalid_request(response)


def _raw_body_app() -> Flask:
    app = Flask(__name__)
    rs = ResourceServer(app, verifier=VERIFIER, roles=ROLES, membership=membership)

    @app.route("/orgs/<org>/hooks", methods=["POST"])
    @rs.require({"POST": "project:write"})
    def hook(org: str) -> Any:
        # e.g. a webhook view that checks an HMAC over the exact bytes it received
        return jsonify(raw=request.get_data(as_text=True), form=request.form.to_dict())

    @app.route("/open/hooks", methods=["POST"])
    def open_hook() -> Any:
        return jsonify(raw=request.get_data(as_text=True), form=request.form.to_dict())

    return app


def test_a_protected_view_still_sees_the_raw_urlencoded_body() -> None:
    # Looking for a second token must not consume the body the view is about to read.
    client = _raw_body_app().test_client()
    body = "name=apollo&note=caf%C3%A9"
    baseline = client.post("/open/hooks", data=body, content_type="application/x-www-form-urlencoded")
    assert baseline.get_json() == {"raw": body, "form": {"name": "apollo", "note": "café"}}
    response = client.post(
        "/orgs/acme/hooks",
        headers=bearer(token(scope="project:write")),
        data=body,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert response.get_json() == baseline.get_json()


def test_access_token_in_a_json_body_is_just_data(client: Any) -> None:
    # Only urlencoded bodies are an RFC 6750 token method; JSON content is the API's business.
    response = client.post(
        "/orgs/acme/projects",
        headers=bearer(token(scope="project:write")),
        json={"access_token": "whatever"},
    )
    assert response.status_code == 200


def _raw_request(base: str, method: str, path: str, headers: list[tuple[str, str]]) -> tuple[int, Any, bytes]:
    """Send a request with exactly the header lines given, repeated names included."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.putrequest(method, path)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


TWO_HEADERS = {
    "the same token twice": lambda t: [f"Bearer {t}", f"Bearer {t}"],
    "two different tokens": lambda t: [f"Bearer {t}", f"Bearer {token(scope='project:write')}"],
    "bearer then basic": lambda t: [f"Bearer {t}", "Basic dXNlcjpwYXNz"],
    "basic then bearer": lambda t: ["Basic dXNlcjpwYXNz", f"Bearer {t}"],
    "empty then bearer": lambda t: ["", f"Bearer {t}"],
}


@pytest.mark.parametrize("case", TWO_HEADERS)
def test_two_authorization_headers_over_real_http(app: Flask, case: str) -> None:
    # Real servers fold repeated header lines into one value; the test client cannot show that.
    first = token(scope="project:read")
    lines = [("Authorization", value) for value in TWO_HEADERS[case](first)]
    with serve_wsgi(app) as base:
        status, headers, body = _raw_request(base, "GET", "/orgs/acme/projects", lines)
        # The control: the bearer line alone, on the same server, is accepted.
        ok_status, _, _ = _raw_request(
            base, "GET", "/orgs/acme/projects", [("Authorization", f"Bearer {first}")]
        )
    assert ok_status == 200
    assert status == 400, body
    (challenge,) = parse_challenges(headers.get_all("WWW-Authenticate"))
    assert challenge.get("error") == "invalid_request"
    assert json.loads(body)["error"] == "invalid_request"
    assert first.encode() not in body


@pytest.mark.parametrize(
    "padding",
    [("", " "), ("", "\t"), ("  ", ""), (" ", " ")],
    ids=["trailing-space", "trailing-tab", "leading-spaces", "both"],
)
def test_optional_whitespace_around_the_field_value_over_real_http(
    app: Flask, padding: tuple[str, str]
) -> None:
    # RFC 9110 §5.5: OWS around a field value is not part of it; werkzeug's server passes
    # trailing OWS through, so the credentials parser sees it.
    before, after = padding
    line = ("Authorization", f"{before}Bearer {token()}{after}")
    with serve_wsgi(app) as base:
        status, _, body = _raw_request(base, "GET", "/orgs/acme/projects", [line])
    assert status == 200, body


# -- 403 --------------------------------------------------------------------------------------------


def test_under_scoped_token_gets_insufficient_scope(client: Any) -> None:
    response = client.post("/orgs/acme/projects", headers=bearer(token(scope="project:read")))
    assert_insufficient_scope(response, "project:write")


def test_not_a_member_is_forbidden_without_challenge(client: Any) -> None:
    assert_forbidden(client.get("/orgs/acme/projects", headers=bearer(token(sub="user-3"))))
    assert_forbidden(client.get("/orgs/initech/projects", headers=bearer(token(org_id=DROP))))


def test_role_lacking_the_scope_is_forbidden_without_challenge(client: Any) -> None:
    # A new token cannot help: the member role never grants project:write.
    response = client.post("/orgs/acme/projects", headers=bearer(token(sub="user-2", scope="project:write")))
    assert_forbidden(response)


def test_an_unknown_role_has_no_scopes(client: Any) -> None:
    assert_forbidden(client.get("/orgs/acme/projects", headers=bearer(token(sub="user-4"))))


def test_a_method_the_scope_map_does_not_cover_is_forbidden(client: Any) -> None:
    response = client.delete("/orgs/acme/projects", headers=bearer(token(scope=ALL_SCOPES)))
    assert_forbidden(response)


def test_denial_bodies_never_hold_the_token(client: Any) -> None:
    raw = token(sub="user-3")
    for response in (
        client.get("/orgs/acme/projects", headers=bearer(raw)),
        client.post("/orgs/acme/projects", headers=bearer(token(scope="project:read"))),
    ):
        assert response.status_code == 403
        assert raw not in response.get_data(as_text=True)


# -- things that are not checked --------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/orgs/acme/projects", "/orgs/acme/items", "/orgs/acme/reports/", "/me"])
def test_automatic_options_passes_through(client: Any, path: str) -> None:
    response = client.options(path)
    assert response.status_code == 200
    assert "WWW-Authenticate" not in response.headers
    allowed = {m.strip() for m in response.headers["Allow"].split(",")}
    assert {"GET", "OPTIONS"} <= allowed


def test_options_with_a_bad_token_still_passes(client: Any) -> None:
    response = client.options("/orgs/acme/projects", headers={"Authorization": "Bearer"})
    assert response.status_code == 200
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"GET", "POST", "DELETE"}


def test_options_in_the_scope_map_is_enforced() -> None:
    app = Flask(__name__)
    rs = ResourceServer(app, verifier=VERIFIER, roles=ROLES, membership=membership)

    @app.route("/orgs/<org>/cors", methods=["GET", "OPTIONS"])
    @rs.require({"GET": "project:read", "OPTIONS": "project:read"})
    def cors(org: str) -> str:
        return "ok"

    client = app.test_client()
    assert_no_credentials(client.options("/orgs/acme/cors"))
    assert client.options("/orgs/acme/cors", headers=bearer(token())).status_code == 200


def test_an_unprotected_route_is_untouched(client: Any) -> None:
    response = client.get("/public")
    assert response.status_code == 200
    assert response.get_json()["public"] is True


# -- misconfiguration fails closed ------------------------------------------------------------------


def test_route_without_the_org_variable_fails_closed(client: Any) -> None:
    assert_forbidden(client.get("/broken", headers=bearer(token(scope=ALL_SCOPES))))
    assert_forbidden(client.get("/broken"))


def test_require_on_a_function_needs_a_scope_map() -> None:
    _, rs = build_app()
    with pytest.raises(TypeError):
        rs.require()(lambda: None)


@pytest.mark.parametrize(
    "scope_map",
    [{}, {"FETCH": "project:read"}, {"GET": "two scopes"}, {"GET": []}, {"GET": 'bad"scope'}],
)
def test_bad_scope_maps_fail_at_decoration(scope_map: dict[str, Any]) -> None:
    _, rs = build_app()
    with pytest.raises(ValueError):
        rs.require(scope_map)(lambda org: None)


def test_a_view_on_an_app_without_init_app_raises() -> None:
    rs = ResourceServer(verifier=VERIFIER, roles=ROLES, membership=membership)
    app = Flask(__name__)
    app.testing = True

    @app.route("/orgs/<org>/projects")
    @rs.require(PROJECTS)
    def projects(org: str) -> Any:
        return "unreachable"

    with pytest.raises(RuntimeError, match="init_app"):
        app.test_client().get("/orgs/acme/projects", headers=bearer(token()))


# -- current_access / current_token -----------------------------------------------------------------


def test_current_access_outside_a_protected_view_raises(client: Any, app: Flask) -> None:
    assert "ResourceServer" in client.get("/public").get_json()["outside"]
    with app.test_request_context("/public"), pytest.raises(RuntimeError):
        current_token.subject  # noqa: B018
    with pytest.raises(RuntimeError):
        current_access.subject  # noqa: B018
    with pytest.raises(RuntimeError):
        current_token.scopes  # noqa: B018


def test_access_does_not_leak_into_the_next_request(client: Any) -> None:
    assert client.get("/orgs/acme/projects", headers=bearer(token())).status_code == 200
    assert "ResourceServer" in client.get("/public").get_json()["outside"]


# -- MethodView -------------------------------------------------------------------------------------


def test_method_view_uses_its_scope_map_attribute(client: Any) -> None:
    read = client.get("/orgs/acme/items", headers=bearer(token()))
    assert read.status_code == 200
    assert read.get_json() == {"view": "items", "org": "acme", "scopes": ["project:read"]}
    assert client.head("/orgs/acme/items", headers=bearer(token())).status_code == 200
    assert_insufficient_scope(client.post("/orgs/acme/items", headers=bearer(token())), "project:write")
    assert client.post("/orgs/acme/items", headers=bearer(token(scope="project:write"))).status_code == 200
    assert_no_credentials(client.get("/orgs/acme/items"))
    assert_invalid_token(client.get("/orgs/acme/items", headers=bearer(token(org_id="globex"))))


def test_method_view_with_an_explicit_scope_map() -> None:
    app = Flask(__name__)
    rs = ResourceServer(app, verifier=VERIFIER, roles=ROLES, membership=membership)

    @rs.require({"GET": "team:write", "POST": "project:write"})
    class Strict(Items):
        pass

    app.add_url_rule("/orgs/<org>/strict", view_func=Strict.as_view("strict"))
    client = app.test_client()
    # The explicit map wins over the inherited scope_map attribute.
    assert_insufficient_scope(client.get("/orgs/acme/strict", headers=bearer(token())), "team:write")
    assert client.get("/orgs/acme/strict", headers=bearer(token(scope="team:write"))).status_code == 200


def test_method_view_implementing_an_unmapped_method_fails_at_decoration() -> None:
    _, rs = build_app()

    class Unmapped(MethodView):
        scope_map: ClassVar[dict[str, str]] = {"GET": "project:read"}

        def get(self) -> str:
            return "ok"

        def delete(self) -> str:
            return "gone"

    with pytest.raises(ValueError, match="DELETE"):
        rs.require()(Unmapped)
    with pytest.raises(ValueError, match="DELETE"):
        rs.require({"GET": "project:read", "POST": "project:write"})(Unmapped)
    rs.require({"GET": "project:read", "DELETE": "project:write"})(Unmapped)  # covered: accepted


def test_method_view_without_any_scope_map_fails_at_decoration() -> None:
    _, rs = build_app()

    class Bare(MethodView):
        def get(self) -> str:
            return "ok"

    with pytest.raises(ValueError):
        rs.require()(Bare)


# -- blueprints -------------------------------------------------------------------------------------


def test_blueprint_views_are_protected(client: Any) -> None:
    assert_no_credentials(client.get("/orgs/acme/reports/"))
    response = client.get("/orgs/acme/reports/", headers=bearer(token()))
    assert response.status_code == 200
    assert response.get_json() == {"view": "reports", "org": "acme", "scopes": ["project:read"]}
    assert_insufficient_scope(client.post("/orgs/acme/reports/", headers=bearer(token())), "project:write")
    assert_invalid_token(client.get("/orgs/acme/reports/", headers=bearer(token(org_id="globex"))))
    assert_forbidden(client.get("/orgs/acme/reports/", headers=bearer(token(sub="user-3"))))
    assert_invalid_request(client.get("/orgs/acme/reports/", headers={"Authorization": "Bearer"}))


def test_a_blueprint_view_with_its_own_require_keeps_its_own_map(client: Any) -> None:
    # The blueprint map (project:read) would allow this; the view's own (team:write) does not.
    refused = client.get("/orgs/acme/reports/admin", headers=bearer(token(scope="project:read")))
    assert_insufficient_scope(refused, "team:write")
    # And the other way round: the blueprint map alone would refuse a team:write-only token.
    allowed = client.get("/orgs/acme/reports/admin", headers=bearer(token(scope="team:write")))
    assert allowed.status_code == 200
    assert allowed.get_json() == {"view": "report-admin", "scopes": ["team:write"]}


def test_protecting_a_blueprint_after_registration_is_not_silent() -> None:
    app = Flask(__name__)
    rs = ResourceServer(app, verifier=VERIFIER, roles=ROLES, membership=membership)
    late = Blueprint("late", __name__)

    @late.route("/orgs/<org>/late")
    def view(org: str) -> str:
        return "open"

    app.register_blueprint(late)
    with pytest.raises(AssertionError):
        rs.protect_blueprint(late, {"GET": "project:read"})


# -- refusals are returned, not raised --------------------------------------------------------------


def test_a_catch_all_error_handler_keeps_the_challenge() -> None:
    app, _ = build_app(catch_all=True)
    client = app.test_client()
    assert_no_credentials(client.get("/orgs/acme/projects"))
    assert_invalid_token(client.get("/orgs/acme/projects", headers=bearer("abc.def.ghi")))
    assert_invalid_request(client.get("/orgs/acme/projects", headers={"Authorization": "Bearer"}))
    assert_insufficient_scope(client.post("/orgs/acme/projects", headers=bearer(token())), "project:write")
    assert_forbidden(client.get("/orgs/acme/reports/", headers=bearer(token(sub="user-3"))))
    # The handler still sees genuine HTTP errors.
    assert client.get("/nowhere").get_json() == {"error": "swallowed"}


# -- hostile input is never reflected ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        f"Bearer {HOSTILE}",
        f"Bearer {HOSTILE}.{HOSTILE}.{HOSTILE}",
        f"Bearer {HOSTILE} <script>",
        f'Bearer {HOSTILE}"',
        f"Basic {HOSTILE}",
        f"{HOSTILE} {HOSTILE}",
    ],
)
def test_hostile_credentials_are_never_reflected(client: Any, value: str) -> None:
    response = client.get("/orgs/acme/projects", headers={"Authorization": value})
    assert response.status_code in (400, 401)
    assert "MARKER" not in response.get_data(as_text=True)
    for name, header in response.headers.items():
        assert "MARKER" not in header, name
    assert "Traceback" not in response.get_data(as_text=True)


def test_hostile_claims_are_never_reflected(client: Any) -> None:
    raw = token(sub=HOSTILE, iss=HOSTILE)
    response = client.get("/orgs/acme/projects", headers=bearer(raw))
    assert_invalid_token(response)
    assert "MARKER" not in response.get_data(as_text=True)
    assert "MARKER" not in str(response.headers)
    member = client.get("/orgs/acme/projects", headers=bearer(token(sub=HOSTILE)))
    assert_forbidden(member)
    assert "MARKER" not in member.get_data(as_text=True)


def test_refusals_are_not_cached(client: Any) -> None:
    for response in (
        client.get("/orgs/acme/projects"),
        client.get("/orgs/acme/projects", headers={"Authorization": "Bearer"}),
        client.post("/orgs/acme/projects", headers=bearer(token())),
    ):
        assert response.headers["Cache-Control"] == "no-store"


# -- configuration and the app-factory pattern ------------------------------------------------------


def test_realm_from_the_constructor_and_from_config() -> None:
    app, _ = build_app(realm="widgets")
    assert_no_credentials(app.test_client().get("/orgs/acme/projects"), realm="widgets")
    app, _ = build_app(realm="widgets", config={"RESOURCE_SERVER_REALM": "config-wins"})
    client = app.test_client()
    assert_no_credentials(client.get("/orgs/acme/projects"), realm="config-wins")
    assert_invalid_token(client.get("/orgs/acme/projects", headers=bearer("a.b.c")), realm="config-wins")
    scoped = client.post("/orgs/acme/projects", headers=bearer(token()))
    assert challenge_of(scoped).get("realm") == "config-wins"


def test_app_factory_with_two_apps_and_different_realms() -> None:
    rs = ResourceServer(verifier=VERIFIER, roles=ROLES, membership=membership)

    def create_app(realm: str) -> Flask:
        app = Flask(__name__)
        app.config["RESOURCE_SERVER_REALM"] = realm
        rs.init_app(app)

        @app.route("/orgs/<org>/projects", methods=["GET", "POST"])
        @rs.require(PROJECTS)
        def projects(org: str) -> Any:
            return jsonify(realm=realm, subject=current_access.subject)

        return app

    one, two = create_app("one").test_client(), create_app("two").test_client()
    assert_no_credentials(one.get("/orgs/acme/projects"), realm="one")
    assert_no_credentials(two.get("/orgs/acme/projects"), realm="two")
    assert challenge_of(one.post("/orgs/acme/projects", headers=bearer(token()))).get("realm") == "one"
    assert challenge_of(two.post("/orgs/acme/projects", headers=bearer(token()))).get("realm") == "two"
    assert one.get("/orgs/acme/projects", headers=bearer(token())).get_json()["realm"] == "one"
    assert two.get("/orgs/acme/projects", headers=bearer(token())).get_json()["realm"] == "two"


# -- RFC 9728 protected resource metadata -----------------------------------------------------------

WELL_KNOWN = "/.well-known/oauth-protected-resource"


#: ROLES and a role no member holds, granting the scopes only the metadata app's maps name.
METADATA_ROLES = Roles(
    {**dict(ROLES.items()), "auditor": ["a:write", "b:read", "c:write", "d:read", "e:read"]}
)


def metadata_app(**config: Any) -> tuple[Flask, ResourceServer]:
    app = Flask(__name__)
    app.config.update({f"RESOURCE_SERVER_{name}": value for name, value in config.items()})
    rs = ResourceServer(app, verifier=VERIFIER, roles=METADATA_ROLES, membership=membership)

    @app.route("/orgs/<org>/b")
    @rs.require({"GET": "b:read"})
    def b(org: str) -> str:
        return "b"

    @app.route("/orgs/<org>/c", methods=["POST"])
    @rs.require({"POST": [["c:write", "a:write"], "b:read"]})
    def c(org: str) -> str:
        return "c"

    @app.route("/orgs/<org>/w")
    @rs.require({"GET": "project:write"})  # a scope the admin's role holds: a token can help
    def w(org: str) -> str:
        return "w"

    @rs.require()
    class E(MethodView):
        scope_map = ScopeMap({"GET": "e:read"})

        def get(self, org: str) -> str:
            return "e"

    app.add_url_rule("/orgs/<org>/e", view_func=E.as_view("e"))
    bp = Blueprint("d", __name__, url_prefix="/orgs/<org>/d")

    @bp.route("/")
    def d(org: str) -> str:
        return "d"

    rs.protect_blueprint(bp, {"GET": "d:read"})
    app.register_blueprint(bp)
    return app, rs


def test_metadata_document() -> None:
    app, rs = metadata_app(RESOURCE="https://api.test", AUTHORIZATION_SERVERS=["https://as.test"])
    client = app.test_client()
    response = client.get(WELL_KNOWN)
    assert response.status_code == 200
    assert "WWW-Authenticate" not in response.headers
    assert response.get_json() == {
        "resource": "https://api.test",
        "authorization_servers": ["https://as.test"],
        "scopes_supported": ["a:write", "b:read", "c:write", "d:read", "e:read", "project:write"],
        "bearer_methods_supported": ["header"],
    }
    assert rs.scopes_supported == ["a:write", "b:read", "c:write", "d:read", "e:read", "project:write"]
    metadata = "https://api.test" + WELL_KNOWN
    assert_no_credentials(client.get("/orgs/acme/b"), metadata=metadata)
    assert (
        challenge_of(client.get("/orgs/acme/b", headers=bearer("a.b.c"))).get("resource_metadata") == metadata
    )
    futile = client.get("/orgs/acme/b", headers=bearer(token()))  # the admin's role lacks b:read
    assert futile.status_code == 403 and "WWW-Authenticate" not in futile.headers
    scoped = client.get("/orgs/acme/w", headers=bearer(token()))
    assert scoped.status_code == 403
    assert challenge_of(scoped).get("resource_metadata") == metadata


def test_metadata_document_ignores_credentials() -> None:
    app, _ = metadata_app(RESOURCE="https://api.test")
    client = app.test_client()
    assert client.get(WELL_KNOWN, headers={"Authorization": "Bearer"}).status_code == 200
    assert client.get(WELL_KNOWN, headers=bearer("a.b.c")).status_code == 200


def test_metadata_for_a_resource_with_a_path() -> None:
    app, _ = metadata_app(RESOURCE="https://api.test/v1", AUTHORIZATION_SERVERS=["https://as.test"])
    client = app.test_client()
    response = client.get(WELL_KNOWN + "/v1")
    assert response.status_code == 200
    assert response.get_json()["resource"] == "https://api.test/v1"
    assert client.get(WELL_KNOWN).status_code == 404
    challenge = challenge_of(client.get("/orgs/acme/b"))
    assert challenge.get("resource_metadata") == "https://api.test" + WELL_KNOWN + "/v1"


def test_metadata_url_given_to_the_constructor_derives_the_resource() -> None:
    app = Flask(__name__)
    rs = ResourceServer(
        app,
        verifier=VERIFIER,
        roles=ROLES,
        membership=membership,
        resource_metadata="https://api.test" + WELL_KNOWN + "/v2",
    )

    @app.route("/orgs/<org>/x")
    @rs.require({"GET": "project:read"})
    def x(org: str) -> str:
        return "x"

    client = app.test_client()
    document = client.get(WELL_KNOWN + "/v2").get_json()
    assert document["resource"] == "https://api.test/v2"
    assert document["authorization_servers"] == [ISSUER]  # unconfigured: the verifier's issuer
    assert challenge_of(client.get("/orgs/acme/x")).get("resource_metadata") == (
        "https://api.test" + WELL_KNOWN + "/v2"
    )


def test_metadata_can_be_left_unserved() -> None:
    app, _ = metadata_app(RESOURCE="https://api.test", SERVE_METADATA=False)
    client = app.test_client()
    assert client.get(WELL_KNOWN).status_code == 404
    # The challenge still points at it: another component may serve the document.
    assert (
        challenge_of(client.get("/orgs/acme/b")).get("resource_metadata") == "https://api.test" + WELL_KNOWN
    )


def test_no_resource_means_no_metadata() -> None:
    app, _ = metadata_app()
    client = app.test_client()
    assert client.get(WELL_KNOWN).status_code == 404
    assert_no_credentials(client.get("/orgs/acme/b"))


def test_a_single_authorization_server_string_is_not_split_into_characters() -> None:
    # A natural configuration slip: one URL instead of a list of URLs. Either it is taken as that
    # one server, or init_app refuses it; it must not publish one "server" per character.
    try:
        app, _ = metadata_app(RESOURCE="https://api.test", AUTHORIZATION_SERVERS="https://as.test")
    except (TypeError, ValueError):
        return
    assert app.test_client().get(WELL_KNOWN).get_json()["authorization_servers"] == ["https://as.test"]


def test_a_resource_that_is_not_a_url_fails_at_init_app() -> None:
    with pytest.raises(ValueError):
        metadata_app(RESOURCE="api.test")


@pytest.mark.parametrize(
    "resource", ["https://api.test#frag", "https://api.test/#", "ftp://api.test", "https:///x"]
)
def test_a_resource_identifier_breaking_rfc9728_fails_at_init_app(resource: str) -> None:
    """RFC 9728 §1.2: an absolute https URL (http allowed for loopback work), no fragment."""
    with pytest.raises(ValueError, match="RESOURCE_SERVER_RESOURCE"):
        metadata_app(RESOURCE=resource)


def test_an_explicit_options_route_never_runs_the_view_unauthenticated() -> None:
    app, rs = build_app()

    @app.route("/orgs/<org>/secret", methods=["GET", "OPTIONS"])
    @rs.require({"GET": "project:read"})
    def secret(org: str) -> dict[str, str]:
        return {"secret": "payroll"}

    response = app.test_client().options("/orgs/acme/secret")
    assert response.status_code == 200 and b"payroll" not in response.get_data()
    assert "GET" in response.headers["Allow"]


def test_a_method_view_with_an_unmapped_options_fails_at_decoration() -> None:
    _, rs = build_app()
    with pytest.raises(ValueError, match="OPTIONS"):

        @rs.require({"GET": "project:read"})
        class Leaky(MethodView):
            def get(self) -> str:
                return "x"

            def options(self) -> str:
                return "internal"


def test_an_unmapped_method_says_it_is_not_permitted_on_the_route(client: Any) -> None:
    """The route accepts DELETE but its scope map has no entry: no token or role can allow it, and
    the body says so rather than blame the member's role."""
    response = client.delete("/orgs/acme/projects", headers=bearer(token(scope=ALL_SCOPES)))
    assert_forbidden(response)
    assert response.get_json()["error_description"] == "this method is not permitted on this route"


def test_a_route_without_its_org_variable_is_refused_and_says_why(client: Any) -> None:
    """Fail closed: the route declared org="org" but has no such variable; never the token's org."""
    response = client.get("/broken", headers=bearer(token(scope=ALL_SCOPES)))
    assert_forbidden(response)
    assert response.get_json()["error_description"] == "this route is misconfigured"


def test_json_body_reads_with_bounds_and_refuses_with_a_400() -> None:
    """json_body() instead of request.get_json(): a body nested 1,000 deep is a 400 JSON error,
    not a RecursionError (500), even with a catch-all error handler installed."""
    from resource_server.flask import json_body

    app = Flask(__name__)
    ResourceServer(app, verifier=VERIFIER, roles=ROLES, membership=membership)

    @app.post("/echo")
    def echo() -> dict[str, Any]:
        return json_body(limit=1000)

    @app.errorhandler(Exception)
    def everything(error: Exception) -> tuple[str, int]:
        return "caught", 500

    client = app.test_client()
    assert client.post("/echo", json={"a": [1]}).get_json() == {"a": [1]}
    for body in (b"[" * 1000 + b"]" * 1000, b'{"a": 1, "a": 2}', b'{"x": "' + b"y" * 2000 + b'"}', b"[]"):
        response = client.post("/echo", data=body, content_type="application/json")
        assert response.status_code == 400, body[:20]
        assert response.get_json()["error"] == "invalid_request"


def test_a_form_parsed_by_the_app_first_is_still_searched_for_a_second_token() -> None:
    """A before_request hook (or another extension) reads request.form before the guard: the
    raw bytes are gone then, but the fields are not, and a token among them is still refused."""
    app, _ = build_app()
    app.before_request(lambda: request.form and None)
    raw = token(scope=ALL_SCOPES)
    response = app.test_client().post(
        "/orgs/acme/projects", headers=bearer(raw), data={"access_token": raw, "x": "1"}
    )
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"


def test_a_chunked_form_with_a_second_token_is_refused_over_real_http() -> None:
    """The same rule as the WSGI middleware: a chunked urlencoded body is inspected too (up to
    64 KiB, handed to the view whole)."""
    app, _ = build_app()
    raw = token(scope=ALL_SCOPES)
    with serve_wsgi(app) as base:
        for body, status in ((b"access_token=" + raw.encode(), 400), (b"name=chunked", 200)):
            response = httpx.post(
                f"{base}/orgs/acme/projects",
                content=iter([body]),  # an iterator: httpx sends it chunked
                headers={"Content-Type": "application/x-www-form-urlencoded", **bearer(raw)},
            )
            assert response.status_code == status, response.text
