"""Delegation (RFC 8693) and step-up authentication (RFC 9470) through every web adapter, over real
servers: Flask and the WSGI middleware on a loopback werkzeug server, the ASGI middleware and
FastAPI under uvicorn. Each shows the actor to the application, caps an agent by its ceiling,
refuses an agent where only the person may act, and answers a too weak or too old sign-in with
``401 insufficient_user_authentication``, all held to one table (``delegation_scenario``). Then
what is particular: the DPoP scheme of the refusal, first-party sessions, the log lines, and the
clock read only for scope maps that need it."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from flask import Flask, jsonify, request
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from policy import Access, Actors, ScopeMap, parse_challenges
from resource_server import JWTVerifier
from resource_server.asgi import ACCESS_KEY
from resource_server.asgi import BearerMiddleware as AsgiMiddleware
from resource_server.dpop import DPoPVerifier
from resource_server.fastapi import ResourceServer as FastAPIServer
from resource_server.flask import ResourceServer as FlaskServer
from resource_server.flask import current_access
from resource_server.guard import Denial, Granted, Guard
from resource_server.wsgi import ACCESS_KEY as WSGI_ACCESS_KEY
from resource_server.wsgi import BearerMiddleware as WsgiMiddleware
from tests.otel import VALIDATOR
from tests.resource_server import delegation_scenario as scenario
from tests.resource_server.test_asgi import serve as serve_asgi
from tests.support import (
    AUDIENCE,
    ISSUER,
    NOW,
    FakeClock,
    dpop_key,
    es256,
    jwks,
    serve_wsgi,
)

SIGNER = es256("delegation")
RESOURCE = "https://api.test"
METADATA = f"{RESOURCE}/.well-known/oauth-protected-resource"
METHODS = ["GET", "POST", "PUT", "DELETE"]


def verifier(clock: Callable[[], float] | None = None) -> JWTVerifier:
    return JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(SIGNER), clock=clock or FakeClock(NOW))


def sender(base: str) -> scenario.Send:
    def send(method: str, token: str) -> tuple[int, list[str], Any]:
        response = httpx.request(
            method, base + scenario.PATH, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        return response.status_code, response.headers.get_list("www-authenticate"), response.json()

    return send


# -- Flask ------------------------------------------------------------------------------------------


def flask_app(**options: Any) -> Flask:
    app = Flask(__name__)
    app.config["RESOURCE_SERVER_RESOURCE"] = RESOURCE
    rs = FlaskServer(
        app,
        verifier=verifier(),
        roles=scenario.ROLES,
        membership=scenario.membership,
        actors=scenario.ACTORS,
        **options,
    )

    @app.route("/orgs/<org>/projects", methods=METHODS)
    @rs.require(scenario.SCOPE_MAP)
    def projects(org: str) -> Any:
        # current_access is the request's policy.Access: the actor is an attribute of it.
        assert current_access.actor == (current_access.actors[0] if current_access.actors else None)
        return jsonify(scenario.seen(current_access))

    return app


def test_flask_over_http() -> None:
    with serve_wsgi(flask_app()) as base:
        scenario.run(sender(base), SIGNER, resource_metadata=METADATA)


def test_flask_answers_a_dpop_request_with_the_dpop_scheme() -> None:
    key = dpop_key("ES256")
    clock = FakeClock(NOW)
    client = flask_app(dpop=DPoPVerifier(clock=clock)).test_client()
    token = SIGNER.token(scope=scenario.EVERYTHING, acr="pwd", cnf={"jkt": key.jkt})
    url = f"{RESOURCE}{scenario.PATH}"
    response = client.delete(
        scenario.PATH,
        headers={"Authorization": f"DPoP {token}", "DPoP": key.proof("DELETE", url, access_token=token)},
    )
    assert response.status_code == 401
    (challenge,) = parse_challenges(response.headers.getlist("WWW-Authenticate"))
    assert challenge.is_scheme("DPoP")
    assert challenge.get("error") == "insufficient_user_authentication"
    assert (challenge.get("acr_values"), challenge.get("max_age")) == ("mfa hwk", "300")
    assert challenge.get("algs") and challenge.get("resource_metadata") == METADATA
    assert token not in response.get_data(as_text=True)


def test_a_first_party_session_is_refused_without_a_challenge() -> None:
    """A session cannot show how or when the person signed in: a route asking for it is 403
    without a challenge (no token could help), never a 401 a browser cannot act on."""
    app = flask_app(session_loader=lambda: request.headers.get("X-Session-User"))
    client = app.test_client()
    session = {"X-Session-User": "user-1"}
    assert client.get(scenario.PATH, headers=session).json == {
        "subject": "user-1",
        "actor": None,
        "actors": [],
        "scopes": sorted(scenario.EVERYTHING.split()),
    }
    assert client.put(scenario.PATH, headers=session).status_code == 200  # no actor: the person
    refused = client.delete(scenario.PATH, headers=session)
    assert refused.status_code == 403
    assert "WWW-Authenticate" not in refused.headers
    assert refused.json["error"] == "forbidden"


# -- the WSGI middleware ------------------------------------------------------------------------------


def wsgi_view(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    import json

    body = json.dumps(scenario.seen(environ[WSGI_ACCESS_KEY])).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def test_the_wsgi_middleware_over_http() -> None:
    wrapped = WsgiMiddleware(
        wsgi_view,
        verifier=verifier(),
        roles=scenario.ROLES,
        membership=scenario.membership,
        routes={"/orgs/<org>/projects": scenario.SCOPE_MAP},
        resource_metadata=METADATA,
        actors=scenario.ACTORS,
    )
    with serve_wsgi(wrapped) as base:
        scenario.run(sender(base), SIGNER, resource_metadata=METADATA)


# -- the ASGI middleware and FastAPI, under uvicorn ---------------------------------------------------


async def asgi_view(request: Request) -> JSONResponse:
    return JSONResponse(scenario.seen(getattr(request.state, ACCESS_KEY)))


def test_the_asgi_middleware_under_uvicorn() -> None:
    app = AsgiMiddleware(
        Starlette(routes=[Route("/orgs/{org}/projects", asgi_view, methods=METHODS)]),
        verifier=verifier(),
        roles=scenario.ROLES,
        membership=scenario.membership,
        routes={"/orgs/{org}/projects": scenario.SCOPE_MAP},
        resource_metadata=METADATA,
        actors=scenario.ACTORS,
    )
    with serve_asgi(app) as base:
        scenario.run(sender(base), SIGNER, resource_metadata=METADATA)


def fastapi_app() -> FastAPI:
    async def role(subject: str, org: str | None) -> str | None:  # a coroutine function, as apps have
        return scenario.membership(subject, org)

    rs = FastAPIServer(
        verifier=verifier(),
        roles=scenario.ROLES,
        membership=role,
        resource=RESOURCE,
        authorization_servers=[ISSUER],
        actors=scenario.ACTORS,
    )
    app = FastAPI()
    projects = rs.require(scenario.SCOPE_MAP)

    @app.api_route("/orgs/{org}/projects", methods=METHODS)
    # The dependency as a default: this module's annotations are strings, and FastAPI resolves
    # them in the module's globals, where ``projects`` is not.
    async def endpoint(access: Access = Depends(projects)) -> dict[str, Any]:  # noqa: B008
        return scenario.seen(access)

    rs.install(app)
    return app


def test_fastapi_under_uvicorn() -> None:
    with serve_asgi(fastapi_app()) as base:
        scenario.run(sender(base), SIGNER, resource_metadata=METADATA)


# -- the guard: logs, the clock, configuration --------------------------------------------------------


class CountingClock(FakeClock):
    def __init__(self) -> None:
        super().__init__(NOW)
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return super().__call__()


def authorize(guard: Guard, token: str, method: str, scope_map: ScopeMap) -> Granted | Denial:
    return guard.authorize(
        authorization=f"Bearer {token}", token_elsewhere=False, method=method, scope_map=scope_map, org="acme"
    )


def test_the_clock_is_read_only_for_a_scope_map_with_a_max_age() -> None:
    clock = CountingClock()
    guard = Guard(verifier=verifier(clock), roles=scenario.ROLES, membership=scenario.membership)
    token = SIGNER.token(scope=scenario.EVERYTHING, acr="mfa", auth_time=NOW - 10)
    plain, timed = ScopeMap({"GET": "project:read"}), ScopeMap(scenario.SCOPE_MAP)
    assert type(authorize(guard, token, "GET", plain)) is Granted  # verified: the verifier reads it
    before = clock.reads
    for _ in range(3):  # warm: cached token, cached grant, plain map
        assert type(authorize(guard, token, "GET", plain)) is Granted
    assert clock.reads - before == 3  # the credential cache's expiry check, once a request
    assert type(authorize(guard, token, "DELETE", timed)) is Granted
    assert clock.reads - before == 5  # and once more, for the decision's now


def test_a_refusal_names_the_actors_bounded_and_escaped(caplog: pytest.LogCaptureFixture) -> None:
    guard = Guard(
        verifier=verifier(), roles=scenario.ROLES, membership=scenario.membership, actors=scenario.ACTORS
    )
    hostile = "agent:" + "\u00e9" * 300  # visible, so accepted; long, so bounded in the log
    token = SIGNER.token(
        scope=scenario.EVERYTHING,
        act={"sub": "agent:reporting", "act": {"sub": hostile, "act": {"sub": "user-ui"}}},
    )
    caplog.set_level(logging.INFO, logger="resource_server")
    refused = authorize(guard, token, "POST", ScopeMap(scenario.SCOPE_MAP))
    assert type(refused) is Denial and refused.status == 403 and refused.www_authenticate is None
    assert (
        refused.description
        == "neither the member's role nor what the acting agent may do permits this request"
    )
    (record,) = [r for r in caplog.records if r.name == "resource_server.audit"]
    event = record.audit  # type: ignore[attr-defined]
    assert (event["event"], event["status"], event["error"], event["subject"]) == (
        "decision",
        403,
        "forbidden",
        "user-1",
    )
    # The current actor first; a value from the token is cut to 200 characters, never dropped.
    assert event["actors"] == [
        {"sub": "agent:reporting", "client_id": None, "iss": None},
        {"sub": hostile[:200], "client_id": None, "iss": None},
        {"sub": "user-ui", "client_id": None, "iss": None},
    ]
    assert "agent:reporting may not exercise project:write" in event["reason"].replace("'", "")
    # The plain-text line holds neither the token nor the hostile value: JSON formatters get it
    # from the event, escaped as JSON.
    assert token not in caplog.text and "\u00e9" not in record.getMessage()
    assert json.dumps(event).count("\\u00e9") == 194  # "agent:" and 194 of its 300
    VALIDATOR.validate(event)

    caplog.clear()
    step_up = authorize(
        guard,
        SIGNER.token(scope=scenario.EVERYTHING, act={"sub": "agent:deploy"}),
        "DELETE",
        ScopeMap(scenario.SCOPE_MAP),
    )
    assert type(step_up) is Denial and step_up.status == 401
    (record,) = [r for r in caplog.records if r.name == "resource_server.audit"]
    event = record.audit  # type: ignore[attr-defined]
    assert (event["status"], event["error"]) == (401, "insufficient_user_authentication")
    assert event["actors"] == [{"sub": "agent:deploy", "client_id": None, "iss": None}]


def test_without_actors_a_delegated_token_is_treated_as_any_other() -> None:
    guard = Guard(verifier=verifier(), roles=scenario.ROLES, membership=scenario.membership)
    token = SIGNER.token(scope=scenario.EVERYTHING, act={"sub": "agent:stranger"})
    granted = authorize(guard, token, "POST", ScopeMap(scenario.SCOPE_MAP))
    assert type(granted) is Granted
    assert granted.access.actor is not None and granted.access.actor.sub == "agent:stranger"
    assert granted.access.actor_ceiling is None
    # A route's own actor rule holds whether or not a ceiling is configured.
    refused = authorize(guard, token, "PUT", ScopeMap(scenario.SCOPE_MAP))
    assert type(refused) is Denial and refused.status == 403 and refused.www_authenticate is None


@pytest.mark.parametrize(
    "build",
    [
        lambda actors: Guard(
            verifier=verifier(), roles=scenario.ROLES, membership=scenario.membership, actors=actors
        ),
        lambda actors: FlaskServer(
            Flask(__name__),
            verifier=verifier(),
            roles=scenario.ROLES,
            membership=scenario.membership,
            actors=actors,
        ),
        lambda actors: FastAPIServer(
            verifier=verifier(), roles=scenario.ROLES, membership=scenario.membership, actors=actors
        ),
        lambda actors: WsgiMiddleware(
            wsgi_view,
            verifier=verifier(),
            roles=scenario.ROLES,
            membership=scenario.membership,
            routes={},
            actors=actors,
        ),
        lambda actors: AsgiMiddleware(
            Starlette(),
            verifier=verifier(),
            roles=scenario.ROLES,
            membership=scenario.membership,
            routes={},
            actors=actors,
        ),
    ],
    ids=["Guard", "Flask", "FastAPI", "WSGI", "ASGI"],
)
def test_actors_must_be_an_actors_policy(build: Callable[[Any], Any]) -> None:
    with pytest.raises(TypeError, match=r"policy\.Actors"):
        build({"agent:reporting": ["project:read"]})
    build(Actors({"agent:reporting": "project:read"}))
