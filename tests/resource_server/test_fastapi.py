"""The FastAPI dependency: a real FastAPI app through Starlette's TestClient and under uvicorn on
loopback, real signed tokens, every challenge parsed back with ``policy.parse_challenges``.

No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations at run
time, and these endpoints name dependencies that are local to the function building the app."""

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import anyio
import httpx
import pytest
import uvicorn
from fastapi import APIRouter, Depends, FastAPI, Form, Request, Security, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from fastapi.security import APIKeyHeader
from fastapi.testclient import TestClient
from openapi_spec_validator import OpenAPIV31SpecValidator
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.middleware.base import BaseHTTPMiddleware

from policy import Access, Challenge, Roles, parse_challenges
from resource_server import IntrospectionVerifier, JWTVerifier, TrustedIssuers, VerifiedToken
from resource_server.dpop import DPoPNonces, DPoPVerifier
from resource_server.fastapi import Refused, ResourceServer
from tests.support import (
    AUDIENCE,
    DROP,
    ISSUER,
    NOW,
    FakeClock,
    JWKSServer,
    ProofSigner,
    Signer,
    dpop_key,
    jwks,
)

RESOURCE = "https://api.test"
METADATA = f"{RESOURCE}/.well-known/oauth-protected-resource"
ROLES = Roles(
    {
        "member": ["project:read"],
        "admin": ["project:read", "project:write", "team:write"],
        # Held by nobody here; it grants the scopes that only alternatives name.
        "owner": ["project:read", "admin:read", "team:admin"],
    }
)
MEMBERS = {("user-1", "acme"): "admin", ("user-2", "acme"): "member", ("user-1", "globex"): "member"}
ALL_SCOPES = "project:read project:write team:write"
PROJECTS = {"GET": "project:read", "POST": "project:write"}
TEAMS = {"GET": "project:read", "PUT": [["project:write", "team:write"], "team:admin"]}


def membership(subject: str, org: str | None) -> str | None:
    return MEMBERS.get((subject, org))


class Item(BaseModel):
    name: str


