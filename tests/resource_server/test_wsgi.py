"""BearerMiddleware around a plain WSGI function and around a Flask app, with real signed tokens."""

from __future__ import annotations

import http.client
import io
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from flask import Flask, jsonify, request
from werkzeug.test import Client, EnvironBuilder, run_wsgi_app

from policy import Challenge, Roles, ScopeMap, parse_challenges
from resource_server import JWTVerifier
from resource_server.wsgi import ACCESS_KEY, TOKEN_KEY, BearerMiddleware, Route
from tests.support import AUDIENCE, DROP, ISSUER, FakeClock, es256, jwks, serve_wsgi

SIGNER = es256("wsgi-1")
ROLES = Roles({"member": ["project:read"], "admin": ["project:read", "project:write", "team:write"]})
MEMBERS = {("user-1", "acme"): "admin", ("user-2", "acme"): "member", ("user-1", "globex"): "member"}
VERIFIER = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=FakeClock())
PROJECTS = ScopeMap({"GET": "project:read", "POST": "project:write"})
ROUTES: dict[str, Any] = {
    "/orgs/<org>/projects": PROJECTS,
    "/orgs/<org>/projects/<int:project>": {"GET": "project:read", "DELETE": "project:write"},
    "/orgs/<org>/teams/": {"PUT": [["project:write", "team:write"]]},
    "/me": Route({"GET": "project:read"}, org=None),
}
PUBLIC = ("/health", "/docs/<path:rest>")
ALL_SCOPES = "project:read project:write team:write"


def membership(subject: str, org: str | None) -> str | None:
    return MEMBERS.get((subject, org))


