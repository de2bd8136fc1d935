"""Every adapter records the same metrics, spans and audit events from the shared guard: the same
requests (each row of the status table) sent over real servers (werkzeug's for Flask and the
WSGI middleware, uvicorn for the ASGI middleware, FastAPI and MCP) are read back from the
OpenTelemetry SDK's in-memory metric reader and span exporter, and from the audit logger. Only
the route template (each framework's syntax) and, for MCP, the method (every message is a POST)
differ."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from flask import Flask
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from policy import Access, Requirement, Roles
from resource_server.asgi import BearerMiddleware as AsgiMiddleware
from resource_server.fastapi import ResourceServer as FastAPIServer
from resource_server.flask import ResourceServer as FlaskServer
from resource_server.mcp import protect_mcp
from resource_server.tokens import JWTVerifier, TrustedIssuers
from resource_server.wsgi import BearerMiddleware as WsgiMiddleware
from tests.otel import HeaderServer, Recorded, key, recording
from tests.resource_server.test_asgi import serve as serve_asgi
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, Signer, es256, jwks, serve_wsgi

ROLES = Roles({"member": ["project:read"], "admin": ["project:read", "project:write"]})
MEMBERS = {("user-1", "acme"): "admin"}
#: Writing asks for a multi-factor sign-in too (RFC 9470): a token with the scope but without
#: that acr gets the step-up 401.
WRITE = Requirement("project:write", acr="mfa")
SCOPES = {"GET": "project:read", "POST": WRITE}
TOOLS = {"list_projects": "project:read", "create_project": WRITE}
#: An issuer whose JWK Set answers 503: its tokens cannot be checked now.
DOWN = "https://down.test"
RESOURCE = "http://127.0.0.1:8000/mcp"


def membership(subject: str, org: str | None) -> str | None:
    return MEMBERS.get((subject, org))


@dataclass(frozen=True)
class Row:
    """One request: reading (GET, or the read tool) or writing; its Authorization value (a key
    of the tokens, or a literal); a Host to send instead of the server's; what it gets."""

    name: str
    writes: bool
    authorization: str | None
    status: int
    host: str | None = None


ROWS = [
    Row("no credentials", False, None, 401),
    Row("malformed credentials", False, "Bearer a b", 400),
    Row("a malformed Host", False, "token:valid", 400, host="bad host"),
    Row("an expired token", False, "token:expired", 401),
    Row("another org's token", False, "token:globex", 401),
    Row("lacks the scope", True, "token:read_only", 403),
    Row("not a member", False, "token:stranger", 403),
    Row("the issuer's keys cannot be fetched", False, "token:down", 503),
    Row("allowed, a new token", False, "token:valid", 200),
    Row("allowed, the same token again", False, "token:valid", 200),
    Row("must sign in with more factors", True, "token:writer", 401),
]


def tokens(es: Signer, down: Signer) -> dict[str, str]:
    return {
        "valid": es.token(now=NOW),
        "expired": es.token(now=NOW - 3600),
        "globex": es.token(now=NOW, org_id="globex"),
        "read_only": es.token(now=NOW),
        "stranger": es.token(now=NOW, sub="user-9"),
        "writer": es.token(now=NOW, scope="project:read project:write", acr="pwd"),
        "down": down.token(now=NOW, iss=DOWN),
    }


def verifier(es: Signer, down_url: str, clock: FakeClock) -> TrustedIssuers:
    return TrustedIssuers(
        [
            JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=clock),
            JWTVerifier(issuer=DOWN, audience=AUDIENCE, jwks_uri=down_url, clock=clock),
        ]
    )


# -- the apps, one per adapter: (server context, route template, path, how to send a row) --------


@dataclass
class Adapter:
    serve: Callable[[], AbstractContextManager[str]]
    route: str
    send: Callable[[httpx.Client, str, Row, str | None], int]


def plain_send(path: str) -> Callable[[httpx.Client, str, Row, str | None], int]:
    def send(http: httpx.Client, base: str, row: Row, authorization: str | None) -> int:
        headers = {"Authorization": authorization} if authorization else {}
        if row.host:
            headers["Host"] = row.host
        method = "POST" if row.writes else "GET"
        return http.request(method, base + path, headers=headers, json={} if row.writes else None).status_code

    return send


def mcp_send(http: httpx.Client, base: str, row: Row, authorization: str | None) -> int:
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    if authorization:
        headers["authorization"] = authorization
    if row.host:
        headers["host"] = row.host
    tool = "create_project" if row.writes else "list_projects"
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
    return http.post(base + "/orgs/acme/mcp/", headers=headers, content=json.dumps(message)).status_code


def flask_adapter(check: Any) -> Adapter:
    app = Flask(__name__)
    rs = FlaskServer(app, verifier=check, roles=ROLES, membership=membership)

    @app.route("/orgs/<org>/projects", methods=["GET", "POST"])
    @rs.require(SCOPES)
    def projects(org: str) -> dict[str, str]:
        return {"org": org}

    return Adapter(lambda: serve_wsgi(app), "/orgs/<org>/projects", plain_send("/orgs/acme/projects"))


