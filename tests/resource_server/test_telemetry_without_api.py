"""Without ``opentelemetry-api`` (the ``otel`` extra not installed), nothing is recorded and the
adapters work as before. Run in a fresh interpreter whose import system refuses every
``opentelemetry`` module (a ``sys.meta_path`` finder, as if the package were not installed):
the test process itself has the SDK loaded. FastAPI and the MCP SDK are not among them: their
recent releases depend on ``opentelemetry-api`` themselves, so an app that uses them always has
the API (and their adapters share the guard and observer tested here)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import logging
    import sys
    from importlib.abc import MetaPathFinder


    class NoOpenTelemetry(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, NoOpenTelemetry())

    from flask import Flask
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient
    from werkzeug.test import Client

    from policy import Roles
    from resource_server import JWTVerifier, telemetry
    from resource_server.asgi import BearerMiddleware as AsgiMiddleware
    from resource_server.flask import ResourceServer as FlaskServer
    from resource_server.telemetry import metrics, spans
    from resource_server.wsgi import BearerMiddleware as WsgiMiddleware
    from tests.support import AUDIENCE, ISSUER, NOW, FakeClock, es256, jwks

    es = es256("es-1")
    roles = Roles({"admin": ["project:read"]})
    scopes = {"GET": "project:read"}

    def member(subject, org):
        return "admin" if org == "acme" else None

    def verifier():
        return JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks(es), clock=FakeClock(NOW))

    events = []

    class Keep(logging.Handler):
        def emit(self, record):
            events.append(record.audit)

    logging.getLogger(telemetry.AUDIT_LOGGER).addHandler(Keep())
    logging.getLogger(telemetry.AUDIT_LOGGER).setLevel(logging.INFO)

    flask = Flask(__name__)
    rs = FlaskServer(flask, verifier=verifier(), roles=roles, membership=member)

    @flask.get("/orgs/<org>/projects")
    @rs.require(scopes)
    def projects(org):
        return {"org": org}

    def plain(environ, start_response):
        start_response("200 OK", [])
        return [b"{}"]

    async def ok(request):
        return JSONResponse({})

    wsgi = WsgiMiddleware(
        plain, verifier=verifier(), roles=roles, membership=member, routes={"/orgs/<org>/projects": scopes}
    )
    asgi = AsgiMiddleware(
        Starlette(routes=[Route("/orgs/{org}/projects", ok)]),
        verifier=verifier(),
        roles=roles,
        membership=member,
        routes={"/orgs/{org}/projects": scopes},
    )
    good = {"Authorization": "Bearer " + es.token(now=NOW)}
    seen = []
    for name, client in [("flask", Client(flask)), ("wsgi", Client(wsgi))]:
        seen.append((name, client.get("/orgs/acme/projects", headers=good).status_code))
        seen.append((name, client.get("/orgs/acme/projects").status_code))
    for name, app in [("asgi", asgi)]:
        with TestClient(app) as client:
            seen.append((name, client.get("/orgs/acme/projects", headers=good).status_code))
            seen.append((name, client.get("/orgs/acme/projects").status_code))
    telemetry.configure(audit_hook=lambda event: None)  # a hook works without the API too
    with spans.span("resource_server.token.verify") as span:
        assert span is None
    assert metrics.current() is None and metrics.active is None
    assert not [name for name in sys.modules if name.startswith("opentelemetry")]
    print(seen)
    print(sorted({(event["status"], event["error"]) for event in events}))
    """
)


def test_without_the_api_nothing_is_recorded_and_every_adapter_works() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen, events = done.stdout.strip().splitlines()
    names = ["flask", "wsgi", "asgi"]
    assert seen == repr([pair for name in names for pair in ((name, 200), (name, 401))])
    # The audit trail is the standard library's: it does not need the API.
    assert events == repr([(401, "unauthorized")])
