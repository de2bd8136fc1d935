"""The app ``bench_load.py`` serves with gunicorn: one trivial view mounted bare, under
``@rs.require``, under Authlib's ``ResourceProtector`` and behind ``BearerMiddleware``.

The JWK Set to trust comes from the ``LOAD_JWKS`` environment variable (the benchmark holds the
private keys and mints the tokens). Tokens are checked against the real clock: this is a
benchmark, minted seconds before it runs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.oauth2.rfc9068 import JWTBearerTokenValidator
from flask import Flask
from joserfc.jwk import KeySet

from policy import Roles
from resource_server.flask import ResourceServer
from resource_server.tokens import JWTVerifier
from resource_server.wsgi import BearerMiddleware

ISSUER = "https://as.load.test"
AUDIENCE = "https://api.load.test"
ROLES = Roles({"admin": ["project:read", "project:write"]})
SCOPES = {"GET": "project:read"}


def membership(subject: str, org: str | None) -> str | None:
    return "admin" if org == "acme" else None


def create() -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    jwks = json.loads(os.environ["LOAD_JWKS"])
    app = Flask(__name__)
    rs = ResourceServer(
        app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks),
        roles=ROLES,
        membership=membership,
    )
    keys = KeySet.import_key_set(jwks)  # imported once: Authlib is not charged for it

    class Validator(JWTBearerTokenValidator):
        def get_jwks(self) -> KeySet:
            return keys

    authlib = ResourceProtector()
    authlib.register_token_validator(Validator(issuer=ISSUER, resource_server=AUDIENCE))

    def projects(org: str) -> dict[str, Any]:
        return {"org": org, "projects": []}

    rule = "/orgs/<org>/projects"
    app.add_url_rule("/bare" + rule, "bare", projects)
    app.add_url_rule("/rs" + rule, "rs", rs.require(SCOPES)(projects))
    app.add_url_rule("/authlib" + rule, "authlib", authlib("project:read")(projects))
    app.add_url_rule("/mw" + rule, "mw", projects)  # reached only through the middleware below
    protected = BearerMiddleware(
        app.wsgi_app,
        verifier=JWTVerifier(issuer=ISSUER, audience=AUDIENCE, jwks=jwks),
        roles=ROLES,
        membership=membership,
        routes={"/mw" + rule: SCOPES},
    )
    flask_app = app.wsgi_app

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith("/mw/"):
            return protected(environ, start_response)
        return flask_app(environ, start_response)

    return dispatch