def make_app(es: Signer, clock: FakeClock | None = None, **options: Any) -> tuple[FastAPI, ResourceServer]:
    """The API under test, with exception handlers and a middleware that would rewrite any
    refusal they were given."""
    clock = clock or FakeClock()
    settings: dict[str, Any] = {
        "verifier": JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock),
        "roles": ROLES,
        "membership": membership,
        "resource": RESOURCE,
        "authorization_servers": ["https://as.test"],
    }
    settings.update(options)
    rs = ResourceServer(**settings)
    app = FastAPI()
    projects = rs.require(PROJECTS)

    @app.get("/orgs/{org}/projects")
    async def list_projects(
        request: Request,
        access: Annotated[Access, Depends(projects)],
        token: Annotated[VerifiedToken, Depends(rs.token)],
    ) -> dict[str, Any]:
        return {
            "subject": access.subject,
            "org": access.org,
            "scopes": sorted(access.scopes),
            "token_subject": token.subject,
            "state_subject": request.state.resource_server_token.subject,
            "state_access": request.state.resource_server_access == access,
        }

    @app.post("/orgs/{org}/projects", status_code=201)
    async def create_project(item: Item, access: Annotated[Access, Depends(projects)]) -> dict[str, Any]:
        return {"created": item.name, "by": access.subject}

    teams = rs.require(TEAMS)  # one map for the path, one endpoint per method

    @app.get("/orgs/{org}/teams")
    async def list_teams(request: Request, access: Annotated[Access, Depends(teams)]) -> dict[str, Any]:
        return {"method": request.method, "scopes": sorted(access.scopes)}

    @app.put("/orgs/{org}/teams")
    async def put_teams(request: Request, access: Annotated[Access, Depends(teams)]) -> dict[str, Any]:
        return {"method": request.method, "scopes": sorted(access.scopes)}

    @app.post("/orgs/{org}/notes")
    async def notes(
        request: Request, access: Annotated[Access, Depends(rs.require({"POST": "project:write"}))]
    ) -> Any:
        raw = (await request.body()).decode()  # first: form() alone would consume a stream unkept
        return {"form": dict(await request.form()), "raw": raw}

    @app.post("/orgs/{org}/labels")
    async def labels(
        name: Annotated[str, Form()],
        access: Annotated[Access, Depends(rs.require({"POST": "project:write"}))],
    ) -> Any:
        return {"name": name}

    @app.get("/orgs/{org}/raw")
    async def raw(access: Annotated[Access, Depends(rs.require({"GET": "project:read"}))]) -> Response:
        return PlainTextResponse(f"raw for {access.subject}")

    @app.get("/me")
    async def me(access: Annotated[Access, Depends(rs.require({"GET": "project:read"}, org=None))]) -> Any:
        return {"subject": access.subject, "org": access.org, "scopes": sorted(access.scopes)}

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(404, "not here")

    # The app's own handlers: each would rewrite a refusal that reached it.
    @app.exception_handler(HTTPException)
    async def http_errors(request: Request, exc: HTTPException) -> Response:
        return PlainTextResponse(f"handled by the app: {exc.detail}", status_code=418)

    @app.exception_handler(Exception)
    async def any_error(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("handled by the app's catch-all", status_code=500)

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> Response:
        return PlainTextResponse("validation", status_code=422)

    class CatchingMiddleware(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: Any) -> Response:
            try:
                return await call_next(request)
            except Exception:
                return PlainTextResponse("caught by the app's middleware", status_code=500)

    app.add_middleware(CatchingMiddleware)
    rs.install(app)
    return app, rs


@pytest.fixture(scope="module")
def api(es: Signer) -> tuple[FastAPI, ResourceServer]:
    return make_app(es)


@pytest.fixture
def client(api: tuple[FastAPI, ResourceServer]) -> Iterator[TestClient]:
    with TestClient(api[0]) as client:
        yield client


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def challenge_of(response: httpx.Response, scheme: str = "Bearer") -> Challenge:
    values = response.headers.get_list("WWW-Authenticate")
    assert len(values) == 1, values
    found = parse_challenges(values[0])
    assert found[0].is_scheme(scheme), found
    return found[0]


def refused(response: httpx.Response, status: int, error: str) -> dict[str, str]:
    """The exact refusal of the status table: status, a JSON body of two members, no-store."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = json.loads(response.content)
    assert set(body) == {"error", "error_description"} and body["error"] == error, body
    assert response.headers["Content-Length"] == str(len(response.content))
    return body


# -- the status table ------------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic dXNlcjpwdw=="}], ids=["none", "basic"])
def test_no_credentials_is_401_with_a_bare_challenge(client: TestClient, headers: dict[str, str]) -> None:
    response = client.get("/orgs/acme/projects", headers=headers)
    refused(response, 401, "unauthorized")
    challenge = challenge_of(response)
    assert challenge.params == {"realm": "api", "resource_metadata": METADATA}


@pytest.mark.parametrize(
    ("headers", "url"),
    [
        ({"Authorization": "Bearer a b"}, "/orgs/acme/projects"),
        ({"Authorization": "Bearer"}, "/orgs/acme/projects"),
        ({}, "/orgs/acme/projects?access_token=abc"),
        ("token", "/orgs/acme/projects?access_token=abc"),
    ],
    ids=["two-tokens", "empty", "query-only", "header-and-query"],
)
def test_malformed_credentials_are_400(client: TestClient, es: Signer, headers: Any, url: str) -> None:
    response = client.get(url, headers=bearer(es.token()) if headers == "token" else headers)
    refused(response, 400, "invalid_request")
    assert challenge_of(response).params["error"] == "invalid_request"


def test_a_token_in_a_form_body_is_400(client: TestClient, es: Signer) -> None:
    for form in ({"access_token": es.token()}, {"name": "x", "access_token": "abc"}):
        response = client.post("/orgs/acme/notes", headers=bearer(es.token(scope=ALL_SCOPES)), data=form)
        refused(response, 400, "invalid_request")
        # The endpoint declaring Form() parameters: FastAPI parsed the form before the dependency.
        response = client.post("/orgs/acme/labels", headers=bearer(es.token(scope=ALL_SCOPES)), data=form)
        refused(response, 400, "invalid_request")


@pytest.mark.parametrize(
    "claims",
    [
        {"iat": NOW - 7200, "exp": NOW - 3600},
        {"aud": "https://elsewhere.test"},
        {"iss": "https://evil.test"},
        {"org_id": "globex"},
    ],
    ids=["expired", "audience", "issuer", "other-org"],
)
def test_bad_tokens_are_401_invalid_token(client: TestClient, es: Signer, claims: dict[str, Any]) -> None:
    response = client.get("/orgs/acme/projects", headers=bearer(es.token(**claims)))
    body = refused(response, 401, "invalid_token")
    challenge = challenge_of(response)
    assert challenge.params["error"] == "invalid_token" and challenge.params["realm"] == "api"
    assert challenge.params["error_description"] == body["error_description"]


def test_a_token_signed_by_another_key_is_401(client: TestClient) -> None:
    from tests.support import es256

    response = client.get("/orgs/acme/projects", headers=bearer(es256("es-1").token()))
    refused(response, 401, "invalid_token")


def test_the_org_of_the_token_binds(client: TestClient, es: Signer) -> None:
    # user-1 is a member of globex too: only the org binding refuses an acme token there.
    response = client.get("/orgs/globex/projects", headers=bearer(es.token(org_id="acme")))
    refused(response, 401, "invalid_token")
    assert "organization" in (challenge_of(response).params["error_description"])
    assert client.get("/orgs/globex/projects", headers=bearer(es.token(org_id="globex"))).status_code == 200


def test_a_missing_scope_a_new_token_could_give_is_403_insufficient_scope(
    client: TestClient, es: Signer
) -> None:
    response = client.post("/orgs/acme/projects", headers=bearer(es.token()), json={"name": "x"})
    refused(response, 403, "insufficient_scope")
    challenge = challenge_of(response)
    assert challenge.params["error"] == "insufficient_scope" and challenge.params["scope"] == "project:write"


@pytest.mark.parametrize(
    ("subject", "url", "method"),
    [("user-3", "/orgs/acme/projects", "GET"), ("user-2", "/orgs/acme/projects", "POST")],
    ids=["not-a-member", "role-lacks-scope"],
)
def test_what_no_token_could_fix_is_403_without_challenge(
    client: TestClient, es: Signer, subject: str, url: str, method: str
) -> None:
    response = client.request(
        method, url, headers=bearer(es.token(sub=subject, scope=ALL_SCOPES)), json={"name": "x"}
    )
    refused(response, 403, "forbidden")
    assert "WWW-Authenticate" not in response.headers


def test_an_unreachable_authorization_server_is_503_with_retry_after(es: Signer) -> None:
    server = JWKSServer(jwks(es))
    server.status = 500
    with server.running():
        remote = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_uri=server.url, clock=FakeClock())
        app, _ = make_app(es, verifier=remote)
        response = TestClient(app).get("/orgs/acme/projects", headers=bearer(es.token()))
    refused(response, 503, "temporarily_unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert "WWW-Authenticate" not in response.headers


# -- what the endpoint gets ------------------------------------------------------------------------


def test_the_endpoint_gets_the_access_and_the_token(client: TestClient, es: Signer) -> None:
    # Effective scopes are the role's ∩ the token's: user-2 (member) asked for everything.
    response = client.get("/orgs/acme/projects", headers=bearer(es.token(sub="user-2", scope=ALL_SCOPES)))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "subject": "user-2",
        "org": "acme",
        "scopes": ["project:read"],
        "token_subject": "user-2",
        "state_subject": "user-2",
        "state_access": True,
    }
    created = client.post(
        "/orgs/acme/projects", headers=bearer(es.token(scope=ALL_SCOPES)), json={"name": "x"}
    )
    assert created.status_code == 201 and created.json() == {"created": "x", "by": "user-1"}


def test_one_path_with_a_map_per_method(client: TestClient, es: Signer) -> None:
    token = es.token(scope=ALL_SCOPES)
    assert client.get("/orgs/acme/teams", headers=bearer(token)).json()["method"] == "GET"
    assert client.put("/orgs/acme/teams", headers=bearer(token)).json()["method"] == "PUT"
    response = client.put("/orgs/acme/teams", headers=bearer(es.token(scope="project:read team:write")))
    refused(response, 403, "insufficient_scope")


def test_a_route_naming_no_org_asks_about_the_tokens_org(client: TestClient, es: Signer) -> None:
    response = client.get("/me", headers=bearer(es.token(org_id="globex")))
    assert response.json() == {"subject": "user-1", "org": "globex", "scopes": ["project:read"]}
    refused(client.get("/me", headers=bearer(es.token(sub="user-3"))), 403, "forbidden")


def test_the_form_body_stays_readable_by_the_endpoint(client: TestClient, es: Signer) -> None:
    headers = bearer(es.token(scope=ALL_SCOPES))
    response = client.post("/orgs/acme/notes", headers=headers, data={"title": "hello", "tag": "a b"})
    assert response.status_code == 200, response.text
    assert response.json() == {"form": {"title": "hello", "tag": "a b"}, "raw": "title=hello&tag=a+b"}
    assert client.post("/orgs/acme/labels", headers=headers, data={"name": "red"}).json() == {"name": "red"}
    other = client.post("/orgs/acme/notes", headers=headers, content=b"just text")  # not a form
    assert other.json()["raw"] == "just text"


def test_a_chunked_form_too_large_to_look_into_reaches_the_endpoint_whole(
    api: tuple[FastAPI, ResourceServer], es: Signer
) -> None:
    """Past 64 KiB a form without Content-Length is not searched for a token (nor buffered): its
    chunks go on to the endpoint, the ones read to find that out first. A direct ASGI call, so
    that the chunks arrive as chunks."""
    chunks = [b"a=" + b"x" * 40_000, b"&b=" + b"y" * 40_000, b"&c=3"]
    messages = [{"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks]
    messages[-1]["more_body"] = False
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/orgs/acme/notes",
        "raw_path": b"/orgs/acme/notes",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"api.test"),
            (b"authorization", f"Bearer {es.token(scope=ALL_SCOPES)}".encode()),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"transfer-encoding", b"chunked"),
        ],
        "server": ("api.test", 443),
        "client": ("127.0.0.1", 50000),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    anyio.run(api[0], scope, receive, send)
    assert sent[0]["status"] == 200, sent
    body = json.loads(b"".join(m.get("body", b"") for m in sent[1:]))
    assert body["raw"] == b"".join(chunks).decode()
    assert body["form"] == {"a": "x" * 40_000, "b": "y" * 40_000, "c": "3"}


def test_a_coroutine_membership_is_awaited(es: Signer) -> None:
    asked: list[tuple[str, str | None]] = []

    async def remote_membership(subject: str, org: str | None) -> str | None:
        asked.append((subject, org))
        return membership(subject, org)

    app, _ = make_app(es, membership=remote_membership)
    with TestClient(app) as client:
        token = es.token(scope=ALL_SCOPES)
        for _ in range(2):  # verified, then from the cache: both ask membership
            assert (
                client.get("/orgs/acme/projects", headers=bearer(token)).json()["scopes"]
                == ALL_SCOPES.split()
            )
        refused(client.get("/orgs/initech/projects", headers=bearer(es.token(org_id=DROP))), 403, "forbidden")
    assert asked == [("user-1", "acme"), ("user-1", "acme"), ("user-1", "initech")]


# -- refusals cannot be rewritten ----------------------------------------------------------------


def test_the_apps_handlers_and_middleware_are_live_but_never_see_a_refusal(
    client: TestClient, es: Signer
) -> None:
    own = client.get("/teapot")
    assert (own.status_code, own.text) == (418, "handled by the app: not here")
    # A token-less request, a bad token, a missing scope: each answered exactly, not by the app.
    refused(client.get("/orgs/acme/projects"), 401, "unauthorized")
    refused(client.get("/orgs/acme/projects", headers=bearer("x.y.z")), 401, "invalid_token")
    refused(client.put("/orgs/acme/teams", headers=bearer(es.token())), 403, "insufficient_scope")
    # The endpoint's own validation runs only after access is granted.
    refused(client.post("/orgs/acme/projects", json={"nameless": 1}), 401, "unauthorized")


def test_without_install_the_status_and_challenge_survive_and_it_is_logged(
    es: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    rs = ResourceServer(
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=FakeClock()),
        roles=ROLES,
        membership=membership,
    )
    app = FastAPI()

    @app.get("/orgs/{org}/projects")
    async def projects(access: Annotated[Access, Depends(rs.require(PROJECTS))]) -> str:
        return access.subject

    with caplog.at_level(logging.ERROR, logger="resource_server"):
        response = TestClient(app).get("/orgs/acme/projects")
    assert response.status_code == 401 and challenge_of(response).params == {"realm": "api"}
    assert "install" in caplog.text
    assert issubclass(Refused, HTTPException)  # FastAPI's handler answers it: never a 500


# -- misconfiguration fails closed ----------------------------------------------------------------


def fresh(es: Signer) -> tuple[FastAPI, ResourceServer]:
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=FakeClock())
    rs = ResourceServer(
        verifier=verifier, roles=ROLES, membership=membership, authorization_servers="https://as.test"
    )
    return FastAPI(), rs


def test_a_route_without_the_org_parameter_is_refused_by_install(es: Signer) -> None:
    app, rs = fresh(es)

    @app.get("/projects")
    async def projects(access: Annotated[Access, Depends(rs.require(PROJECTS))]) -> str:
        return "unreachable"

    with pytest.raises(ValueError, match=r"/projects has no path parameter 'org'"):
        rs.install(app)


def test_a_route_added_after_install_is_checked_at_startup_and_refused_per_request(
    es: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    app, rs = fresh(es)
    rs.install(app)

    @app.get("/tenants/{tenant}/projects")
    async def projects(access: Annotated[Access, Depends(rs.require(PROJECTS))]) -> str:
        return "never the token's own org"

    with (
        pytest.raises(ValueError, match=r"/tenants/\{tenant\}/projects has no path parameter 'org'"),
        TestClient(app),
    ):
        pass
    with caplog.at_level(logging.ERROR, logger="resource_server"):
        response = TestClient(app).get("/tenants/acme/projects", headers=bearer(es.token()))  # no lifespan
    body = refused(response, 403, "forbidden")
    assert body["error_description"] == "this route is misconfigured"
    assert "no path parameter 'org'" in caplog.text


def test_a_scope_no_role_grants_is_refused_by_install_and_at_startup(es: Signer) -> None:
    app, rs = fresh(es)

    @app.get("/orgs/{org}/audit")
    async def audit(
        access: Annotated[Access, Depends(rs.require({"GET": ["project:read", "audit:read"]}))],
    ) -> str:
        return "x"

    with pytest.raises(ValueError) as refused:
        rs.install(app)
    assert str(refused.value) == (
        "the route /orgs/{org}/audit requires audit:read, which no role grants: "
        "grant the scope to a role in Roles, or correct the scope map"
    )
    later, rs = fresh(es)
    rs.install(later)

    @later.get("/orgs/{org}/audit")
    async def audit_later(access: Annotated[Access, Depends(rs.require({"GET": "audit:read"}))]) -> str:
        return "x"

    with pytest.raises(ValueError, match="audit:read, which no role grants"), TestClient(later):
        pass


def test_a_router_prefix_can_hold_the_org(es: Signer) -> None:
    app, rs = fresh(es)
    router = APIRouter(dependencies=[Depends(rs.require({"GET": "project:read"}))])

    @router.get("/projects")
    async def projects(access: Annotated[Access, Depends(rs.require(PROJECTS))]) -> str:
        return access.org or ""

    app.include_router(router, prefix="/orgs/{org}")
    rs.install(app)
    with TestClient(app) as client:
        assert client.get("/orgs/acme/projects", headers=bearer(es.token())).json() == "acme"
        refused(client.get("/orgs/acme/projects"), 401, "unauthorized")


def test_org_none_on_a_route_naming_an_org_is_refused_by_install(es: Signer) -> None:
    app, rs = fresh(es)

    @app.get("/orgs/{org}/projects")
    async def projects(access: Annotated[Access, Depends(rs.require(PROJECTS, org=None))]) -> str:
        return "checked in the token's org, whatever the path says"

    with pytest.raises(ValueError, match=r"path parameter 'org' but .* give org='org'"):
        rs.install(app)


def test_a_websocket_route_is_refused_by_install(es: Signer) -> None:
    app, rs = fresh(es)

    @app.websocket("/orgs/{org}/feed")
    async def feed(websocket: WebSocket, access: Annotated[Access, Depends(rs.require(PROJECTS))]) -> None:
        await websocket.close()

    with pytest.raises(ValueError, match=r"WebSocket route /orgs/\{org\}/feed .*BearerMiddleware"):
        rs.install(app)


def test_a_method_the_map_lacks_is_refused_by_install(es: Signer) -> None:
    app, rs = fresh(es)

    @app.api_route("/orgs/{org}/projects", methods=["GET", "DELETE"])
    async def projects(access: Annotated[Access, Depends(rs.require(PROJECTS))]) -> str:
        return "unreachable"

    with pytest.raises(ValueError, match=r"serves DELETE"):
        rs.install(app)


def test_a_method_the_map_lacks_is_403_when_the_check_was_escaped(es: Signer) -> None:
    app, rs = fresh(es)
    rs.install(app)

    @app.api_route("/orgs/{org}/projects", methods=["GET", "DELETE"])  # after install, no lifespan
    async def projects(access: Annotated[Access, Depends(rs.require(PROJECTS))]) -> str:
        return "read"

    client = TestClient(app)
    token = bearer(es.token(scope=ALL_SCOPES))
    assert client.get("/orgs/acme/projects", headers=token).status_code == 200
    body = refused(client.delete("/orgs/acme/projects", headers=token), 403, "forbidden")
    assert body["error_description"] == "this method is not permitted on this route"


def test_the_token_before_its_requirement_is_refused_by_install(es: Signer) -> None:
    app, rs = fresh(es)

    @app.get("/orgs/{org}/projects")
    async def projects(
        token: Annotated[Any, Depends(rs.token)], access: Annotated[Access, Depends(rs.require(PROJECTS))]
    ) -> str:
        return "unreachable"

    with pytest.raises(ValueError, match=r"rs.token before"):
        rs.install(app)


def test_require_validates_at_declaration(es: Signer) -> None:
    _, rs = fresh(es)
    with pytest.raises(ValueError, match="FETCH"):
        rs.require({"FETCH": "project:read"})
    with pytest.raises(ValueError):
        rs.require({"GET": "project read"})
    with pytest.raises(ValueError, match="org"):
        rs.require(PROJECTS, org="{org}")


# -- OpenAPI -------------------------------------------------------------------------------------


def described(verifier: Any, **install: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the OpenAPI document, the metadata document) of an app protected with ``verifier``
    and nothing else configured; the document validated as OpenAPI 3.1."""
    rs = ResourceServer(verifier=verifier, roles=ROLES, membership=membership, resource=RESOURCE)
    app = FastAPI()

    @app.get("/orgs/{org}/projects")
    async def projects(access: Annotated[Access, Depends(rs.require(PROJECTS))]) -> str:
        return "x"

    rs.install(app, **install)
    document = app.openapi()
    OpenAPIV31SpecValidator(document).validate()
    with TestClient(app) as client:
        metadata = client.get("/.well-known/oauth-protected-resource").json()
    return document, metadata


def scheme_of(document: dict[str, Any]) -> dict[str, Any]:
    requirement = document["paths"]["/orgs/{org}/projects"]["get"]["security"]
    assert requirement == [{"oauth2": ["project:read"]}]
    return document["components"]["securitySchemes"]["oauth2"]  # type: ignore[no-any-return]


def test_a_plain_jwt_verifier_installs_as_http_bearer_with_its_issuer(es: Signer) -> None:
    """Nothing configured but the verifier: its issuer is the authorization server, and the
    document describes a bearer token rather than guess an endpoint such as ``<issuer>/token``."""
    document, metadata = described(JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es)))
    assert metadata["authorization_servers"] == [ISSUER]
    assert scheme_of(document) == {
        "type": "http",
        "scheme": "bearer",
        "description": f"An OAuth 2.0 access token from {ISSUER}",
    }
    assert "/token" not in json.dumps(document)


