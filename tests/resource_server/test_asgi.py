"""BearerMiddleware for ASGI apps: a real Starlette app, through Starlette's TestClient and under
uvicorn on loopback, with real signed tokens and every challenge parsed back."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocket

from policy import Challenge, Roles, ScopeMap, parse_challenges
from resource_server import JWTVerifier, TrustedIssuers, asgi
from resource_server.asgi import ACCESS_KEY, TOKEN_KEY, BearerMiddleware
from resource_server.dpop import DPoPNonces, DPoPVerifier
from resource_server.wsgi import Route as Protected
from tests.support import AUDIENCE, DROP, ISSUER, NOW, FakeClock, ProofSigner, SlowJWKS, dpop_key, es256, jwks

SIGNER = es256("asgi-1")
CLOCK = FakeClock()
ROLES = Roles({"member": ["project:read"], "admin": ["project:read", "project:write", "team:write"]})
MEMBERS = {("user-1", "acme"): "admin", ("user-2", "acme"): "member", ("user-1", "globex"): "member"}
VERIFIER = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=CLOCK)
PROJECTS = ScopeMap({"GET": "project:read", "POST": "project:write"})
ROUTES: dict[str, Any] = {
    "/orgs/{org}/projects": PROJECTS,
    "/orgs/{org}/projects/{project:int}": {"GET": "project:read", "DELETE": "project:write"},
    "/orgs/{org}/teams/": {"PUT": [["project:write", "team:write"]]},
    "/orgs/{org}/feed": {"GET": "project:read"},
    "/me": Protected({"GET": "project:read"}, org=None),
}
PUBLIC = ("/health", "/docs/{rest:path}", "/lobby")
ALL_SCOPES = "project:read project:write team:write"
RESOURCE = "https://api.test"


def membership(subject: str, org: str | None) -> str | None:
    return MEMBERS.get((subject, org))


def token(**overrides: Any) -> str:
    return SIGNER.token(**overrides)


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


# -- the wrapped application: a plain Starlette app that says what it was given -------------------


async def echo(request: Request) -> JSONResponse:
    access = getattr(request.state, ACCESS_KEY, None)
    verified = getattr(request.state, TOKEN_KEY, None)
    body = await request.body()
    form = None
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = dict(await request.form())
    return JSONResponse(
        {
            "path": request.url.path,
            "method": request.method,
            "scopes": None if access is None else sorted(access.scopes),
            "subject": None if access is None else access.subject,
            "org": None if access is None else access.org,
            "token_subject": None if verified is None else verified.subject,
            "body": body.decode("latin-1"),
            "form": form,
            "lifespan": getattr(request.state, "lifespan", None),
            "thread": threading.current_thread().name,
        }
    )


async def feed(websocket: WebSocket) -> None:
    await websocket.accept()
    access = getattr(websocket.state, ACCESS_KEY, None)
    await websocket.send_json({"subject": None if access is None else access.subject})
    await websocket.close()


def recording_lifespan(events: list[str]) -> Any:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, str]]:
        events.append("startup")
        yield {"lifespan": "ready"}
        events.append("shutdown")

    return lifespan


def starlette_app(events: list[str] | None = None) -> Starlette:
    return Starlette(
        routes=[
            Route("/orgs/{org}/projects", echo, methods=["GET", "POST", "DELETE"]),
            Route("/orgs/{org}/projects/{project:int}", echo, methods=["GET", "DELETE", "PATCH"]),
            Route("/orgs/{org}/teams/", echo, methods=["PUT"]),
            Route("/tenants/{org:int}/projects", echo),
            Route("/me", echo),
            Route("/health", echo),
            Route("/docs/{rest:path}", echo),
            Route("/unlisted", echo),
            WebSocketRoute("/orgs/{org}/feed", feed),
            WebSocketRoute("/lobby", feed),
            WebSocketRoute("/backstage", feed),
        ],
        # Inside the middleware: preflights pass through to it, the app answers them.
        middleware=[Middleware(CORSMiddleware, allow_origins=["https://app.test"], allow_methods=["*"])],
        lifespan=recording_lifespan([] if events is None else events),
    )


def middleware(app: Any = None, **options: Any) -> BearerMiddleware:
    settings: dict[str, Any] = {
        "verifier": VERIFIER,
        "roles": ROLES,
        "membership": membership,
        "routes": ROUTES,
        "public": PUBLIC,
    }
    settings.update(options)
    return BearerMiddleware(starlette_app() if app is None else app, **settings)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(middleware()) as test_client:  # runs the lifespan through the middleware
        yield test_client


def challenge_of(response: Any, scheme: str = "Bearer") -> Challenge:
    values = response.headers.get_list("www-authenticate")
    assert len(values) == 1, values
    found = {c.scheme: c for c in parse_challenges(values[0])}
    return found[scheme]


def error_body(response: Any, error: str) -> dict[str, str]:
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == error and body["error_description"]
    assert response.headers["content-length"] == str(len(response.content))
    return body


def assert_refused(response: Any, status: int, error: str, challenge_error: str | None = "absent") -> None:
    assert response.status_code == status, response.text
    error_body(response, error)
    if challenge_error == "absent":
        assert "www-authenticate" not in response.headers
        return
    challenge = challenge_of(response)
    assert challenge.get("realm") == "api"
    assert challenge.get("error") == challenge_error


def granted(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


# -- allowed requests and what the app sees -------------------------------------------------------


def test_the_access_and_the_token_are_in_request_state(client: TestClient) -> None:
    body = granted(client.get("/orgs/acme/projects", headers=bearer(token())))
    assert body["scopes"] == ["project:read"]
    assert body["subject"] == body["token_subject"] == "user-1"
    assert body["org"] == "acme"
    assert body["lifespan"] == "ready"  # the lifespan's state is still there beside them


def test_typed_url_variables_and_several_routes(client: TestClient) -> None:
    assert granted(client.get("/orgs/acme/projects/7", headers=bearer(token())))["path"] == (
        "/orgs/acme/projects/7"
    )
    response = client.delete("/orgs/acme/projects/7", headers=bearer(token(scope=ALL_SCOPES)))
    assert granted(response)["scopes"] == ["project:read", "project:write", "team:write"]


def test_route_without_org_asks_about_the_token_org(client: TestClient) -> None:
    assert granted(client.get("/me", headers=bearer(token(org_id="globex"))))["org"] == "globex"
    assert_refused(client.get("/me", headers=bearer(token(org_id=DROP))), 403, "forbidden")


@pytest.mark.parametrize(
    "path", ["/orgs/acme/projects/", "/orgs/acme/teams", "/orgs/acme/teams/", "/orgs/acme/projects/7/"]
)
def test_trailing_slash_variants_are_checked_not_redirected(client: TestClient, path: str) -> None:
    method = "PUT" if "teams" in path else "GET"
    assert client.request(method, path).status_code == 401  # protected just the same
    # With a token the request reaches the app, which routes (or redirects) it as it likes.
    response = client.request(method, path, headers=bearer(token(scope=ALL_SCOPES)), follow_redirects=False)
    assert response.status_code in (200, 307), response.text


def test_head_falls_back_to_get(client: TestClient) -> None:
    assert client.head("/orgs/acme/projects", headers=bearer(token())).status_code == 200
    assert client.head("/orgs/acme/projects").status_code == 401


def test_the_org_is_what_the_app_sees_after_its_convertor() -> None:
    """``{org:int}``: /tenants/007 is tenant 7 to the app, so it is checked as 7."""
    members = {("user-1", "7"): "member"}
    wrapped = middleware(
        routes={"/tenants/{org:int}/projects": {"GET": "project:read"}},
        membership=lambda subject, org: members.get((subject, org)),
    )
    client = TestClient(wrapped)
    assert granted(client.get("/tenants/007/projects", headers=bearer(token(org_id="7"))))["org"] == "7"
    assert_refused(client.get("/tenants/x/projects", headers=bearer(token(org_id="7"))), 403, "forbidden")


# -- public and uncovered paths -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/health", "/docs/index.html", "/docs/a/b/c"])
def test_public_paths_pass_without_auth(client: TestClient, path: str) -> None:
    body = granted(client.get(path))
    assert body["scopes"] is None and body["path"] == path


def test_public_paths_ignore_bad_credentials(client: TestClient) -> None:
    assert client.get("/health", headers={"Authorization": "Bearer"}).status_code == 200
    assert client.get("/health?access_token=x").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/orgs",
        "/orgs/acme",
        "/orgs/acme/projects/x",
        "/orgs/acme//projects",
        "/healthz",
        "/docs",
        "/unlisted",
    ],
)
def test_uncovered_paths_are_forbidden(client: TestClient, path: str) -> None:
    assert_refused(client.get(path, headers=bearer(token(scope=ALL_SCOPES))), 403, "forbidden")
    response = client.get(path)
    assert_refused(response, 403, "forbidden")
    assert response.json()["error_description"] == "no access policy covers this path"


def test_a_protected_route_wins_over_a_public_pattern() -> None:
    client = TestClient(middleware(public=("/{rest:path}",)))
    assert client.get("/orgs/acme/projects").status_code == 401
    assert client.get("/orgs/acme/projects/").status_code == 401  # its slash variant too
    assert granted(client.get("/unlisted"))["scopes"] is None


def test_under_a_mount_the_path_is_matched_below_its_root_path() -> None:
    outer = Starlette(routes=[Mount("/api", app=middleware())])
    client = TestClient(outer)
    assert client.get("/api/orgs/acme/projects").status_code == 401
    body = granted(client.get("/api/orgs/acme/projects", headers=bearer(token())))
    assert body["org"] == "acme" and body["path"] == "/api/orgs/acme/projects"


# -- the status and header table ------------------------------------------------------------------


def test_no_credentials(client: TestClient) -> None:
    response = client.get("/orgs/acme/projects")
    assert response.status_code == 401
    assert dict(challenge_of(response).params) == {"realm": "api"}
    error_body(response, "unauthorized")


def test_another_scheme(client: TestClient) -> None:
    response = client.get("/orgs/acme/projects", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert dict(challenge_of(response).params) == {"realm": "api"}


def test_realm_and_resource_metadata_in_challenges() -> None:
    metadata = "https://api.test/.well-known/oauth-protected-resource"
    client = TestClient(middleware(realm="widgets", resource_metadata=metadata))
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
        es256("asgi-1").token(),
        "abc.def.ghi",
        "x" * 9000,
    ],
    ids=["iss", "aud", "typ", "expired", "kid", "signature", "garbage", "too-large"],
)
def test_invalid_tokens(client: TestClient, raw: str) -> None:
    response = client.get("/orgs/acme/projects", headers=bearer(raw))
    assert_refused(response, 401, "invalid_token", "invalid_token")
    assert challenge_of(response).get("error_description")
    assert raw not in response.text


def test_token_bound_to_another_org(client: TestClient) -> None:
    response = client.get("/orgs/acme/projects", headers=bearer(token(org_id="globex")))
    assert_refused(response, 401, "invalid_token", "invalid_token")
    assert "organization" in (challenge_of(response).get("error_description") or "")


@pytest.mark.parametrize("value", ["Bearer", "Bearer a b", "Bearer a@b", "Bearer a,Bearer b", "Bearer é"])
def test_malformed_credentials(client: TestClient, value: str) -> None:
    response = client.get("/orgs/acme/projects", headers={"Authorization": value.encode("utf-8")})
    assert_refused(response, 400, "invalid_request", "invalid_request")


def test_two_authorization_headers_are_seen_as_two(client: TestClient) -> None:
    raw = token()
    headers = [("Authorization", f"Bearer {raw}"), ("Authorization", f"Bearer {raw}")]
    response = client.get("/orgs/acme/projects", headers=headers)
    assert_refused(response, 400, "invalid_request", "invalid_request")


def test_token_in_header_and_query(client: TestClient) -> None:
    raw = token()
    response = client.get(f"/orgs/acme/projects?access_token={raw}", headers=bearer(raw))
    assert_refused(response, 400, "invalid_request", "invalid_request")


def test_lone_query_token(client: TestClient) -> None:
    response = client.get(f"/orgs/acme/projects?x=1&access_token={token()}")
    assert_refused(response, 400, "invalid_request", "invalid_request")


def test_token_in_header_and_form_body(client: TestClient) -> None:
    raw = token(scope="project:write")
    response = client.post("/orgs/acme/projects", headers=bearer(raw), data={"access_token": raw, "a": "b"})
    assert_refused(response, 400, "invalid_request", "invalid_request")


def test_form_content_type_with_parameters_is_inspected(client: TestClient) -> None:
    raw = token(scope="project:write")
    response = client.post(
        "/orgs/acme/projects",
        headers={**bearer(raw), "Content-Type": "Application/X-WWW-Form-Urlencoded ; charset=utf-8"},
        content=f"access_token={raw}",
    )
    assert_refused(response, 400, "invalid_request", "invalid_request")


def test_an_innocent_query_string_is_no_obstacle(client: TestClient) -> None:
    assert granted(client.get("/orgs/acme/projects?page=2&token_type=x", headers=bearer(token())))


def test_a_form_body_reaches_the_app_intact(client: TestClient) -> None:
    form = "name=apollo&note=caf%C3%A9+%26+more&empty="
    response = client.post(
        "/orgs/acme/projects",
        headers={**bearer(token(scope="project:write")), "Content-Type": "application/x-www-form-urlencoded"},
        content=form,
    )
    body = granted(response)
    assert body["body"] == form
    assert body["form"] == {"name": "apollo", "note": "café & more", "empty": ""}


def test_a_large_form_body_is_passed_on_uninspected(client: TestClient) -> None:
    form = urlencode({"blob": "z" * 70_000})
    response = client.post(
        "/orgs/acme/projects",
        headers={**bearer(token(scope="project:write")), "Content-Type": "application/x-www-form-urlencoded"},
        content=form,
    )
    assert granted(response)["body"] == form


def test_under_scoped_token(client: TestClient) -> None:
    response = client.post("/orgs/acme/projects", headers=bearer(token()))
    assert_refused(response, 403, "insufficient_scope", "insufficient_scope")
    assert challenge_of(response).get("scope") == "project:write"
    partial = client.put("/orgs/acme/teams/", headers=bearer(token(scope="project:write")))
    assert challenge_of(partial).get("scope") == "project:write team:write"


def test_not_a_member(client: TestClient) -> None:
    assert_refused(client.get("/orgs/initech/projects", headers=bearer(token(org_id=DROP))), 403, "forbidden")
    assert_refused(client.get("/orgs/acme/projects", headers=bearer(token(sub="user-9"))), 403, "forbidden")


def test_role_lacks_the_scope(client: TestClient) -> None:
    response = client.post("/orgs/acme/projects", headers=bearer(token(sub="user-2", scope="project:write")))
    assert_refused(response, 403, "forbidden")
    assert response.json()["error_description"] == "the member's role does not permit this request"


def test_method_not_in_the_scope_map(client: TestClient) -> None:
    response = client.delete("/orgs/acme/projects", headers=bearer(token(scope=ALL_SCOPES)))
    assert_refused(response, 403, "forbidden")
    assert response.json()["error_description"] == "this method is not permitted on this route"
    assert_refused(
        client.patch("/orgs/acme/projects/7", headers=bearer(token(scope=ALL_SCOPES))), 403, "forbidden"
    )


@contextmanager
def refused_port() -> Iterator[int]:
    """A loopback port that is bound, never listening, for as long as it is used: connecting is
    refused for sure, and no other process can take the port in between."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_verification_that_cannot_happen_is_503_with_retry_after() -> None:
    with refused_port() as port:
        unreachable = JWTVerifier(
            issuer=ISSUER, audience=AUDIENCE, jwks_uri=f"http://127.0.0.1:{port}/jwks", clock=CLOCK
        )
        response = TestClient(middleware(verifier=unreachable)).get(
            "/orgs/acme/projects", headers=bearer(token())
        )
    assert_refused(response, 503, "temporarily_unavailable")
    assert int(response.headers["retry-after"]) >= 1


