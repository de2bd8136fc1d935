"""WSGI apps for the hostile-body tests, importable by gunicorn (``body_apps:demo()``) as well as
in process: the demo API (viewer-context route, agent endpoints, login, project writes), also
with its body opened by an app hook first, the demo authorization server, the demo gateway
(login, forwarding) and the WSGI
middleware around a form-reading app. No token is ever needed: the demo's first-party login
authenticates, so no verifier key or clock is involved."""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "body-test-password"
GATEWAY_KEY = b"g" * 32  # the viewer-context secret the demo API shares with its gateway


def demo() -> Any:
    return demo_app().wsgi_app


def demo_touched() -> Any:
    """The demo API under an app hook that opens the request body before the library reads it
    (as a logging middleware or another extension might): the guards must hold there too."""
    from flask import request

    app = demo_app()
    app.before_request(lambda: request.stream and None)
    return app.wsgi_app


def demo_app() -> Any:
    sys.path.insert(0, str(ROOT / "examples"))
    from demo_api import create_api
    from demo_auth_server import ROLES

    directory = tempfile.mkdtemp(prefix="body-apps-")
    atexit.register(shutil.rmtree, directory, True)  # leave no files behind in the temp directory
    return create_api(
        issuer="https://as.test",
        # Never fetched: these tests send no access token, only session cookies and bodies.
        jwks_uri="https://as.test/jwks.json",
        resource="https://api.test",
        roles=ROLES,
        memberships={("user-admin", "acme"): "admin"},
        passwords={"user-admin": PASSWORD},
        # A file, not sqlite:// (which is one database per thread in a threaded server).
        grants_url=f"sqlite:///{directory}/grants.db",
        gateway_key=GATEWAY_KEY,
    )


def auth_server() -> Any:
    sys.path.insert(0, str(ROOT / "examples"))
    from demo_auth_server import create_auth_server

    directory = tempfile.mkdtemp(prefix="body-apps-")
    atexit.register(shutil.rmtree, directory, True)
    return create_auth_server(
        issuer="https://as.test", db_path=f"{directory}/as.db", resource="https://api.test"
    ).wsgi_app


def gateway() -> Any:
    sys.path.insert(0, str(ROOT / "examples"))
    from demo_gateway import create_gateway

    return create_gateway(
        # Never called: every request these tests send is refused before it is forwarded.
        api="https://api.test",
        audience="https://api.test",
        context_key=GATEWAY_KEY,
        passwords={"user-admin": PASSWORD},
    ).wsgi_app


def middleware() -> Any:
    from policy import Roles
    from resource_server import JWTVerifier
    from resource_server.wsgi import BearerMiddleware

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"reached the app"]

    return BearerMiddleware(
        app,
        verifier=JWTVerifier(
            issuer="https://as.test", audience="https://api.test", jwks_uri="https://as.test/jwks.json"
        ),
        roles=Roles({"member": ["project:read"]}),
        membership=lambda subject, org: None,
        routes={"/orgs/<org>/projects": {"POST": "project:read"}},
    )
