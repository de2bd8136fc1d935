"""The demo's protected API: a Flask app whose views declare, per method, the scopes they need.

It trusts a shared authorization server (``issuer``), whose signing keys it fetches over HTTP from
``jwks_uri`` and which it asks about opaque tokens (RFC 7662 introspection, when ``introspection``
is given), and one authorization server per customer (``tenant_issuers``), found by discovery
(RFC 8414), whose tokens count for that customer's organization only. Who is a member of which
organization, in which role, is the API's own knowledge, given as ``memberships``. Agents get
de-escalated capability tokens at ``POST /orgs/<org>/agent-token``; people approve write scopes
for one agent session at ``POST /orgs/<org>/agent-approvals`` from a first-party session
(``POST /login``), and those approvals live in a SQLite grants store.

Agents acting for people (RFC 8693: a token whose ``act`` names the agent) are capped by
:data:`ACTORS`: whatever the person may do, the ``agent-assistant`` agent only reads, an agent session of a
capability token (``session:<id>``) at most reads and writes projects, and any other actor is
refused. A project
listing names the actor, when there is one. Deleting a project (``DELETE
/orgs/<org>/projects/<id>``) needs ``project:write`` and a sign-in with the second factor in the
last five minutes (RFC 9470): a token of a password sign-in gets ``401
insufficient_user_authentication`` with ``acr_values="mfa"`` and ``max_age="300"``.

Tokens come as ``Bearer`` or, bound to a client's key, as ``DPoP`` with a proof per request
(RFC 9449); a bound token sent as a bearer token is refused. The one-time credentials (DPoP
proofs, the gateway's viewer contexts) are remembered in a replay cache: in process memory, or in
Redis given ``redis_url``, which every worker of a multi-process server must share.

Given ``metrics`` (a ``prometheus_client`` registry, :mod:`demo_telemetry`'s), it serves the
library's metrics in Prometheus format at ``GET /metrics``.

Under gunicorn, each worker builds its app from environment variables (:func:`from_environment`)::

    DEMO_ISSUER=http://127.0.0.1:5000 DEMO_RESOURCE=http://127.0.0.1:5001 \\
    DEMO_REDIS_URL=redis://127.0.0.1:6379/0 DEMO_GATEWAY_KEY=$(openssl rand -hex 32) \\
    gunicorn -w 4 -b 127.0.0.1:5001 --chdir examples 'demo_api:from_environment()'
"""

from __future__ import annotations

import hmac
import itertools
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, request, session
from flask.views import MethodView
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy.exc import OperationalError

from policy import Actors, Requirement, Roles, ScopeMap
from resource_server.capability import CapabilityIssuer
from resource_server.dpop import DPoPVerifier
from resource_server.flask import ResourceServer, current_access, current_token, json_body
from resource_server.flask.agents import agent_blueprint
from resource_server.grants import GrantStore
from resource_server.state import MemoryReplayCache, RedisReplayCache, ReplayCache
from resource_server.tokens import JWTVerifier, TrustedIssuers
from resource_server.tokens.introspection import IntrospectionVerifier
from resource_server.viewer_context import ViewerContextVerifier

#: Scopes an agent's capability carries without anyone's approval.
AGENT_READONLY_SCOPES = ("project:read",)

PROJECTS_SCOPES = {"GET": "project:read", "POST": "project:write"}
#: How recent a sign-in (seconds) a deletion needs, and with which acr: the second factor.
STEP_UP_MAX_AGE, STEP_UP_ACR = 300, "mfa"
#: One project's methods: deleting it needs a recent sign-in with the second factor (RFC 9470).
PROJECT_SCOPES = {
    "GET": "project:read",
    "DELETE": Requirement("project:write", acr=[STEP_UP_ACR], max_age=STEP_UP_MAX_AGE),
}
#: The ceilings of actors acting for people (RFC 8693): the assistant agent reads only, whatever
#: its person may do; the agent sessions of capability tokens (``session:<id>``, whose scopes the
#: person approves one by one) read and write projects at most, never teams or the org; any other
#: actor is refused.
ACTORS = Actors({"agent-assistant": ["project:read"], "session:*": ["project:read", "project:write"]})
#: The longest project name either front end (the API, the MCP server) accepts.
MAX_PROJECT_NAME = 100