def test_an_exception_inside_verification_is_401() -> None:
    def broken_clock() -> float:
        raise OSError("no clock")

    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=broken_clock)
    response = TestClient(middleware(verifier=verifier)).get("/orgs/acme/projects", headers=bearer(token()))
    assert_refused(response, 401, "invalid_token", "invalid_token")


# -- CORS, lifespan, other scopes -----------------------------------------------------------------


def test_a_cors_preflight_passes_to_the_app(client: TestClient) -> None:
    response = client.options(
        "/orgs/acme/projects",
        headers={"Origin": "https://app.test", "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == "https://app.test"
    assert "www-authenticate" not in response.headers


def test_other_options_requests_are_checked(client: TestClient) -> None:
    """No view runs unauthenticated: a plain OPTIONS needs credentials like any method."""
    assert client.options("/orgs/acme/projects").status_code == 401


def test_options_mapped_explicitly_is_checked_even_as_a_preflight() -> None:
    client = TestClient(middleware(routes={"/orgs/{org}/projects": {"OPTIONS": "project:read"}}))
    preflight = {"Origin": "https://app.test", "Access-Control-Request-Method": "GET"}
    assert client.options("/orgs/acme/projects", headers=preflight).status_code == 401
    assert client.options("/orgs/acme/projects", headers={**preflight, **bearer(token())}).status_code == 200


def test_with_cors_outside_refusals_carry_cors_headers_too() -> None:
    app = Starlette(
        routes=[Route("/orgs/{org}/projects", echo)],
        middleware=[
            Middleware(CORSMiddleware, allow_origins=["https://app.test"], allow_headers=["authorization"]),
            Middleware(
                BearerMiddleware,
                verifier=VERIFIER,
                roles=ROLES,
                membership=membership,
                routes={"/orgs/{org}/projects": PROJECTS},
            ),
        ],
    )
    client = TestClient(app)
    refused = client.get("/orgs/acme/projects", headers={"Origin": "https://app.test"})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "https://app.test"  # the browser may read it
    allowed = client.get("/orgs/acme/projects", headers={"Origin": "https://app.test", **bearer(token())})
    assert granted(allowed)["subject"] == "user-1"


def test_the_lifespan_passes_through() -> None:
    events: list[str] = []
    with TestClient(middleware(starlette_app(events))) as client:
        assert events == ["startup"]
        assert granted(client.get("/health"))["lifespan"] == "ready"
    assert events == ["startup", "shutdown"]


# -- WebSockets: the handshake is checked like a GET ----------------------------------------------


def test_a_websocket_with_a_token_is_accepted_with_its_access(client: TestClient) -> None:
    with client.websocket_connect("/orgs/acme/feed", headers=bearer(token())) as websocket:
        assert websocket.receive_json() == {"subject": "user-1"}


def websocket_refusal(client: TestClient, path: str, headers: dict[str, str] | None = None) -> Any:
    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        client.websocket_connect(path, headers=dict(headers or {})),
    ):
        pass
    return refused.value


def test_a_refused_websocket_gets_the_refusal_as_http(client: TestClient) -> None:
    anonymous = websocket_refusal(client, "/orgs/acme/feed")
    assert anonymous.status_code == 401
    assert dict(challenge_of(anonymous).params) == {"realm": "api"}
    assert websocket_refusal(client, "/backstage", bearer(token())).status_code == 403  # uncovered
    queried = websocket_refusal(client, f"/orgs/acme/feed?access_token={token()}")
    assert queried.status_code == 400 and challenge_of(queried).get("error") == "invalid_request"
    other_org = websocket_refusal(client, "/orgs/acme/feed", bearer(token(org_id="globex")))
    assert other_org.status_code == 401 and challenge_of(other_org).get("error") == "invalid_token"


def test_a_public_websocket_passes(client: TestClient) -> None:
    with client.websocket_connect("/lobby") as websocket:
        assert websocket.receive_json() == {"subject": None}


def test_without_the_http_response_extension_a_websocket_is_closed_unaccepted() -> None:
    wrapped = middleware()
    sent: list[dict[str, Any]] = []
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    wrapped.app = app

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "websocket", "path": "/orgs/acme/feed", "headers": [], "query_string": b""}
    asyncio.run(wrapped(scope, receive, send))
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": "unauthorized"}]
    assert reached == []


