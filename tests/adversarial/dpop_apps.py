"""DPoP-protected apps for the hostile-identifier tests: the WSGI ``BearerMiddleware`` for
gunicorn (``tests.adversarial.dpop_apps:wsgi()``, configured from the environment) and the ASGI
one for uvicorn (:func:`asgi`), each around a trivial app.

Both trust the JWK Set they are given, ask for the DPoP nonces of :data:`NONCE_SECRET`, keep
the proof replay cache in Redis, and live at :data:`~tests.support.NOW` on a clock that does not
move: the tests mint tokens, proofs and nonces for that instant, so nothing here depends on the
wall clock, in this process or in a gunicorn worker.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

from policy import Roles
from resource_server import JWTVerifier
from resource_server.dpop import DPoPNonces, DPoPVerifier
from resource_server.state import RedisReplayCache
from tests.support import AUDIENCE, ISSUER, FakeClock

RESOURCE = "https://api.test"
PATH = "/orgs/acme/projects"
NONCE_SECRET = b"hostile-identifiers-nonce-secret!"
ROUTES = {"/orgs/<org>/projects": {"GET": "project:read"}}


def _options(jwks: dict[str, Any], redis_url: str) -> dict[str, Any]:
    clock = FakeClock()
    return {
        "verifier": JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks, clock=clock),
        "roles": Roles({"member": ["project:read"]}),
        "membership": lambda subject, org: "member" if org == "acme" else None,
        "dpop": DPoPVerifier(
            clock=clock,
            nonces=DPoPNonces(NONCE_SECRET, ttl=60),
            replay_cache=RedisReplayCache(redis_url, prefix=f"hostile:{os.getpid()}:", clock=clock),
        ),
        "resource": RESOURCE,
    }


def wsgi() -> Any:
    """For gunicorn: the JWK Set in ``DPOP_APPS_JWKS`` (JSON), Redis at ``DPOP_APPS_REDIS``."""
    from resource_server.wsgi import BearerMiddleware

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"reached": "the app"}']

    jwks = json.loads(os.environ["DPOP_APPS_JWKS"])
    return BearerMiddleware(app, routes=ROUTES, **_options(jwks, os.environ["DPOP_APPS_REDIS"]))


def asgi(jwks: dict[str, Any], redis_url: str) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from resource_server.asgi import BearerMiddleware

    async def projects(request: Any) -> JSONResponse:
        return JSONResponse({"reached": "the app"})

    app = Starlette(routes=[Route("/orgs/{org}/projects", projects)])
    routes = {"/orgs/{org}/projects": ROUTES["/orgs/<org>/projects"]}
    return BearerMiddleware(app, routes=routes, **_options(jwks, redis_url))
