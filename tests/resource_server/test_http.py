"""Over real loopback HTTP: the Flask app served by werkzeug, keys fetched from a JWKS server,
httpx and requests as clients, and the WSGI middleware around a plain WSGI app."""

from __future__ import annotations

import http.client
import io
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import requests

from policy import Roles, parse_challenges
from resource_server import JWTVerifier
from resource_server.flask import ResourceServer
from resource_server.wsgi import ACCESS_KEY, BearerMiddleware
from tests.support import AUDIENCE, ISSUER, JWKSServer, Signer, es256, jwks, serve_wsgi

ROLES = Roles({"member": ["project:read"], "admin": ["project:read", "project:write"]})
MEMBERS = {("user-1", "acme"): "admin", ("user-1", "globex"): "admin"}
PROJECTS = {"GET": "project:read", "POST": "project:write"}


@pytest.fixture(scope="module")
def es() -> Signer:
    return es256()


@pytest.fixture(scope="module")
def jwks_server(es: Signer) -> Iterator[JWKSServer]:
    with JWKSServer(jwks(es)).running() as server:
        yield server


@pytest.fixture(scope="module")
def flask_url(jwks_server: JWKSServer) -> Iterator[str]:
    from flask import Flask

    app = Flask(__name__)
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=jwks_server.url)
    rs = ResourceServer(app, verifier=verifier, roles=ROLES, membership=lambda s, o: MEMBERS.get((s, o)))
    app.add_url_rule(
        "/orgs/<org>/projects", "p", rs.require(PROJECTS)(lambda org: {"org": org}), methods=["GET", "POST"]
    )
    with serve_wsgi(app) as url:
        yield url


def scope_of(header: str) -> dict[str, str]:
    (challenge,) = parse_challenges(header)
    return dict(challenge.params)


def test_httpx_client(flask_url: str, es: Signer) -> None:
    with httpx.Client(base_url=flask_url) as client:
        read = es.token()
        assert client.get("/orgs/acme/projects", headers={"Authorization": f"Bearer {read}"}).json() == {
            "org": "acme"
        }
        refused = client.post("/orgs/acme/projects", headers={"Authorization": f"Bearer {read}"})
        assert refused.status_code == 403
        assert scope_of(refused.headers["www-authenticate"])["scope"] == "project:write"
        other = client.get(
            "/orgs/acme/projects", headers={"Authorization": f"Bearer {es.token(org_id='globex')}"}
        )
        assert other.status_code == 401
        assert scope_of(other.headers["www-authenticate"])["error"] == "invalid_token"


def test_requests_client(flask_url: str, es: Signer) -> None:
    with requests.Session() as session:
        url = f"{flask_url}/orgs/acme/projects"
        assert session.get(url, headers={"Authorization": f"Bearer {es.token()}"}).status_code == 200
        refused = session.post(url, headers={"Authorization": f"Bearer {es.token()}"})
        assert scope_of(refused.headers["WWW-Authenticate"])["error"] == "insufficient_scope"


def test_two_authorization_header_lines_are_400(flask_url: str, es: Signer) -> None:
    """Two header lines on the wire: the server folds them with a comma, which no b64token holds."""
    parts = urlsplit(flask_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    conn.putrequest("GET", "/orgs/acme/projects")
    conn.putheader("Authorization", f"Bearer {es.token()}")
    conn.putheader("Authorization", f"Bearer {es.token()}")
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 400
    assert scope_of(response.getheader("WWW-Authenticate"))["error"] == "invalid_request"
    conn.close()


# -- the WSGI middleware ----------------------------------------------------------------------------


def echo_app(environ: dict[str, Any], start_response) -> list[bytes]:
    """A plain WSGI app: echoes what the middleware granted and the body it received."""
    access = environ.get(ACCESS_KEY)
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length).decode() if length else ""
    payload = {"scopes": sorted(access.scopes) if access else None, "body": body}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(payload).encode()]


@pytest.fixture(scope="module")
def middleware(es: Signer) -> BearerMiddleware:
    return BearerMiddleware(
        echo_app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es)),
        roles=ROLES,
        membership=lambda s, o: MEMBERS.get((s, o)),
        routes={"/orgs/<org>/projects": PROJECTS, "/orgs/<org>/projects/<int:pid>": {"GET": "project:read"}},
        public=["/health"],
    )


def call(
    app: BearerMiddleware, method: str, path: str, *, token: str | None = None, body: bytes = b"", **env: str
):
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": env.pop("query", ""),
        "SERVER_NAME": "api.test",
        "SERVER_PORT": "443",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)) if body else "",
        **env,
    }
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"], seen["headers"] = int(status.split()[0]), dict(headers)

    chunks = app(environ, start_response)
    return seen["status"], seen["headers"], b"".join(chunks).decode()


def test_middleware_grants_and_exposes_access(middleware: BearerMiddleware, es: Signer) -> None:
    status, _, body = call(middleware, "GET", "/orgs/acme/projects", token=es.token())
    assert status == 200 and json.loads(body)["scopes"] == ["project:read"]
    assert call(middleware, "GET", "/orgs/acme/projects/7/", token=es.token())[0] == 200  # no slash redirect


def test_middleware_status_table(middleware: BearerMiddleware, es: Signer) -> None:
    status, headers, _ = call(middleware, "GET", "/orgs/acme/projects")
    assert status == 401 and scope_of(headers["WWW-Authenticate"]) == {"realm": "api"}
    status, headers, _ = call(middleware, "POST", "/orgs/acme/projects", token=es.token())
    assert status == 403 and scope_of(headers["WWW-Authenticate"])["scope"] == "project:write"
    status, headers, _ = call(middleware, "GET", "/orgs/acme/projects", token=es.token(org_id="globex"))
    assert status == 401 and scope_of(headers["WWW-Authenticate"])["error"] == "invalid_token"
    status, headers, _ = call(middleware, "GET", "/orgs/initech/projects", token=es.token(org_id=None))
    assert status == 401  # org_id null is not a string: invalid token
    status, headers, body = call(middleware, "GET", "/orgs/acme/projects", token="a b")
    assert status == 400 and json.loads(body)["error"] == "invalid_request"


def test_middleware_is_closed_by_default(middleware: BearerMiddleware, es: Signer) -> None:
    status, headers, body = call(middleware, "GET", "/admin", token=es.token())
    assert status == 403 and "WWW-Authenticate" not in headers and json.loads(body)["error"] == "forbidden"
    assert call(middleware, "GET", "/health")[0] == 200


def test_middleware_options_passthrough(middleware: BearerMiddleware) -> None:
    assert call(middleware, "OPTIONS", "/orgs/acme/projects")[0] == 200


def test_middleware_form_bodies(middleware: BearerMiddleware, es: Signer) -> None:
    form = {"CONTENT_TYPE": "application/x-www-form-urlencoded"}
    token = es.token(scope="project:write")
    status, _, _ = call(
        middleware, "POST", "/orgs/acme/projects", token=token, body=b"access_token=x", **form
    )
    assert status == 400
    status, _, body = call(middleware, "POST", "/orgs/acme/projects", token=token, body=b"name=docs", **form)
    assert status == 200 and json.loads(body)["body"] == "name=docs"  # re-buffered, intact
    assert call(middleware, "GET", "/orgs/acme/projects", token=token, query="access_token=x")[0] == 400