# -- the event loop: cached tokens and keys in hand on it, waiting off it ------------------------------------


def test_a_cached_token_is_decided_on_the_loop_and_a_new_one_with_its_keys_in_hand_verified_there() -> None:
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=CLOCK)
    verified_in: list[str] = []
    asked_in: list[str] = []
    original = verifier.verify_uncached

    def verify(raw: str, *, wait: bool = True) -> Any:
        verified_in.append(threading.current_thread().name)
        return original(raw, wait=wait)

    def recording(subject: str, org: str | None) -> str | None:
        asked_in.append(threading.current_thread().name)
        return membership(subject, org)

    verifier.verify_uncached = verify  # type: ignore[method-assign]
    client = TestClient(middleware(verifier=verifier, membership=recording))
    headers = bearer(token())
    loop_threads = {granted(client.get("/orgs/acme/projects", headers=headers))["thread"] for _ in range(3)}
    # A JWK Set in memory: nothing can wait, so no thread hop (it costs as much as the signature).
    assert len(verified_in) == 1 and verified_in[0] in loop_threads  # once, on the loop
    assert set(asked_in) <= loop_threads and len(asked_in) == 3  # membership: on the loop, each time


def test_membership_may_be_a_coroutine_function() -> None:
    asked: list[tuple[str, str | None]] = []

    async def coroutine_membership(subject: str, org: str | None) -> str | None:
        asked.append((subject, org))
        await asyncio.sleep(0)
        return membership(subject, org)

    client = TestClient(middleware(membership=coroutine_membership))
    raw = token()
    assert granted(client.get("/orgs/acme/projects", headers=bearer(raw)))["scopes"] == ["project:read"]
    assert granted(client.get("/orgs/acme/projects", headers=bearer(raw)))["org"] == "acme"  # cached
    assert_refused(client.get("/orgs/initech/projects", headers=bearer(token(org_id=DROP))), 403, "forbidden")
    assert asked == [("user-1", "acme"), ("user-1", "acme"), ("user-1", "initech")]