def test_a_discovering_verifier_points_at_its_issuers_discovery_document(es: Signer) -> None:
    verifier = JWTVerifier(issuer=f"{ISSUER}/realms/acme", audience=AUDIENCE, discover=True)
    document, metadata = described(verifier)
    assert metadata["authorization_servers"] == [f"{ISSUER}/realms/acme"]
    assert scheme_of(document) == {
        "type": "openIdConnect",
        "openIdConnectUrl": f"{ISSUER}/realms/acme/.well-known/openid-configuration",
    }
    # Given explicitly, another document (an RFC 8414 one) wins over the derived one.
    rfc8414 = f"{ISSUER}/.well-known/oauth-authorization-server/realms/acme"
    document, _ = described(verifier, openid_connect_url=rfc8414)
    assert scheme_of(document) == {"type": "openIdConnect", "openIdConnectUrl": rfc8414}


def test_given_endpoints_make_an_oauth2_scheme(es: Signer) -> None:
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es))
    document, _ = described(verifier, token_url="https://as.test/oauth2/v2.0/token")
    assert scheme_of(document) == {
        "type": "oauth2",
        "flows": {
            "clientCredentials": {
                "tokenUrl": "https://as.test/oauth2/v2.0/token",
                "scopes": {"project:read": "", "project:write": ""},
            }
        },
    }
    with pytest.raises(ValueError, match="token_url too"):
        described(verifier, authorization_url="https://as.test/authorize")
    with pytest.raises(ValueError, match="not both"):
        described(verifier, token_url="https://as.test/t", openid_connect_url="https://as.test/d")