def token(**overrides: Any) -> str:
    return SIGNER.token(**overrides)


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def echo(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The wrapped application: says what it was given."""
    access = environ.get(ACCESS_KEY)
    verified = environ.get(TOKEN_KEY)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.dumps(
        {
            "path": environ["PATH_INFO"],
            "method": environ["REQUEST_METHOD"],
            "scopes": None if access is None else sorted(access.scopes),
            "subject": None if access is None else access.subject,
            "org": None if access is None else access.org,
            "token_subject": None if verified is None else verified.subject,
            "body": environ["wsgi.input"].read(length).decode("latin-1") if length else "",
        }
    ).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def middleware(app: Any = echo, **options: Any) -> BearerMiddleware:
    settings: dict[str, Any] = {
        "verifier": VERIFIER,
        "roles": ROLES,
        "membership": membership,
        "routes": ROUTES,
        "public": PUBLIC,
    }
    settings.update(options)
    return BearerMiddleware(app, **settings)


@pytest.fixture(scope="module")
def wrapped() -> BearerMiddleware:
    return middleware()


@pytest.fixture
def client(wrapped: BearerMiddleware) -> Client:
    return Client(wrapped)


def challenge_of(response: Any) -> Challenge:
    values = response.headers.getlist("WWW-Authenticate")
    assert len(values) == 1, values
    (challenge,) = parse_challenges(values[0])
    assert challenge.is_scheme("Bearer")
    return challenge


def error_body(response: Any, error: str) -> dict[str, str]:
    assert response.mimetype == "application/json"
    body = json.loads(response.get_data(as_text=True))
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == error and body["error_description"]
    assert response.headers["Content-Length"] == str(len(response.get_data()))
    return body


def assert_refused(response: Any, status: int, error: str, challenge_error: str | None = "absent") -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    error_body(response, error)
    if challenge_error == "absent":
        assert "WWW-Authenticate" not in response.headers
        return
    challenge = challenge_of(response)
    assert challenge.get("realm") == "api"
    assert challenge.get("error") == challenge_error


def granted(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


# -- allowed requests -------------------------------------------------------------------------------


def test_a_read_reaches_the_app_with_the_access(client: Client) -> None:
    body = granted(client.get("/orgs/acme/projects", headers=bearer(token())))
    assert body["scopes"] == ["project:read"]
    assert body["subject"] == body["token_subject"] == "user-1"
    assert body["org"] == "acme"


def test_typed_url_variables_and_several_routes(client: Client) -> None:
    assert (
        granted(client.get("/orgs/acme/projects/7", headers=bearer(token())))["path"]
        == "/orgs/acme/projects/7"
    )
    response = client.delete("/orgs/acme/projects/7", headers=bearer(token(scope=ALL_SCOPES)))
    assert granted(response)["scopes"] == ["project:read", "project:write", "team:write"]


def test_route_without_org_asks_about_the_token_org(client: Client) -> None:
    assert granted(client.get("/me", headers=bearer(token(org_id="globex"))))["org"] == "globex"
    assert_refused(client.get("/me", headers=bearer(token(org_id=DROP))), 403, "forbidden")


@pytest.mark.parametrize(
    ("path", "seen"),
    [
        ("/orgs/acme/projects/", "/orgs/acme/projects/"),
        ("/orgs/acme/teams", "/orgs/acme/teams"),
        ("/orgs/acme/teams/", "/orgs/acme/teams/"),
        ("/orgs/acme/projects/7/", "/orgs/acme/projects/7/"),
    ],
)
def test_trailing_slash_variants_match_without_redirect(client: Client, path: str, seen: str) -> None:
    method = "PUT" if "teams" in path else "GET"
    response = client.open(path, method=method, headers=bearer(token(scope=ALL_SCOPES)))
    assert granted(response)["path"] == seen
    assert "Location" not in response.headers
    # And without a token the variant is protected just the same.
    assert client.open(path, method=method).status_code == 401


def test_head_falls_back_to_get(client: Client) -> None:
    assert client.head("/orgs/acme/projects", headers=bearer(token())).status_code == 200
    assert client.head("/orgs/acme/projects").status_code == 401


# -- public and unmatched paths ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/docs/index.html", "/docs/a/b/c"])
def test_public_paths_pass_without_auth(client: Client, path: str) -> None:
    body = granted(client.get(path))
    assert body["scopes"] is None and body["path"] == path


def test_public_paths_ignore_bad_credentials(client: Client) -> None:
    assert client.get("/health", headers={"Authorization": "Bearer"}).status_code == 200
    assert client.get("/health?access_token=x").status_code == 200


@pytest.mark.parametrize(
    "path", ["/", "/orgs", "/orgs/acme", "/orgs/acme/projects/x", "/orgs/acme//projects", "/healthz", "/docs"]
)
def test_unmatched_paths_are_forbidden(client: Client, path: str) -> None:
    response = client.get(path, headers=bearer(token(scope=ALL_SCOPES)))
    assert_refused(response, 403, "forbidden")
    assert_refused(client.get(path), 403, "forbidden")


# -- the status and header table --------------------------------------------------------------------


def test_no_credentials(client: Client) -> None:
    response = client.get("/orgs/acme/projects")
    assert response.status_code == 401
    challenge = challenge_of(response)
    assert dict(challenge.params) == {"realm": "api"}
    error_body(response, "unauthorized")


def test_another_scheme(client: Client) -> None:
    response = client.get("/orgs/acme/projects", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert dict(challenge_of(response).params) == {"realm": "api"}


def test_realm_and_resource_metadata_in_challenges() -> None:
    metadata = "https://api.test/.well-known/oauth-protected-resource"
    client = Client(middleware(realm="widgets", resource_metadata=metadata))
    anonymous = challenge_of(client.get("/orgs/acme/projects"))
    assert dict(anonymous.params) == {"realm": "widgets", "resource_metadata": metadata}
    invalid = challenge_of(client.get("/orgs/acme/projects", headers=bearer("a.b.c")))
    assert invalid.get("resource_metadata") == metadata and invalid.get("realm") == "widgets"
    scoped = challenge_of(client.post("/orgs/acme/projects", headers=bearer(token())))
    assert scoped.get("resource_metadata") == metadata and scoped.get("error") == "insufficient_scope"


@pytest.mark.parametrize(
    "raw",
    [
        token(iss="https://evil.test"),
        token(aud="https://other.test"),
        token(headers={"typ": "JWT"}),
        token(exp=1_000_000, iat=999_000),
        token(headers={"kid": "nobody"}),
        es256("wsgi-1").token(),
        "abc.def.ghi",
        "x" * 9000,
    ],
    ids=["iss", "aud", "typ", "expired", "kid", "signature", "garbage", "too-large"],
)
def test_invalid_tokens(client: Client, raw: str) -> None:
    response = client.get("/orgs/acme/projects", headers=bearer(raw))
    assert_refused(response, 401, "invalid_token", "invalid_token")
    assert challenge_of(response).get("error_description")
    assert raw not in response.get_data(as_text=True)


def test_token_bound_to_another_org(client: Client) -> None:
    response = client.get("/orgs/acme/projects", headers=bearer(token(org_id="globex")))
    assert_refused(response, 401, "invalid_token", "invalid_token")


@pytest.mark.parametrize("value", ["Bearer", "Bearer a b", "Bearer a@b", "Bearer a,Bearer b", "Bearer é"])
def test_malformed_credentials(client: Client, value: str) -> None:
    assert_refused(
        client.get("/orgs/acme/projects", headers={"Authorization": value}),
        400,
        "invalid_request",
        "invalid_request",
    )


def test_token_in_header_and_query(client: Client) -> None:
    raw = token()
    response = client.get(f"/orgs/acme/projects?access_token={raw}", headers=bearer(raw))
    assert_refused(response, 400, "invalid_request", "invalid_request")


def test_lone_query_token(client: Client) -> None:
    response = client.get(f"/orgs/acme/projects?x=1&access_token={token()}")
    assert_refused(response, 400, "invalid_request", "invalid_request")


def test_token_in_header_and_form_body(client: Client) -> None:
    raw = token(scope="project:write")
    response = client.post("/orgs/acme/projects", headers=bearer(raw), data={"access_token": raw, "a": "b"})
    assert_refused(response, 400, "invalid_request", "invalid_request")


def test_form_content_type_with_parameters_is_inspected(client: Client) -> None:
    raw = token(scope="project:write")
    response = client.post(
        "/orgs/acme/projects",
        headers={**bearer(raw), "Content-Type": "Application/X-WWW-Form-Urlencoded ; charset=utf-8"},
        data=f"access_token={raw}",
    )
    assert_refused(response, 400, "invalid_request", "invalid_request")


def test_a_normal_form_body_reaches_the_app_intact(client: Client) -> None:
    form = "name=apollo&note=caf%C3%A9+%26+more&empty="
    response = client.post(
        "/orgs/acme/projects",
        headers={**bearer(token(scope="project:write")), "Content-Type": "application/x-www-form-urlencoded"},
        data=form,
    )
    assert granted(response)["body"] == form


def test_a_large_form_body_is_passed_on_uninspected(client: Client) -> None:
    form = urlencode({"blob": "z" * 70_000})
    response = client.post(
        "/orgs/acme/projects",
        headers={**bearer(token(scope="project:write")), "Content-Type": "application/x-www-form-urlencoded"},
        data=form,
    )
    assert granted(response)["body"] == form


def test_under_scoped_token(client: Client) -> None:
    response = client.post("/orgs/acme/projects", headers=bearer(token()))
    assert_refused(response, 403, "insufficient_scope", "insufficient_scope")
    assert challenge_of(response).get("scope") == "project:write"
    partial = client.put("/orgs/acme/teams/", headers=bearer(token(scope="project:write")))
    assert challenge_of(partial).get("scope") == "project:write team:write"


def test_not_a_member(client: Client) -> None:
    assert_refused(client.get("/orgs/initech/projects", headers=bearer(token(org_id=DROP))), 403, "forbidden")
    assert_refused(client.get("/orgs/acme/projects", headers=bearer(token(sub="user-9"))), 403, "forbidden")


def test_role_lacks_the_scope(client: Client) -> None:
    response = client.post("/orgs/acme/projects", headers=bearer(token(sub="user-2", scope="project:write")))
    assert_refused(response, 403, "forbidden")


def test_method_not_in_the_scope_map(client: Client) -> None:
    assert_refused(
        client.delete("/orgs/acme/projects", headers=bearer(token(scope=ALL_SCOPES))), 403, "forbidden"
    )
    assert_refused(
        client.patch("/orgs/acme/projects/7", headers=bearer(token(scope=ALL_SCOPES))), 403, "forbidden"
    )


def test_cors_preflight_passes_through(client: Client) -> None:
    response = client.options("/orgs/acme/projects", headers={"Access-Control-Request-Method": "POST"})
    assert granted(response)["method"] == "OPTIONS"
    assert "WWW-Authenticate" not in response.headers


def test_other_options_requests_are_checked(client: Client) -> None:
    """No view runs unauthenticated: a plain OPTIONS needs credentials like any method."""
    assert client.options("/orgs/acme/projects").status_code == 401


def test_options_mapped_explicitly_is_checked() -> None:
    client = Client(middleware(routes={"/orgs/<org>/x": {"OPTIONS": "project:read"}}))
    assert client.options("/orgs/acme/x").status_code == 401
    assert client.options("/orgs/acme/x", headers=bearer(token())).status_code == 200


def test_an_exception_inside_verification_is_401() -> None:
    def broken_clock() -> float:
        raise OSError("no clock")

    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=broken_clock)
    response = Client(middleware(verifier=verifier)).get("/orgs/acme/projects", headers=bearer(token()))
    assert_refused(response, 401, "invalid_token", "invalid_token")


def test_bad_route_scope_maps_fail_at_construction() -> None:
    with pytest.raises(ValueError):
        middleware(routes={"/orgs/<org>/x": {"GET": "two scopes"}})


def test_a_scope_no_role_grants_fails_at_construction() -> None:
    with pytest.raises(ValueError) as refused:
        middleware(routes={**ROUTES, "/orgs/<org>/audit": {"GET": ["project:read", "audit:read"]}})
    assert str(refused.value) == (
        "route '/orgs/<org>/audit' requires audit:read, which no role grants: "
        "grant the scope to a role in Roles, or correct the scope map"
    )


class Directory:
    async def __call__(self, subject: str, org: str | None) -> str | None:
        return "admin"


async def async_membership(subject: str, org: str | None) -> str | None:
    return "admin"


@pytest.mark.parametrize(
    "given", [async_membership, Directory()], ids=["coroutine function", "async __call__"]
)
def test_a_coroutine_membership_fails_at_construction(given: Any) -> None:
    """It would be called and never awaited: every request refused, with a warning at best."""
    with pytest.raises(TypeError) as refused:
        middleware(membership=given)
    assert str(refused.value).startswith(
        "membership is a coroutine function, which resource_server.wsgi.BearerMiddleware cannot await"
    )
    assert str(refused.value).endswith("resource_server.asgi, resource_server.fastapi, resource_server.mcp")


# -- around a Flask app -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def flask_app() -> Flask:
    app = Flask(__name__)

    @app.route("/orgs/<org>/projects", methods=["GET", "POST"])
    def projects(org: str) -> Any:
        access = request.environ[ACCESS_KEY]
        return jsonify(org=org, scopes=sorted(access.scopes), form=request.form.to_dict())

    @app.route("/health")
    def health() -> Any:
        return jsonify(ok=ACCESS_KEY not in request.environ)

    @app.route("/unlisted")
    def unlisted() -> Any:
        return jsonify(open=True)

    app.wsgi_app = middleware(app.wsgi_app)  # type: ignore[method-assign]
    return app


def test_around_flask_read_and_write(flask_app: Flask) -> None:
    client = flask_app.test_client()
    assert granted(client.get("/orgs/acme/projects", headers=bearer(token())))["scopes"] == ["project:read"]
    written = client.post(
        "/orgs/acme/projects", headers=bearer(token(scope="project:write")), data={"name": "apollo", "n": "1"}
    )
    assert granted(written)["form"] == {"name": "apollo", "n": "1"}


def test_around_flask_refusals(flask_app: Flask) -> None:
    client = flask_app.test_client()
    assert client.get("/orgs/acme/projects").status_code == 401
    assert_refused(
        client.post("/orgs/acme/projects", headers=bearer(token())),
        403,
        "insufficient_scope",
        "insufficient_scope",
    )
    assert_refused(client.get("/unlisted"), 403, "forbidden")
    assert granted(client.get("/health")) == {"ok": True}
    raw = token(scope="project:write")
    assert_refused(
        client.post("/orgs/acme/projects", headers=bearer(raw), data={"access_token": raw}),
        400,
        "invalid_request",
        "invalid_request",
    )


def test_around_flask_options_reaches_flask(flask_app: Flask) -> None:
    response = flask_app.test_client().options(
        "/orgs/acme/projects", headers={"Access-Control-Request-Method": "GET"}
    )
    assert response.status_code == 200
    assert {m.strip() for m in response.headers["Allow"].split(",")} >= {"GET", "POST", "OPTIONS"}


# -- over real HTTP: the body comes from a socket, not a BytesIO --------------------------------------


def _post_form(base: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request(
            "POST", path, body=body, headers={"Content-Type": "application/x-www-form-urlencoded", **headers}
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_form_bodies_over_real_http(wrapped: BearerMiddleware, flask_app: Flask) -> None:
    raw = token(scope="project:write")
    form = b"name=apollo&note=caf%C3%A9"
    with serve_wsgi(wrapped) as base:
        status, body = _post_form(base, "/orgs/acme/projects", form, bearer(raw))
        assert status == 200 and json.loads(body)["body"] == form.decode()
        status, body = _post_form(base, "/orgs/acme/projects", b"access_token=" + raw.encode(), bearer(raw))
        assert status == 400 and json.loads(body)["error"] == "invalid_request"
    with serve_wsgi(flask_app) as base:
        status, body = _post_form(base, "/orgs/acme/projects", form, bearer(raw))
        assert status == 200 and json.loads(body)["form"] == {"name": "apollo", "note": "café"}


def _post_chunked(base: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        conn.request(
            "POST",
            path,
            body=iter([body]),
            headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
            encode_chunked=True,
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_a_chunked_form_body_with_a_second_token_is_refused(wrapped: BearerMiddleware) -> None:
    # No Content-Length: the body arrives chunked. It is still small enough to inspect, and the
    # Flask adapter refuses the very same request with 400.
    raw = token(scope="project:write")
    with serve_wsgi(wrapped) as base:
        status, body = _post_chunked(
            base, "/orgs/acme/projects", b"access_token=" + raw.encode(), bearer(raw)
        )
    assert status == 400, body
    assert json.loads(body)["error"] == "invalid_request"


# -- every protected pattern names its org, or says it names none -----------------------------------


def test_a_pattern_without_the_org_variable_is_refused_at_construction() -> None:
    """The review's finding: with the default org="org", a pattern naming its variable org_id
    used to fall back to the token's own org, so acme's token read globex's projects."""
    with pytest.raises(ValueError, match=r"'/orgs/<org_id>/projects' has no URL variable 'org'"):
        middleware(routes={"/orgs/<org_id>/projects": {"GET": "project:read"}})
    with pytest.raises(ValueError, match=r"'/me' has no URL variable 'org'"):
        middleware(routes={"/me": {"GET": "project:read"}})
    with pytest.raises(ValueError, match=r"has no URL variable 'tenant'"):
        middleware(routes={"/orgs/<org>/x": Route({"GET": "project:read"}, org="tenant")})


def test_a_route_names_its_own_org_variable() -> None:
    client = Client(middleware(routes={"/orgs/<org_id>/projects": Route(PROJECTS, org="org_id")}))
    acme = bearer(token(org_id="acme"))
    assert granted(client.get("/orgs/acme/projects", headers=acme))["org"] == "acme"
    assert_refused(client.get("/orgs/globex/projects", headers=acme), 401, "invalid_token", "invalid_token")


def test_the_middleware_wide_org_variable_applies_to_plain_scope_maps() -> None:
    client = Client(middleware(org="tenant", routes={"/t/<tenant>/projects": PROJECTS}))
    assert granted(client.get("/t/acme/projects", headers=bearer(token())))["org"] == "acme"
    response = client.get("/t/globex/projects", headers=bearer(token()))
    assert_refused(response, 401, "invalid_token", "invalid_token")


def test_routes_without_an_org_are_declared_explicitly() -> None:
    """org=None, on one Route or for the whole middleware, is the only way to check a request in
    the token's own org."""
    for wrapped in (
        middleware(routes={"/me": Route({"GET": "project:read"}, org=None)}),
        middleware(org=None, routes={"/me": {"GET": "project:read"}}),
    ):
        assert granted(Client(wrapped).get("/me", headers=bearer(token(org_id="globex"))))["org"] == "globex"


@pytest.mark.parametrize("org", ["", 7, b"org"])
def test_a_route_org_must_be_a_variable_name_or_none(org: Any) -> None:
    with pytest.raises(ValueError, match="org"):
        Route({"GET": "project:read"}, org=org)


def test_an_unmapped_method_says_so(client: Client) -> None:
    """No token or role can allow a method the route's map lacks, and the body says that, not
    that the member's role is short."""
    response = client.delete("/orgs/acme/projects", headers=bearer(token(scope=ALL_SCOPES)))
    assert (
        error_body(response, "forbidden")["error_description"] == "this method is not permitted on this route"
    )
    short = client.post("/orgs/acme/projects", headers=bearer(token(sub="user-2", scope=ALL_SCOPES)))
    assert (
        error_body(short, "forbidden")["error_description"]
        == "the member's role does not permit this request"
    )


@pytest.mark.parametrize("size", [65_536, 70_000, 200_000])
def test_a_large_form_body_on_a_keep_alive_connection_reaches_the_app(flask_app: Flask, size: int) -> None:
    """The inspected head is put back in front of the rest, and the rest is read no further than
    Content-Length: reading ahead on a kept-alive socket waited for bytes that never come."""
    form = b"name=" + b"a" * (size - 5)
    raw = token(scope="project:write")
    with serve_wsgi(flask_app) as base:
        parts = urlsplit(base)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)  # keep-alive
        try:
            conn.request(
                "POST",
                "/orgs/acme/projects",
                body=form,
                headers={"Content-Type": "application/x-www-form-urlencoded", **bearer(raw)},
            )
            response = conn.getresponse()
            assert response.status == 200
            assert len(json.loads(response.read())["form"]["name"]) == size - 5
        finally:
            conn.close()