def test_no_body_is_read_without_a_query_or_a_form() -> None:
    """The request body belongs to the app: unless there is a query string or a form to look
    into, the middleware never calls ``receive``."""
    wrapped = middleware()
    received: list[str] = []
    bodies: list[bytes] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        bodies.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    wrapped.app = app

    def receiver(body: bytes) -> Any:
        async def receive() -> dict[str, Any]:
            received.append("receive")
            return {"type": "http.request", "body": body, "more_body": False}

        return receive

    async def send(message: dict[str, Any]) -> None:
        pass

    def scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        authorization = (b"authorization", f"Bearer {token(scope='project:write')}".encode())
        return {
            "type": "http",
            "method": "POST",
            "path": "/orgs/acme/projects",
            "query_string": b"",
            "headers": [authorization, *headers],
        }

    asyncio.run(wrapped(scope([(b"content-type", b"application/json")]), receiver(b"{}"), send))
    assert received == ["receive"] and bodies == [b"{}"]  # once: the app's own read
    asyncio.run(
        wrapped(scope([(b"content-type", b"application/x-www-form-urlencoded")]), receiver(b"a=1"), send)
    )
    assert received == ["receive"] * 2 and bodies == [b"{}", b"a=1"]  # read once, replayed to the app


def test_a_body_cut_short_by_a_disconnect_is_a_400() -> None:
    wrapped = middleware()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/orgs/acme/projects",
        "query_string": b"",
        "headers": [(b"content-type", b"application/x-www-form-urlencoded")],
    }
    asyncio.run(wrapped(scope, receive, send))
    assert sent[0]["status"] == 400
    assert json.loads(sent[1]["body"])["error"] == "invalid_request"