def wsgi_adapter(check: Any) -> Adapter:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b"{}"]

    wrapped = WsgiMiddleware(
        app, verifier=check, roles=ROLES, membership=membership, routes={"/orgs/<org>/projects": SCOPES}
    )
    return Adapter(lambda: serve_wsgi(wrapped), "/orgs/<org>/projects", plain_send("/orgs/acme/projects"))


async def _ok(request: Any) -> JSONResponse:
    return JSONResponse({})


def asgi_adapter(check: Any) -> Adapter:
    app = Starlette(routes=[Route("/orgs/{org}/projects", _ok, methods=["GET", "POST"])])
    wrapped = AsgiMiddleware(
        app, verifier=check, roles=ROLES, membership=membership, routes={"/orgs/{org}/projects": SCOPES}
    )
    return Adapter(lambda: serve_asgi(wrapped), "/orgs/{org}/projects", plain_send("/orgs/acme/projects"))


def fastapi_adapter(check: Any) -> Adapter:
    rs = FastAPIServer(verifier=check, roles=ROLES, membership=membership, authorization_servers=[ISSUER])
    app = FastAPI()
    requirement = rs.require(SCOPES)
    # A local dependency goes in a default: FastAPI cannot resolve a string annotation naming it.

    @app.get("/orgs/{org}/projects")
    async def read(org: str, access: Access = Depends(requirement)) -> dict[str, str]:  # noqa: B008
        return {"org": org}

    @app.post("/orgs/{org}/projects")
    async def write(org: str, access: Access = Depends(requirement)) -> dict[str, str]:  # noqa: B008
        return {"org": org}

    rs.install(app)
    return Adapter(lambda: serve_asgi(app), "/orgs/{org}/projects", plain_send("/orgs/acme/projects"))


def mcp_adapter(check: Any) -> Adapter:
    async def stand_in(scope: Any, receive: Any, send: Any) -> None:  # in the MCP SDK's place
        if scope["type"] == "lifespan":
            return
        await JSONResponse({"jsonrpc": "2.0", "id": 1, "result": {}})(scope, receive, send)

    protected = protect_mcp(
        stand_in,
        verifier=check,
        roles=ROLES,
        membership=membership,
        tool_scopes=TOOLS,
        org="org",
        resource=RESOURCE,
        authorization_servers=[ISSUER],
    )
    app = Starlette(routes=[Mount("/orgs/{org}/mcp", app=protected)])
    return Adapter(lambda: serve_asgi(app), "/orgs/{org}/mcp", mcp_send)


ADAPTERS = {
    "flask": flask_adapter,
    "wsgi": wsgi_adapter,
    "asgi": asgi_adapter,
    "fastapi": fastapi_adapter,
    "mcp": mcp_adapter,
}


@pytest.fixture(scope="module")
def down() -> Iterator[HeaderServer]:
    with HeaderServer({"error": "maintenance"}, status=503).running() as server:
        yield server


@contextmanager
def running(name: str, down_url: str) -> Iterator[tuple[Adapter, str, dict[str, str], Recorded]]:
    es, other = es256("es-1"), es256("down-1")
    with recording() as recorded:
        adapter = ADAPTERS[name](verifier(es, down_url, FakeClock(NOW)))
        with adapter.serve() as base:
            yield adapter, base, tokens(es, other), recorded


def send_rows(adapter: Adapter, base: str, minted: dict[str, str]) -> list[int]:
    statuses = []
    with httpx.Client(timeout=10) as http:
        for row in ROWS:
            value = row.authorization
            if value is not None and value.startswith("token:"):
                value = f"Bearer {minted[value[6:]]}"
            statuses.append(adapter.send(http, base, row, value))
    return statuses


