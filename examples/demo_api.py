"""The demo's protected API: a Flask app whose views declare, per method, the scopes they need.

It trusts a shared authorization server (``issuer``), whose signing keys it fetches over HTTP from
``jwks_uri`` and which it asks about opaque tokens (RFC 7662 introspection, when ``introspection``
is given), and one authorization server per customer (``tenant_issuers``), found by discovery
(RFC 8414), whose tokens count for that customer's organization only. Who is a member of which
organization, in which role, is the API's own knowledge, given as ``memberships``. Agents get
de-escalated capability tokens at ``POST /orgs/<org>/agent-token``; people approve write scopes
for one agent session at ``POST /orgs/<org>/agent-approvals`` from a first-party session
(``POST /login``), and those approvals live in a SQLite grants store.
"""

from __future__ import annotations

import hmac
import itertools
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from flask import Flask, request, session
from flask.views import MethodView

from policy import Roles, ScopeMap
from resource_server.capability import CapabilityIssuer
from resource_server.flask import ResourceServer, current_access, current_token, json_body
from resource_server.flask_agents import agent_blueprint
from resource_server.grants import GrantStore
from resource_server.tokens import JWTVerifier, TrustedIssuers
from resource_server.tokens.introspection import IntrospectionVerifier
from resource_server.viewer_context import ViewerContextVerifier

#: Scopes an agent's capability carries without anyone's approval.
AGENT_READONLY_SCOPES = ("project:read",)

PROJECTS_SCOPES = {"GET": "project:read", "POST": "project:write"}


@dataclass(frozen=True)
class Introspection:
    """Where the API asks about opaque tokens, and the client credentials it asks with."""

    endpoint: str
    client_id: str
    client_secret: str


def checked_login(body: object, passwords: Mapping[str, str]) -> str | None:
    """The username of a JSON ``{"username", "password"}`` body with the right password, else None."""
    username = body.get("username") if isinstance(body, dict) else None
    password = body.get("password") if isinstance(body, dict) else None
    expected = passwords.get(username) if isinstance(username, str) else None
    if expected is None or not isinstance(password, str) or not hmac.compare_digest(expected, password):
        return None
    return username


def create_api(
    *,
    issuer: str,
    jwks_uri: str,
    resource: str,
    roles: Mapping[str, list[str]],
    memberships: Mapping[tuple[str, str], str],
    passwords: Mapping[str, str],
    grants_url: str,
    gateway_key: bytes | None = None,
    introspection: Introspection | None = None,
    tenant_issuers: Mapping[str, str] | None = None,
) -> Flask:
    """Build the API. ``memberships`` maps ``(subject, org)`` to a role name in ``roles``;
    ``passwords`` are the first-party logins; ``grants_url`` is the grants database;
    ``gateway_key`` the secret the demo gateway signs viewer contexts with; ``introspection``
    where opaque tokens from ``issuer`` are checked; ``tenant_issuers`` maps an organization to
    the issuer URL of its own authorization server."""
    app = Flask("demo_api")
    app.secret_key = secrets.token_bytes(32)
    grants = GrantStore(grants_url)
    grants.create_schema()
    capabilities = CapabilityIssuer(
        keys={"demo-1": secrets.token_bytes(32)},
        issuer=resource,
        readonly_scopes=AGENT_READONLY_SCOPES,
        grants=grants,
    )
    # Serves RFC 9728 metadata (whose authorization_servers are the trusted issuers) and names it
    # in challenges.
    app.config.update(RESOURCE_SERVER_RESOURCE=resource)
    clock = time.time  # one clock for every verifier: the guard caches results until their expiry
    tenants = [
        # A customer's own server speaks for that customer only: a token it issues is bound to
        # its org, and one naming any other org is refused (issuer_org).
        JWTVerifier(issuer=url, audience=resource, discover=True, issuer_org=org, clock=clock)
        for org, url in (tenant_issuers or {}).items()
    ]
    opaque = (
        IntrospectionVerifier(
            endpoint=introspection.endpoint,
            client_id=introspection.client_id,
            client_secret=introspection.client_secret,
            audience=resource,
            issuer=issuer,
            clock=clock,
        )
        if introspection
        else None
    )
    verifier = TrustedIssuers(
        [JWTVerifier(issuer=issuer, audience=resource, jwks_uri=jwks_uri, clock=clock), *tenants],
        opaque=opaque,
    )
    rs = ResourceServer(
        app,
        verifier=verifier,
        roles=Roles(roles),
        membership=lambda subject, org: memberships.get((subject, org)),
        capabilities=capabilities.verifier(),
        session_loader=lambda: session.get("subject"),
        viewer_context=ViewerContextVerifier(
            keys={"gw-1": gateway_key or secrets.token_bytes(32)}, audience=resource, issuers=["demo-gateway"]
        ),
    )
    app.register_blueprint(agent_blueprint(rs, issuer=capabilities, grants=grants))

    @app.post("/login")
    @rs.public
    def login():
        """A first-party login: the session cookie it sets is the only way to approve grants."""
        username = checked_login(json_body(), passwords)
        if username is None:
            return {"error": "invalid_grant", "error_description": "wrong username or password"}, 401
        session["subject"] = username
        return {"subject": username}

    projects: dict[str, list[dict[str, object]]] = {"acme": [{"id": 1, "name": "website"}], "globex": []}
    ids = itertools.count(2)

    @app.route("/orgs/<org>/projects", methods=["GET", "POST"])
    @rs.require(PROJECTS_SCOPES, org="org", viewer_context=True)
    def org_projects(org: str):
        # Branch on the write method, never on GET: Flask routes HEAD to this view too (with
        # request.method == "HEAD"), and HEAD is authorized as a read.
        if request.method == "POST":
            name = json_body().get("name")
            if not isinstance(name, str) or not 0 < len(name) <= 100:
                return {
                    "error": "invalid_request",
                    "error_description": "name must be a string of 1-100 characters",
                }, 400
            project = {"id": next(ids), "name": name, "created_by": current_access.subject}
            projects.setdefault(org, []).append(project)
            return project, 201
        listing = {"org": org, "projects": projects.get(org, []), "subject": current_access.subject}
        if request.headers.get("X-Gateway"):  # set by the gateway's passthrough policy
            listing["via"] = {h: request.headers.get(h) for h in ("X-Gateway", "X-Request-Id")}
        return listing

    @rs.require(org="org")
    class TeamAPI(MethodView):
        """A MethodView: its scope map sits on the class."""

        scope_map = ScopeMap({"GET": "project:read", "PUT": [["team:write", "project:write"]]})

        def get(self, org: str):
            return {"org": org, "members": sorted({s for s, o in memberships if o == org})}

        def put(self, org: str):
            return {"org": org, "updated": True}

    app.add_url_rule("/orgs/<org>/team", view_func=TeamAPI.as_view("team"))

    @app.get("/me")
    @rs.require({"GET": "project:read"}, org=None)
    def me():
        return {
            "subject": current_access.subject,
            "org": current_access.org,
            "effective_scopes": sorted(current_access.scopes),
            "client_id": current_token.client_id,
        }

    return app