# -- DPoP (RFC 9449) ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key() -> ProofSigner:
    return dpop_key("ES256")


def dpop_client(clock: FakeClock, **options: Any) -> TestClient:
    nonces = options.pop("nonces", None)
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=clock)
    return TestClient(
        middleware(
            verifier=verifier, dpop=DPoPVerifier(clock=clock, nonces=nonces), resource=RESOURCE, **options
        )
    )


def dpop_headers(raw: str, proof: str) -> dict[str, str]:
    return {"Authorization": f"DPoP {raw}", "DPoP": proof}


URL = f"{RESOURCE}/orgs/acme/projects"


def test_dpop_accepted_and_refused(key: ProofSigner) -> None:
    client = dpop_client(FakeClock(NOW))
    raw = token(cnf={"jkt": key.jkt})
    proof = key.proof("GET", URL, access_token=raw)
    assert granted(client.get("/orgs/acme/projects", headers=dpop_headers(raw, proof)))["subject"] == "user-1"
    again = key.proof("GET", URL, access_token=raw)  # the warm path checks every new proof
    assert granted(client.get("/orgs/acme/projects", headers=dpop_headers(raw, again)))["org"] == "acme"

    def refused(headers: dict[str, str], error: str, scheme: str = "DPoP") -> Challenge:
        response = client.get("/orgs/acme/projects", headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"] == error
        assert raw not in response.text
        challenge = challenge_of(response, scheme)
        assert challenge.get("error") == error
        return challenge

    replayed = refused(dpop_headers(raw, proof), "invalid_dpop_proof")
    assert replayed.get("algs") == "ES256 EdDSA PS256 RS256"
    refused({"Authorization": f"DPoP {raw}"}, "invalid_dpop_proof")  # no proof
    refused(dpop_headers(raw, key.proof("POST", URL, access_token=raw)), "invalid_dpop_proof")
    refused(
        dpop_headers(raw, key.proof("GET", f"{RESOURCE}/orgs/globex/projects", access_token=raw)),
        "invalid_dpop_proof",
    )
    refused(dpop_headers(raw, dpop_key().proof("GET", URL, access_token=raw)), "invalid_token")  # another key
    refused(bearer(raw), "invalid_token", scheme="Bearer")  # a bound token is never a bearer token


def test_dpop_without_credentials_offers_both_challenges(key: ProofSigner) -> None:
    response = dpop_client(FakeClock(NOW)).get("/orgs/acme/projects")
    assert response.status_code == 401
    found = {c.scheme: c for c in parse_challenges(response.headers["www-authenticate"])}
    assert set(found) == {"Bearer", "DPoP"} and "error" not in found["DPoP"].params


def test_dpop_required_refuses_bearer_tokens(key: ProofSigner) -> None:
    client = dpop_client(FakeClock(NOW), dpop_required=True)
    response = client.get("/orgs/acme/projects", headers=bearer(token()))
    assert response.status_code == 401 and challenge_of(response, "DPoP").get("error") == "invalid_token"
    raw = token(cnf={"jkt": key.jkt})
    ok = client.get("/orgs/acme/projects", headers=dpop_headers(raw, key.proof("GET", URL, access_token=raw)))
    assert granted(ok)["subject"] == "user-1"


def test_dpop_under_scoped_is_a_dpop_step_up(key: ProofSigner) -> None:
    client = dpop_client(FakeClock(NOW))
    raw = token(cnf={"jkt": key.jkt})
    response = client.post(
        "/orgs/acme/projects", headers=dpop_headers(raw, key.proof("POST", URL, access_token=raw))
    )
    assert response.status_code == 403
    challenge = challenge_of(response, "DPoP")
    assert challenge.get("error") == "insufficient_scope" and challenge.get("scope") == "project:write"


def test_dpop_nonces_are_demanded_then_refreshed_on_the_apps_response(key: ProofSigner) -> None:
    clock = FakeClock(NOW)
    nonces = DPoPNonces(b"a" * 32, ttl=60)
    client = dpop_client(clock, nonces=nonces)
    raw = token(cnf={"jkt": key.jkt})
    first = client.get(
        "/orgs/acme/projects", headers=dpop_headers(raw, key.proof("GET", URL, access_token=raw))
    )
    assert first.status_code == 401 and challenge_of(first, "DPoP").get("error") == "use_dpop_nonce"
    nonce = first.headers["dpop-nonce"]
    ok = client.get(
        "/orgs/acme/projects", headers=dpop_headers(raw, key.proof("GET", URL, access_token=raw, nonce=nonce))
    )
    assert granted(ok) and "dpop-nonce" not in ok.headers
    clock.advance(60)  # the window turns: the old nonce still works, and a fresh one comes back
    proof = key.proof("GET", URL, access_token=raw, nonce=nonce, now=int(clock()))
    later = client.get("/orgs/acme/projects", headers=dpop_headers(raw, proof))
    assert granted(later)["subject"] == "user-1"  # the app's own response ...
    assert later.headers["dpop-nonce"] == nonces.current(clock())  # ... carries the fresh nonce


def test_dpop_uses_the_request_url_without_a_configured_resource(key: ProofSigner) -> None:
    clock = FakeClock(NOW)
    verifier = JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=clock)
    client = TestClient(middleware(verifier=verifier, dpop=DPoPVerifier(clock=clock)))
    raw = token(cnf={"jkt": key.jkt})
    own = key.proof("GET", "http://testserver/orgs/acme/projects", access_token=raw)
    assert granted(client.get("/orgs/acme/projects", headers=dpop_headers(raw, own)))
    claimed = key.proof("GET", URL, access_token=raw)
    assert client.get("/orgs/acme/projects", headers=dpop_headers(raw, claimed)).status_code == 401


