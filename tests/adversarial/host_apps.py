"""Apps for the hostile-Host tests, with no ``resource`` configured, so that the request's own
``Host`` names the URL a DPoP proof is checked against: the WSGI middleware and a Flask app
(importable by gunicorn with literal arguments: ``host_apps:middleware('<JWK Set JSON>', True)``),
the ASGI middleware and a FastAPI app (run under uvicorn in the test process). Each guards
``GET``/``POST`` on ``/orgs/<org>/projects`` and ``/orgs/<org>/projects/<id>``, accepts DPoP
(with nonces required when told) and bearer tokens, and its clock stands at ``NOW``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import PlainTextResponse

from policy import Access, Roles
from resource_server import JWTVerifier
from resource_server.dpop import DPoPNonces, DPoPVerifier
from tests.support import AUDIENCE, ISSUER, NOW, FakeClock

#: The secret of the nonces the apps require when told to (RFC 9449 §8); the tests compute the
#: current nonce from it at ``NOW``.
NONCE_SECRET = b"host-tests-nonce-secret-32-bytes"
ROLES = Roles({"admin": ["project:read", "project:write"]})
SCOPES = {"GET": "project:read", "POST": "project:write"}
#: What every app answers once the guard lets a request through.
REACHED = b"reached the app"


def membership(subject: str, org: str | None) -> str | None:
    return "admin" if (subject, org) == ("user-1", "acme") else None


def _settings(jwk_set: str, nonces: bool) -> dict[str, Any]:
    clock = FakeClock(NOW)
    return {
        "verifier": JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=json.loads(jwk_set), clock=clock),
        "roles": ROLES,
        "membership": membership,
        "dpop": DPoPVerifier(clock=clock, nonces=DPoPNonces(NONCE_SECRET) if nonces else None),
    }


def middleware(jwk_set: str, nonces: bool) -> Any:
    """The WSGI ``BearerMiddleware`` around an app that says it was reached."""
    from resource_server.wsgi import BearerMiddleware

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(REACHED)))])
        return [REACHED]

    routes = {"/orgs/<org>/projects": SCOPES, "/orgs/<org>/projects/<id>": SCOPES}
    return BearerMiddleware(app, routes=routes, **_settings(jwk_set, nonces))


def flask_app(jwk_set: str, nonces: bool) -> Any:
    """A Flask app whose views ``ResourceServer.require`` guards."""
    from flask import Flask

    from resource_server.flask import ResourceServer

    app = Flask(__name__)
    rs = ResourceServer(app, **_settings(jwk_set, nonces))

    @app.route("/orgs/<org>/projects", methods=["GET", "POST"])
    @app.route("/orgs/<org>/projects/<id>", methods=["GET", "POST"])
    @rs.require(SCOPES)
    def projects(org: str, id: str | None = None) -> bytes:
        return REACHED

    return app


def asgi_middleware(jwk_set: str, nonces: bool) -> Any:
    """The ASGI ``BearerMiddleware`` around a plain ASGI app that says it was reached."""
    from resource_server.asgi import BearerMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(REACHED)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": REACHED})

    routes = {"/orgs/{org}/projects": SCOPES, "/orgs/{org}/projects/{id}": SCOPES}
    return BearerMiddleware(app, routes=routes, **_settings(jwk_set, nonces))


def fastapi_app(jwk_set: str, nonces: bool) -> Any:
    """A FastAPI app whose routes depend on ``ResourceServer.require``."""
    from resource_server.fastapi import ResourceServer

    rs = ResourceServer(**_settings(jwk_set, nonces))
    app = FastAPI(openapi_url=None)
    required = rs.require(SCOPES)

    @app.api_route("/orgs/{org}/projects", methods=["GET", "POST"])
    @app.api_route("/orgs/{org}/projects/{id}", methods=["GET", "POST"])
    async def projects(access: Access = Depends(required)) -> PlainTextResponse:  # noqa: B008 (a local)
        return PlainTextResponse(REACHED)

    rs.install(app)
    return app