class Projects:
    """Each organization's projects: the demo's data, shared by the API and the MCP server (each
    serves requests on threads of its own, hence the lock)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_org: dict[str, list[dict[str, Any]]] = {"acme": [{"id": 1, "name": "website"}], "globex": []}
        self._ids = itertools.count(2)

    def list(self, org: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(project) for project in self._by_org.get(org, [])]

    def delete(self, org: str, project_id: int) -> bool:
        """Remove a project; False when ``org`` has none with that id."""
        with self._lock:
            kept = [project for project in self._by_org.get(org, []) if project["id"] != project_id]
            deleted = len(kept) != len(self._by_org.get(org, []))
            self._by_org[org] = kept
            return deleted

    def create(self, org: str, name: str, created_by: str) -> dict[str, Any]:
        """A new project; ``name`` is checked by the caller (1 to ``MAX_PROJECT_NAME`` characters)."""
        with self._lock:
            project = {"id": next(self._ids), "name": name, "created_by": created_by}
            self._by_org.setdefault(org, []).append(project)
            return dict(project)


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
    if expected is None or not isinstance(password, str):
        return None
    # Compared as bytes: compare_digest raises TypeError on a non-ASCII str (a 500), and
    # "surrogatepass" encodes the lone surrogates a JSON "\ud800" escape decodes to.
    given = password.encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(expected.encode("utf-8", "surrogatepass"), given):
        return None
    return username


def replay_cache(redis_url: str | None, clock: Callable[[], float] = time.time) -> ReplayCache:
    """Where one-time credentials are remembered: Redis, shared by every worker that is given the
    same URL, or this process's memory, which suits a single worker only."""
    return RedisReplayCache(redis_url, clock=clock) if redis_url else MemoryReplayCache(clock=clock)