def test_a_dpop_websocket_proof_names_the_http_url(key: ProofSigner) -> None:
    client = dpop_client(FakeClock(NOW))
    raw = token(cnf={"jkt": key.jkt})
    proof = key.proof("GET", f"{RESOURCE}/orgs/acme/feed", access_token=raw)
    with client.websocket_connect("/orgs/acme/feed", headers=dpop_headers(raw, proof)) as websocket:
        assert websocket.receive_json() == {"subject": "user-1"}


# -- construction ---------------------------------------------------------------------------------


def test_a_pattern_without_the_org_variable_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match=r"'/orgs/\{org_id\}/projects' has no URL variable 'org'"):
        middleware(routes={"/orgs/{org_id}/projects": {"GET": "project:read"}})
    with pytest.raises(ValueError, match=r"'/me' has no URL variable 'org'"):
        middleware(routes={"/me": {"GET": "project:read"}})
    with pytest.raises(ValueError, match=r"has no URL variable 'tenant'"):
        middleware(routes={"/orgs/{org}/x": Protected({"GET": "project:read"}, org="tenant")})


def test_org_none_on_a_pattern_that_names_the_org_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"'/orgs/\{org\}/projects' has the URL variable 'org' but declares org=None"
    ):
        middleware(org=None, routes={"/orgs/{org}/projects": {"GET": "project:read"}})
    with pytest.raises(ValueError, match=r"has the URL variable 'org' but declares org=None"):
        middleware(routes={"/orgs/{org}/projects": Protected({"GET": "project:read"}, org=None)})


