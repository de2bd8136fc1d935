"""The demo's protected API: a Flask app whose views declare, per method, the scopes they need.

It trusts one authorization server (``issuer``), whose signing keys it fetches over HTTP from
``jwks_uri``; who is a member of which organization, in which role, is the API's own knowledge,
given as ``memberships``.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from flask import Flask, request
from flask.views import MethodView

from policy import Roles, ScopeMap
from resource_server.flask import ResourceServer, current_access, current_token
from resource_server.tokens import JWTVerifier

PROJECTS_SCOPES = {"GET": "project:read", "POST": "project:write"}


def create_api(
    *,
    issuer: str,
    jwks_uri: str,
    resource: str,
    roles: Mapping[str, list[str]],
    memberships: Mapping[tuple[str, str], str],
) -> Flask:
    """Build the API. ``memberships`` maps ``(subject, org)`` to a role name in ``roles``."""
    app = Flask("demo_api")
    app.config.update(
        RESOURCE_SERVER_RESOURCE=resource,  # serves RFC 9728 metadata and names it in challenges
        RESOURCE_SERVER_AUTHORIZATION_SERVERS=[issuer],
    )
    verifier = JWTVerifier(issuer=issuer, audience=resource, jwks_uri=jwks_uri)
    rs = ResourceServer(
        app,
        verifier=verifier,
        roles=Roles(roles),
        membership=lambda subject, org: memberships.get((subject, org)),
    )
    projects: dict[str, list[dict[str, object]]] = {"acme": [{"id": 1, "name": "website"}], "globex": []}
    ids = itertools.count(2)

    @app.route("/orgs/<org>/projects", methods=["GET", "POST"])
    @rs.require(PROJECTS_SCOPES, org="org")
    def org_projects(org: str):
        if request.method == "GET":
            return {"org": org, "projects": projects.get(org, [])}
        body = request.get_json(silent=True)
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not 0 < len(name) <= 100:
            return {
                "error": "invalid_request",
                "error_description": "name must be a string of 1-100 characters",
            }, 400
        project = {"id": next(ids), "name": name, "created_by": current_access.subject}
        projects.setdefault(org, []).append(project)
        return project, 201

    @rs.require(org="org")
    class TeamAPI(MethodView):
        """A MethodView: its scope map sits on the class."""

        scope_map = ScopeMap({"GET": ["team:read", "project:read"], "PUT": [["team:write", "project:write"]]})

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