def test_every_verifier_kind_names_its_issuers_as_authorization_servers(es: Signer) -> None:
    introspection = IntrospectionVerifier(
        endpoint="https://as.test/introspect",
        client_id="api",
        client_secret="s" * 32,
        audience=AUDIENCE,
        issuer="https://as.test",
    )
    globex = JWTVerifier(issuer="https://globex.test", audience=AUDIENCE, jwks=jwks(es))
    for verifier, servers in (
        (introspection, ["https://as.test"]),
        (TrustedIssuers([globex], opaque=introspection), ["https://globex.test", "https://as.test"]),
    ):
        document, metadata = described(verifier)
        assert metadata["authorization_servers"] == servers
        assert scheme_of(document)["type"] == "http"
    anonymous = IntrospectionVerifier(
        endpoint="https://as.test/introspect", client_id="api", client_secret="s" * 32, audience=AUDIENCE
    )
    document, metadata = described(anonymous)  # no issuer named: none listed, and still a document
    assert "authorization_servers" not in metadata
    assert scheme_of(document) == {"type": "http", "scheme": "bearer"}
    rs = ResourceServer(verifier=anonymous, roles=ROLES, membership=membership)
    rs.install(FastAPI(openapi_url=None))  # no document to describe


def test_dpop_required_is_described_as_the_dpop_scheme(es: Signer) -> None:
    rs = ResourceServer(
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es)),
        roles=ROLES,
        membership=membership,
        dpop=DPoPVerifier(),
        dpop_required=True,
    )
    app = FastAPI()
    rs.install(app)
    assert app.openapi()["components"]["securitySchemes"]["oauth2"]["scheme"] == "DPoP"