def test_a_route_names_its_own_org_variable() -> None:
    client = TestClient(middleware(routes={"/orgs/{org_id}/projects": Protected(PROJECTS, org="org_id")}))
    acme = bearer(token(org_id="acme"))
    assert granted(client.get("/orgs/acme/projects", headers=acme))["org"] == "acme"
    assert_refused(client.get("/orgs/globex/projects", headers=acme), 401, "invalid_token", "invalid_token")


@pytest.mark.parametrize(
    "pattern",
    [
        "/orgs/{org}/{org}",
        "/orgs/{org:nope}",
        "/orgs/{org",
        "/orgs/org}/{org}",
        "orgs/{org}",
        "{org}.example",
    ],
)
def test_a_malformed_pattern_is_a_value_error(pattern: str) -> None:
    with pytest.raises(ValueError, match="pattern"):
        middleware(routes={pattern: {"GET": "project:read"}})
    with pytest.raises(ValueError, match="pattern"):
        middleware(public=[pattern.replace("{org", "{x")])


def test_bad_configuration_fails_at_construction() -> None:
    with pytest.raises(ValueError):
        middleware(routes={"/orgs/{org}/x": {"GET": "two scopes"}})
    with pytest.raises(ValueError, match="dpop"):
        middleware(dpop_required=True)
    with pytest.raises(ValueError, match="public"):
        middleware(public="/health")


def test_a_scope_no_role_grants_fails_at_construction() -> None:
    with pytest.raises(ValueError) as refused:
        middleware(routes={**ROUTES, "/orgs/{org}/audit": Protected({"GET": "audit:read"}, org="org")})
    assert str(refused.value) == (
        "route '/orgs/{org}/audit' requires audit:read, which no role grants: "
        "grant the scope to a role in Roles, or correct the scope map"
    )


def test_the_module_exports_its_names() -> None:
    assert asgi.Route is Protected
    assert {"ACCESS_KEY", "TOKEN_KEY", "BearerMiddleware", "Route"} == set(asgi.__all__)


# -- under uvicorn, on loopback -------------------------------------------------------------------


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 (a port the OS picks); yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:  # start-up, not expiry: polled until it listens, bounded
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve(middleware()) as base:
        yield base