def create_api(
    *,
    issuer: str,
    resource: str,
    roles: Mapping[str, list[str]],
    memberships: Mapping[tuple[str, str], str],
    passwords: Mapping[str, str],
    grants_url: str,
    jwks_uri: str | None = None,
    jwks: Mapping[str, object] | None = None,
    gateway_key: bytes | None = None,
    introspection: Introspection | None = None,
    tenant_issuers: Mapping[str, str] | None = None,
    redis_url: str | None = None,
    projects: Projects | None = None,
    metrics: CollectorRegistry | None = None,
    clock: Callable[[], float] = time.time,
) -> Flask:
    """Build the API. ``memberships`` maps ``(subject, org)`` to a role name in ``roles``;
    ``passwords`` are the first-party logins; ``grants_url`` is the grants database; ``issuer``'s
    keys are fetched from ``jwks_uri`` or given as a JWK Set, ``jwks``; ``gateway_key`` the
    secret the demo gateway signs viewer contexts with; ``introspection`` where opaque tokens from
    ``issuer`` are checked; ``tenant_issuers`` maps an organization to the issuer URL of its own
    authorization server; ``redis_url`` the Redis server holding the replay cache (DPoP proofs,
    viewer contexts), else it is held in memory; ``projects`` the data it serves (a new
    :class:`Projects` when not given); ``metrics`` a Prometheus registry served at ``GET
    /metrics`` (the demo's, which the library's metrics are exported to); ``clock`` the time
    every check is made at (token expiry, a sign-in's age)."""
    projects = projects if projects is not None else Projects()
    app = Flask("demo_api")
    app.secret_key = secrets.token_bytes(32)
    grants = GrantStore(grants_url)
    try:
        grants.create_schema()
    except OperationalError:
        # Another worker created the table between this one's check and its CREATE: it is there.
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
    # One clock for every verifier: the guard caches results until their expiry on it.
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
    keys = {"jwks": jwks} if jwks is not None else {"jwks_uri": jwks_uri}
    verifier = TrustedIssuers(
        [JWTVerifier(issuer=issuer, audience=resource, clock=clock, **keys), *tenants],
        opaque=opaque,
    )
    replays = replay_cache(redis_url, clock)  # one store for both: their keys cannot collide
    rs = ResourceServer(
        app,
        verifier=verifier,
        roles=Roles(roles),
        membership=lambda subject, org: memberships.get((subject, org)),
        capabilities=capabilities.verifier(),
        session_loader=lambda: session.get("subject"),
        viewer_context=ViewerContextVerifier(
            keys={"gw-1": gateway_key or secrets.token_bytes(32)},
            audience=resource,
            issuers=["demo-gateway"],
            replay_cache=replays,
            clock=clock,
        ),
        # Bearer tokens and DPoP-bound ones (RFC 9449 §7), whose proofs are used once.
        dpop=DPoPVerifier(replay_cache=replays, clock=clock),
        actors=ACTORS,
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

    if metrics is not None:

        @app.get("/metrics")
        @rs.public
        def prometheus_metrics():
            """The Prometheus text format. Public here, on loopback; a real deployment serves it
            on an internal port or behind its own authentication: counts by route and error
            tell an attacker what is being tried."""
            return Response(generate_latest(metrics), content_type=CONTENT_TYPE_LATEST)

    @app.route("/orgs/<org>/projects", methods=["GET", "POST"])
    @rs.require(PROJECTS_SCOPES, org="org", viewer_context=True)
    def org_projects(org: str):
        # Branch on the write method, never on GET: Flask routes HEAD to this view too (with
        # request.method == "HEAD"), and HEAD is authorized as a read.
        if request.method == "POST":
            name = json_body().get("name")
            if not isinstance(name, str) or not 0 < len(name) <= MAX_PROJECT_NAME:
                return {
                    "error": "invalid_request",
                    "error_description": f"name must be a string of 1-{MAX_PROJECT_NAME} characters",
                }, 400
            return projects.create(org, name, current_access.subject), 201
        listing = {"org": org, "projects": projects.list(org), "subject": current_access.subject}
        if current_access.actor is not None:  # RFC 8693 §4.1: who acts for the subject
            listing["actor"] = current_access.actor.sub
        if request.headers.get("X-Gateway"):  # set by the gateway's passthrough policy
            listing["via"] = {h: request.headers.get(h) for h in ("X-Gateway", "X-Request-Id")}
        return listing

    @app.route("/orgs/<org>/projects/<int:project_id>", methods=["GET", "DELETE"])
    @rs.require(PROJECT_SCOPES, org="org")
    def org_project(org: str, project_id: int):
        missing = {"error": "not_found", "error_description": "no such project"}, 404
        if request.method == "DELETE":  # a write: branch on it, never on GET (HEAD comes here too)
            if not projects.delete(org, project_id):
                return missing
            return {"deleted": project_id, "by": current_access.subject, "acr": current_access.acr}
        found = [project for project in projects.list(org) if project["id"] == project_id]
        return found[0] if found else missing

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


def from_environment() -> Flask:
    """The API as a multi-process server builds it in every worker, for instance
    ``gunicorn -w 4 --chdir examples 'demo_api:from_environment()'``: configured by environment
    variables alone, since each worker is a process of its own.

    ``DEMO_ISSUER`` and ``DEMO_RESOURCE`` (required): the trusted authorization server and this
    API's identifier (the tokens' ``aud``, the DPoP proofs' URL). ``DEMO_JWKS``: the issuer's
    JWK Set as JSON, else fetched from ``DEMO_JWKS_URI`` (default: the demo authorization server's
    ``/.well-known/jwks.json``). ``DEMO_REDIS_URL``: the replay cache every worker shares (without
    it each worker remembers proofs and contexts alone, and a replay to another worker passes).
    ``DEMO_GATEWAY_KEY``: the gateway's viewer-context secret, hex, 32 bytes or more.
    ``DEMO_GRANTS_URL``: the grants database (default: a SQLite file of this process's own).
    ``DEMO_INTROSPECTION_ENDPOINT``: where opaque tokens are checked. ``DEMO_TENANT_ISSUERS``: a
    JSON object, organization → issuer URL. ``DEMO_WORKER_HEADER=1`` adds an ``X-Demo-Worker``
    header with the worker's process id to every response, to see which worker answered.
    """
    from demo_auth_server import API_CLIENT, API_SECRET, GLOBEX_MEMBERSHIPS, MEMBERSHIPS, PASSWORDS, ROLES

    env = os.environ
    missing = [name for name in ("DEMO_ISSUER", "DEMO_RESOURCE") if not env.get(name)]
    if missing:
        raise RuntimeError(f"set {' and '.join(missing)}")
    issuer = env["DEMO_ISSUER"]
    grants_url = env.get("DEMO_GRANTS_URL") or (
        f"sqlite:///{tempfile.mkdtemp(prefix='demo-grants-')}/grants.sqlite3"
    )
    gateway_key = env.get("DEMO_GATEWAY_KEY")
    endpoint = env.get("DEMO_INTROSPECTION_ENDPOINT")
    jwks = env.get("DEMO_JWKS")
    jwks_uri = None if jwks else env.get("DEMO_JWKS_URI", f"{issuer}/.well-known/jwks.json")
    app = create_api(
        issuer=issuer,
        resource=env["DEMO_RESOURCE"],
        roles=ROLES,
        memberships={**MEMBERSHIPS, **GLOBEX_MEMBERSHIPS},
        passwords=PASSWORDS,
        grants_url=grants_url,
        jwks=json.loads(jwks) if jwks else None,
        jwks_uri=jwks_uri,
        gateway_key=bytes.fromhex(gateway_key) if gateway_key else None,
        introspection=Introspection(endpoint, API_CLIENT, API_SECRET) if endpoint else None,
        tenant_issuers=json.loads(env.get("DEMO_TENANT_ISSUERS") or "{}"),
        redis_url=env.get("DEMO_REDIS_URL") or None,
    )
    if env.get("DEMO_WORKER_HEADER") == "1":

        @app.after_request
        def name_the_worker(response: Response) -> Response:
            response.headers["X-Demo-Worker"] = str(os.getpid())  # at request time: after any fork
            return response

    return app