def expected(route: str, read: str, write: str) -> dict[str, dict[frozenset[tuple[str, Any]], Any]]:
    """What the rows record, for a route template and the methods of reading and writing."""
    issuer = {"resource_server.issuer": ISSUER}
    refused = {"http.route": route}
    bearer = {"resource_server.authentication.scheme": "bearer"}
    return {
        # Added up: MCP reads and writes with the same method.
        "resource_server.authorization.attempts": dict(
            Counter(
                {
                    key(
                        {
                            "http.route": route,
                            "http.request.method": read,
                            "resource_server.authorization.result": "success",
                        }
                    ): 2,
                    key(
                        {
                            "http.route": route,
                            "http.request.method": read,
                            "resource_server.authorization.result": "failure",
                        }
                    ): 1,
                }
            )
            + Counter(
                {
                    key(
                        {
                            "http.route": route,
                            "http.request.method": write,
                            "resource_server.authorization.result": "failure",
                        }
                    ): 2
                }
            )
        ),
        "resource_server.refusals": {
            key({"http.response.status_code": 401, "error.type": "unauthorized", **refused}): 1,
            key({"http.response.status_code": 400, "error.type": "invalid_request", **refused}): 2,
            key({"http.response.status_code": 401, "error.type": "invalid_token", **issuer, **refused}): 2,
            key(
                {"http.response.status_code": 403, "error.type": "insufficient_scope", **issuer, **refused}
            ): 1,
            key({"http.response.status_code": 403, "error.type": "forbidden", **issuer, **refused}): 1,
            key(
                {
                    "http.response.status_code": 401,
                    "error.type": "insufficient_user_authentication",
                    **issuer,
                    **refused,
                }
            ): 1,
            key(
                {
                    "http.response.status_code": 503,
                    "error.type": "temporarily_unavailable",
                    "resource_server.unavailable.cause": "jwks",
                    "resource_server.issuer": DOWN,
                    **refused,
                }
            ): 1,
        },
        "resource_server.authentication.duration": {
            key({**bearer, "resource_server.authentication.result": "none"}): 1,
            key(
                {
                    **bearer,
                    "resource_server.authentication.result": "failure",
                    "error.type": "invalid_request",
                }
            ): 1,
            key(
                {
                    **bearer,
                    "resource_server.authentication.result": "failure",
                    "error.type": "invalid_token",
                    **issuer,
                }
            ): 2,
            # Allowed, or refused by the decision: the credential was good.
            key({**bearer, "resource_server.authentication.result": "success", **issuer}): 4,
            key(
                {
                    **bearer,
                    "resource_server.authentication.result": "failure",
                    "error.type": "temporarily_unavailable",
                    "resource_server.issuer": DOWN,
                }
            ): 1,
        },
        "resource_server.token_cache.hits": {key({}): 1},
        # Every Bearer value the cache did not hold, the malformed one too.
        "resource_server.token_cache.misses": {key({}): 8},
    }


@pytest.mark.parametrize("name", list(ADAPTERS))
def test_every_row_of_the_status_table_is_recorded_alike(name: str, down: HeaderServer) -> None:
    with running(name, down.url) as (adapter, base, minted, recorded):
        assert send_rows(adapter, base, minted) == [row.status for row in ROWS]
        read, write = ("POST", "POST") if name == "mcp" else ("GET", "POST")
        for metric, points in expected(adapter.route, read, write).items():
            assert recorded.points(metric) == points, metric
        decisions = recorded.events("decision")
        assert [(event["status"], event["error"]) for event in decisions] == [
            (401, "unauthorized"),
            (400, "invalid_request"),
            (400, "invalid_request"),
            (401, "invalid_token"),
            (401, "invalid_token"),
            (403, "insufficient_scope"),
            (403, "forbidden"),
            (503, "temporarily_unavailable"),
            (401, "insufficient_user_authentication"),
        ]
        assert {event["route"] for event in decisions} == {adapter.route}
        assert {event["method"] for event in decisions} == ({"POST"} if name == "mcp" else {"GET", "POST"})
        (violation,) = recorded.events("org_binding_violation")
        assert (violation["subject"], violation["org"], violation["token_org"]) == (
            "user-1",
            "acme",
            "globex",
        )
        assert (violation["route"], violation["issuer"], violation["source"]) == (
            adapter.route,
            ISSUER,
            "bearer",
        )
        insufficient = decisions[5]
        assert insufficient["required"] == [["project:write"]]
        assert insufficient["scopes"] == ["project:read"]
        assert decisions[7]["cause"] == "jwks" and decisions[7]["issuer"] == DOWN
        step_up = decisions[8]
        assert step_up["required"] == [["project:write"]] and step_up["token_id"] is not None
        spans = Counter(span.name for span in recorded.spans())
        # A new token is verified in a span (seven of them; the malformed value never gets that
        # far, the token sent again is not verified again); the down issuer's key set fetch is
        # traced, and failed. The async adapters verify on the event loop, untraced, what cannot
        # wait (the keys in hand): only the token whose keys must be fetched gets its span there.
        verified = 1 if name in ("asgi", "fastapi", "mcp") else 7
        assert spans == {"resource_server.token.verify": verified, "resource_server.jwks.fetch": 1}
        (fetch,) = [span for span in recorded.spans() if span.name == "resource_server.jwks.fetch"]
        assert fetch.status.status_code.name == "ERROR"
        assert fetch.attributes is not None and fetch.attributes["resource_server.issuer"] == DOWN
        (failed,) = recorded.events("jwks_fetch_failed")
        assert failed["issuer"] == DOWN and failed["details"]["uri"] == down.url


def test_no_event_holds_a_token(down: HeaderServer) -> None:
    with running("wsgi", down.url) as (adapter, base, minted, recorded):
        send_rows(adapter, base, minted)
        written = json.dumps(recorded.events())
    for token in minted.values():
        for part in token.split("."):
            assert part not in written