def _post(
    base: str, path: str, body: Any, headers: dict[str, str], chunked: bool = False
) -> tuple[int, bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request(
            "POST",
            path,
            body=iter([body]) if chunked else body,
            headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
            encode_chunked=chunked,
        )
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_over_uvicorn_the_table_and_the_state(server: str) -> None:
    with httpx.Client(base_url=server) as client:
        body = granted(client.get("/orgs/acme/projects", headers=bearer(token())))
        assert body["subject"] == "user-1" and body["lifespan"] == "ready"
        assert dict(challenge_of(client.get("/orgs/acme/projects")).params) == {"realm": "api"}
        assert_refused(
            client.post("/orgs/acme/projects", headers=bearer(token())),
            403,
            "insufficient_scope",
            "insufficient_scope",
        )
        assert_refused(client.get("/unlisted"), 403, "forbidden")
        assert granted(client.get("/health"))["scopes"] is None


def test_over_uvicorn_form_bodies_are_inspected_and_replayed(server: str) -> None:
    raw = token(scope="project:write")
    form = b"name=apollo&note=caf%C3%A9"
    status, body = _post(server, "/orgs/acme/projects", form, bearer(raw))
    assert status == 200 and json.loads(body)["form"] == {"name": "apollo", "note": "café"}
    status, body = _post(server, "/orgs/acme/projects", form, bearer(raw), chunked=True)
    assert status == 200 and json.loads(body)["form"] == {"name": "apollo", "note": "café"}
    large = b"blob=" + b"z" * 70_000
    status, body = _post(server, "/orgs/acme/projects", large, bearer(raw))
    assert status == 200 and json.loads(body)["body"] == large.decode()
    status, body = _post(server, "/orgs/acme/projects", b"access_token=" + raw.encode(), bearer(raw))
    assert status == 400 and json.loads(body)["error"] == "invalid_request"
    status, body = _post(
        server, "/orgs/acme/projects", b"access_token=" + raw.encode(), bearer(raw), chunked=True
    )
    assert status == 400 and json.loads(body)["error"] == "invalid_request"


def test_a_slow_jwks_does_not_stall_the_loop_under_uvicorn() -> None:
    """One request waits on a JWKS that answers only when released; meanwhile requests with a
    cached token and with new tokens of a statically keyed issuer complete on the same server."""
    slow_signer = es256("slow-1")
    slow = SlowJWKS(jwks(slow_signer), delay=60.0)  # the delay only ends a failing run
    slow_issuer = "https://slow.test"
    verifier = TrustedIssuers(
        [
            JWTVerifier(issuer=slow_issuer, audience=AUDIENCE, jwks_uri=slow.url, clock=CLOCK),
            JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=CLOCK),
        ]
    )
    cached = bearer(token())

    async def scenario(base: str) -> Any:
        async with httpx.AsyncClient(base_url=base, timeout=90) as client:
            assert (await client.get("/orgs/acme/projects", headers=cached)).status_code == 200
            cold = asyncio.create_task(
                client.get("/orgs/acme/projects", headers=bearer(slow_signer.token(iss=slow_issuer)))
            )
            assert await asyncio.to_thread(slow.asked.wait, 10)  # its key fetch is under way
            for index in range(20):
                headers = cached if index % 2 else bearer(token())
                response = await client.get("/orgs/acme/projects", headers=headers)
                assert response.status_code == 200, response.text
            # Twenty answers while the cold one still waits for its keys, held until released:
            # no clock decides it. Had its fetch blocked the loop, these would have come after.
            assert not cold.done()
            slow.release.set()
            return await cold

    try:
        with serve(middleware(verifier=verifier)) as base:
            cold = asyncio.run(scenario(base))
    finally:
        slow.close()
    assert granted(cold)["subject"] == "user-1"


# -- hostile URLs and headers (found in review) -----------------------------------------------------


def test_an_org_its_convertor_refuses_is_no_match_not_a_500(client: TestClient) -> None:
    """``{org:int}`` with 5,000 digits: Python's int() refuses it (its digit limit), so the path
    matches no route: 403, never a traceback."""
    response = client.get("/tenants/" + "7" * 5000 + "/projects", headers=bearer(token()))
    assert response.status_code == 403
    assert response.json()["error_description"] == "no access policy covers this path"


@pytest.mark.parametrize("length", ["²", "1" * 5000, "-5", "+5", "5, 5", "0x10"])
def test_a_content_length_that_is_not_a_length_is_no_500(length: str) -> None:
    """RFC 9110 §8.6: ASCII digits only. Anything else is not trusted as a length (the body is
    inspected as it comes, or passed on), never parsed into a 500."""
    from resource_server.asgi_http import content_length, token_elsewhere

    scope = {
        "type": "http",
        "query_string": b"",
        "headers": [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", length.encode("latin-1")),
        ],
    }
    assert content_length(scope) == -1

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"access_token=x", "more_body": False}

    elsewhere, _ = asyncio.run(token_elsewhere(scope, receive))
    assert elsewhere is False  # not read: a body of unknown length is passed on, never guessed at