def test_a_cut_form_body_is_a_400(wrapped: BearerMiddleware) -> None:
    """Content-Length says 900; the client sends 10 bytes and stops."""
    environ = EnvironBuilder(
        path="/orgs/acme/projects",
        method="POST",
        input_stream=io.BytesIO(b"name=short"),
        content_type="application/x-www-form-urlencoded",
        headers=bearer(token(scope="project:write")),
    ).get_environ()
    environ["CONTENT_LENGTH"] = "900"  # what the client promised
    body, status, _ = run_wsgi_app(wrapped, environ)  # as a server calls it: no rebuilt environ
    assert status == "400 Bad Request"
    assert json.loads(b"".join(body))["error"] == "invalid_request"


def test_org_none_on_a_pattern_that_names_the_org_is_refused() -> None:
    """org=None checks a request in the token's own org: on a URL that names one it would let
    acme's token act on /orgs/globex/..."""
    with pytest.raises(ValueError, match=r"has the URL variable 'org' but declares org=None"):
        middleware(org=None, routes={"/orgs/<org>/projects": {"GET": "project:read"}})
    with pytest.raises(ValueError, match=r"has the URL variable 'org' but declares org=None"):
        middleware(routes={"/orgs/<org>/projects": Route({"GET": "project:read"}, org=None)})
    with pytest.raises(ValueError, match=r"has the URL variable 'tenant' but declares org=None"):
        middleware(org="tenant", routes={"/t/<tenant>/x": Route({"GET": "project:read"}, org=None)})


@pytest.mark.parametrize("pattern", ["/orgs/<org>/<org>", "/orgs/<nope:org>", "/orgs/<org"])
def test_a_malformed_pattern_is_a_value_error(pattern: str) -> None:
    with pytest.raises(ValueError):
        middleware(routes={pattern: {"GET": "project:read"}})
