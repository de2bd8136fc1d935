"""The demo's gateway: signs users in itself and forwards their calls to the protected API.

It never sends the user's credentials on. Instead each backend request carries:

* ``X-Viewer-Context``: a signed, request-bound assertion of who is acting (the API accepts it on
  routes that opt in, and checks the member's role there as for any token);
* the client headers a :class:`~resource_server.passthrough.PassthroughPolicy` allows, captured
  once when the user's gateway session is created and reused for that session's requests.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping

import httpx
from demo_api import checked_login
from flask import Flask, Response, request, session

from resource_server.bodies import MAX_BOUND_BODY, BodyError
from resource_server.flask import json_body, request_body
from resource_server.passthrough import PassthroughPolicy
from resource_server.viewer_context import ViewerContextSigner

GATEWAY_ISSUER = "demo-gateway"
PASSTHROUGH = PassthroughPolicy(["X-Request-Id", "Accept-Language"], static={"X-Gateway": GATEWAY_ISSUER})


def create_gateway(
    *,
    api: str,
    audience: str,
    context_key: bytes,
    passwords: Mapping[str, str],
    clock: Callable[[], float] = time.time,
) -> Flask:
    """``api`` is the backend's base URL, ``audience`` the audience its viewer-context verifier
    expects, ``context_key`` the secret both share (kid ``gw-1``), ``clock`` the time contexts
    are signed at (the API's)."""
    app = Flask("demo_gateway")
    app.secret_key = secrets.token_bytes(32)
    signer = ViewerContextSigner(
        keys={"gw-1": context_key}, signing_kid="gw-1", issuer=GATEWAY_ISSUER, audience=audience, clock=clock
    )
    backend = httpx.Client(base_url=api, timeout=10)

    @app.errorhandler(BodyError)  # bodies are read with bounds: a broken one is the client's 400
    def bad_body(error: BodyError):
        return {"error": "invalid_request", "error_description": error.description}, 400

    @app.post("/login")
    def login():
        username = checked_login(json_body(), passwords)
        if username is None:
            return {"error": "invalid_grant", "error_description": "wrong username or password"}, 401
        session["user"] = username
        session["passthrough"] = PASSTHROUGH.capture(request.headers.items())  # once per session
        return {"user": username, "forwarded_headers": sorted(session["passthrough"])}

    @app.route("/api/<path:rest>", methods=["GET", "POST"])
    def forward(rest: str):
        user = session.get("user")
        if user is None:
            return {"error": "unauthorized", "error_description": "sign in to the gateway first"}, 401
        path = f"/{rest}" + (f"?{request.query_string.decode('latin-1')}" if request.query_string else "")
        body = request_body(request, MAX_BOUND_BODY)  # the viewer context is bound to all of it
        # The client's values go on as the octets it sent (werkzeug read them as ISO-8859-1):
        # httpx encodes a str value as ASCII, and obs-text (RFC 9110 §5.5) would raise (a 500).
        headers: dict[str, str | bytes] = {
            name: value.encode("latin-1") for name, value in session.get("passthrough", {}).items()
        }
        headers.update(signer.headers(user_id=user, method=request.method, path=path, body=body))
        if request.content_type:
            headers["Content-Type"] = request.content_type.encode("latin-1")
        upstream = backend.request(request.method, path, content=body, headers=headers)
        return Response(
            upstream.content, status=upstream.status_code, content_type=upstream.headers.get("content-type")
        )

    return app