def test_openapi_describes_each_alternative_per_method(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    OpenAPIV31SpecValidator(document).validate()
    paths = document["paths"]
    assert paths["/orgs/{org}/projects"]["get"]["security"] == [{"oauth2": ["project:read"]}]
    assert paths["/orgs/{org}/projects"]["post"]["security"] == [{"oauth2": ["project:write"]}]
    teams = paths["/orgs/{org}/teams"]
    assert teams["get"]["security"] == [{"oauth2": ["project:read"]}]
    assert teams["put"]["security"] == [
        {"oauth2": ["project:write", "team:write"]},
        {"oauth2": ["team:admin"]},
    ]
    assert paths["/me"]["get"]["security"] == [{"oauth2": ["project:read"]}]
    assert "security" not in paths["/health"]["get"]
    for item in paths.values():
        for operation in item.values():
            if "security" in operation:
                assert operation["responses"]["401"] == {"$ref": "#/components/responses/BearerUnauthorized"}
                assert operation["responses"]["403"] == {"$ref": "#/components/responses/BearerForbidden"}
    # The org is read by the dependency; the document still declares it.
    assert {"name": "org", "in": "path", "required": True, "schema": {"type": "string"}} in teams["put"][
        "parameters"
    ]
    assert document["components"]["securitySchemes"]["oauth2"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An OAuth 2.0 access token from https://as.test",
    }
    docs = client.get("/docs")  # Swagger UI, reading the same document
    assert docs.status_code == 200 and "/openapi.json" in docs.text


def test_openapi_one_route_serving_several_methods(es: Signer) -> None:
    app, rs = fresh(es)

    @app.api_route("/orgs/{org}/teams", methods=["GET", "PUT"])
    async def teams(access: Annotated[Access, Depends(rs.require(TEAMS))]) -> str:
        return "x"

    rs.install(app)
    with pytest.warns(UserWarning, match="Duplicate Operation ID"):  # FastAPI's own, for such routes
        item = app.openapi()["paths"]["/orgs/{org}/teams"]
    assert item["get"]["security"] == [{"oauth2": ["project:read"]}]
    assert item["put"]["security"] == [
        {"oauth2": ["project:write", "team:write"]},
        {"oauth2": ["team:admin"]},
    ]


def test_openapi_combines_router_requirements_and_the_apps_own_schemes(es: Signer) -> None:
    app, rs = fresh(es)
    api_key = APIKeyHeader(name="X-Client", auto_error=False)
    router = APIRouter(dependencies=[Depends(rs.require({"GET": ["project:read", "admin:read"]}))])

    @router.get("/projects", dependencies=[Security(api_key)])
    async def projects(
        access: Annotated[Access, Depends(rs.require({"GET": ["team:write", "project:read"]}))],
    ) -> str:
        return "x"

    app.include_router(router, prefix="/orgs/{org}")
    rs.install(app, token_url="https://as.test/t", authorization_url="https://as.test/authorize")
    document = app.openapi()
    OpenAPIV31SpecValidator(document).validate()
    # Both requirements must hold (one alternative of each), and the app's API key as well; an
    # alternative holding another whole says nothing more and is left out.
    assert document["paths"]["/orgs/{org}/projects"]["get"]["security"] == [
        {"APIKeyHeader": [], "oauth2": ["project:read"]},
        {"APIKeyHeader": [], "oauth2": ["admin:read", "team:write"]},
    ]
    code = document["components"]["securitySchemes"]["oauth2"]["flows"]["authorizationCode"]
    assert code["authorizationUrl"] == "https://as.test/authorize" and code["tokenUrl"] == "https://as.test/t"
    assert app.openapi() is document  # built once


# -- RFC 9728 metadata -----------------------------------------------------------------------------


def test_the_metadata_document_is_served(client: TestClient) -> None:
    response = client.get("/.well-known/oauth-protected-resource")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    assert response.json() == {
        "resource": RESOURCE,
        "authorization_servers": ["https://as.test"],
        "scopes_supported": ["project:read", "project:write", "team:admin", "team:write"],
        "bearer_methods_supported": ["header"],
    }


def test_a_resource_with_a_path_has_its_metadata_under_it(es: Signer) -> None:
    app, _ = make_app(
        es, resource="https://api.test/v1", dpop=DPoPVerifier(clock=FakeClock()), dpop_required=True
    )
    with TestClient(app) as client:
        assert client.get("/.well-known/oauth-protected-resource").text == "handled by the app: Not Found"
        document = client.get("/.well-known/oauth-protected-resource/v1").json()
        challenge = challenge_of(client.get("/orgs/acme/projects"), "DPoP")
    assert document["resource"] == "https://api.test/v1"
    assert document["dpop_bound_access_tokens_required"] is True
    assert "ES256" in document["dpop_signing_alg_values_supported"]
    assert challenge.params["resource_metadata"] == "https://api.test/.well-known/oauth-protected-resource/v1"


# -- DPoP --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> ProofSigner:
    return dpop_key("ES256")


def dpop_app(es: Signer, clock: FakeClock, nonces: DPoPNonces | None = None) -> TestClient:
    app, _ = make_app(es, clock, dpop=DPoPVerifier(clock=clock, nonces=nonces))
    return TestClient(app)


def test_a_bound_token_with_its_proof_is_accepted(es: Signer, key: ProofSigner) -> None:
    clock = FakeClock()
    client = dpop_app(es, clock)
    token = es.token(cnf={"jkt": key.jkt})
    url = f"{RESOURCE}/orgs/acme/projects"
    for _ in range(2):  # verified, then from the cache: a new proof each time
        proof = key.proof("GET", url, access_token=token)
        response = client.get(
            "/orgs/acme/projects", headers={"Authorization": f"DPoP {token}", "DPoP": proof}
        )
        assert response.status_code == 200, response.text
    replayed = client.get("/orgs/acme/projects", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    refused(replayed, 401, "invalid_dpop_proof")
    assert challenge_of(replayed, "DPoP").params["error"] == "invalid_dpop_proof"


def test_dpop_refusals(es: Signer, key: ProofSigner) -> None:
    client = dpop_app(es, FakeClock())
    token = es.token(cnf={"jkt": key.jkt})
    unproven = client.get("/orgs/acme/projects", headers={"Authorization": f"DPoP {token}"})
    refused(unproven, 401, "invalid_dpop_proof")
    assert "ES256" in (challenge_of(unproven, "DPoP").params["algs"])
    downgraded = client.get("/orgs/acme/projects", headers=bearer(token))
    refused(downgraded, 401, "invalid_token")
    wrong_url = key.proof("GET", f"{RESOURCE}/orgs/acme/teams", access_token=token)
    response = client.get(
        "/orgs/acme/projects", headers={"Authorization": f"DPoP {token}", "DPoP": wrong_url}
    )
    refused(response, 401, "invalid_dpop_proof")
    # No credentials: the Bearer challenge, then the DPoP one with its algorithms.
    schemes = [
        c.scheme for c in parse_challenges(client.get("/orgs/acme/projects").headers["WWW-Authenticate"])
    ]
    assert schemes == ["Bearer", "DPoP"]


def test_dpop_nonces_are_demanded_then_refreshed_on_any_response(es: Signer, key: ProofSigner) -> None:
    clock = FakeClock()
    nonces = DPoPNonces(b"f" * 32, ttl=60)
    client = dpop_app(es, clock, nonces)
    token = es.token(cnf={"jkt": key.jkt})

    def get(path: str, nonce: str | None) -> httpx.Response:
        proof = key.proof(
            "GET",
            f"{RESOURCE}{path}",
            access_token=token,
            now=int(clock()),
            **({"nonce": nonce} if nonce else {}),
        )
        return client.get(path, headers={"Authorization": f"DPoP {token}", "DPoP": proof})

    first = get("/orgs/acme/projects", None)
    refused(first, 401, "use_dpop_nonce")
    assert challenge_of(first, "DPoP").params["error"] == "use_dpop_nonce"
    nonce = first.headers["DPoP-Nonce"]
    granted = get("/orgs/acme/projects", nonce)
    assert granted.status_code == 200 and "DPoP-Nonce" not in granted.headers
    clock.advance(60)  # the window turns: the old nonce still works and a fresh one comes back
    for path in ("/orgs/acme/projects", "/orgs/acme/raw"):  # a model, and a Response object
        later = get(path, nonce)
        assert later.status_code == 200 and later.headers["DPoP-Nonce"] == nonces.current(clock())


# -- under uvicorn, on loopback --------------------------------------------------------------------


@contextmanager
def serve(app: Callable[..., Any]) -> Iterator[str]:
    """Run ``app`` under uvicorn on a loopback port the OS picks; yields its base URL. The socket
    listens before uvicorn starts, so the first request waits in its backlog, not in a loop."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def test_end_to_end_under_uvicorn(es: Signer, key: ProofSigner) -> None:
    clock = FakeClock()
    app, _ = make_app(es, clock, dpop=DPoPVerifier(clock=clock))
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        response = http.get("/orgs/acme/projects")
        refused(response, 401, "unauthorized")
        assert [c.scheme for c in parse_challenges(response.headers["WWW-Authenticate"])] == [
            "Bearer",
            "DPoP",
        ]
        assert http.get("/orgs/acme/projects", headers=bearer(es.token())).json()["subject"] == "user-1"
        refused(http.put("/orgs/acme/teams", headers=bearer(es.token())), 403, "insufficient_scope")
        writer = bearer(es.token(scope=ALL_SCOPES))
        form = http.post("/orgs/acme/notes", headers=writer, data={"a": "1"})
        assert form.json()["form"] == {"a": "1"}
        form_headers = {**writer, "Content-Type": "application/x-www-form-urlencoded"}
        chunked = http.post("/orgs/acme/notes", headers=form_headers, content=iter([b"a=1", b"&b=2"]))
        assert chunked.json()["form"] == {"a": "1", "b": "2"}
        token = es.token(cnf={"jkt": key.jkt})
        proof = key.proof("GET", f"{RESOURCE}/orgs/acme/projects", access_token=token)
        dpop = http.get("/orgs/acme/projects", headers={"Authorization": f"DPoP {token}", "DPoP": proof})
        assert dpop.status_code == 200, dpop.text
        OpenAPIV31SpecValidator(http.get("/openapi.json").json()).validate()
