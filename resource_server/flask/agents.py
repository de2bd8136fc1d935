"""The Flask endpoints around capability tokens: agents mint them, people approve write scopes.

``POST /orgs/<org>/agent-token``      any authenticated member → a de-escalated capability token
``POST /orgs/<org>/agent-approvals``  a first-party session only → approve scopes for one session

Both take JSON only and act only on POST, so a cross-site form or a link cannot trigger them (a
cross-origin ``application/json`` POST needs a CORS preflight this blueprint never grants), and a
bearer or capability token can never approve anything: an agent cannot approve itself. A grants
store that cannot be reached is ``503`` with ``Retry-After``, as every shared store is.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from .. import agent_endpoints
from ..agent_endpoints import UNAVAILABLE, Answer
from ..bodies import BodyError
from ..capability import CapabilityIssuer
from ..guard import Granted
from ..tokens.errors import VerificationUnavailable
from . import ResourceServer, json_body
from .marks import mark
from .responses import denial_response

__all__ = ["agent_blueprint"]

_ORG_VARIABLE = re.compile(r"<(?:[^<>:]+:)?org>")


def _answer(answer: Answer) -> Response:
    response = jsonify(answer.body)
    response.status_code = answer.status
    return response


def _unavailable(rs: ResourceServer, error: VerificationUnavailable) -> Response:
    """``503`` with ``Retry-After`` and the library's JSON body: the grants store cannot be
    reached now (the status table's "a shared store cannot be reached")."""
    refusals = rs._state(current_app).guard.refusals
    return denial_response(refusals.unavailable(error, UNAVAILABLE))


def _member_json(rs: ResourceServer, org: str) -> tuple[dict[str, Any], Granted] | Response:
    """The authenticated member and the JSON object body, or the response refusing them
    (authentication first, so an anonymous caller always gets the 401 challenge)."""
    granted = rs.authenticate(org)
    if isinstance(granted, Response):
        return granted
    if request.mimetype != "application/json":
        return _answer(agent_endpoints.not_json)
    try:
        # Bounded and strict: size, nesting depth, duplicate members (get_json would let a body
        # nested 1,000 deep raise RecursionError, a 500).
        body = json_body()
    except BodyError as exc:
        return _answer(agent_endpoints.error(400, "invalid_request", exc.description))
    return body, granted


def agent_blueprint(
    rs: ResourceServer,
    *,
    issuer: CapabilityIssuer,
    grants: Any,
    approval_ttl: int = 3600,
    url_prefix: str = "/orgs/<org>",
) -> Blueprint:
    """Build the blueprint; register it on the app that ``rs`` protects. ``grants`` is a
    :class:`~resource_server.grants.GrantStore` (the one ``issuer`` reads approvals from)."""
    if _ORG_VARIABLE.search(url_prefix) is None:
        # The views act in the URL's org; without the variable they could not be called at all.
        raise ValueError(f"agent_blueprint url_prefix {url_prefix!r} has no <org> URL variable")
    bp = Blueprint("resource_server_agents", __name__, url_prefix=url_prefix)
    known_scopes = rs.roles.all_scopes

    @bp.post("/agent-token")
    def agent_token(org: object) -> Response:
        org = str(org)  # the same text _outcome compares, whatever converter the prefix uses
        checked = _member_json(rs, org)
        if isinstance(checked, Response):
            return checked
        body, granted = checked
        try:
            return _answer(agent_endpoints.mint(issuer, granted, body))
        except VerificationUnavailable as exc:  # the approvals cannot be read now
            return _unavailable(rs, exc)

    @bp.post("/agent-approvals")
    def agent_approvals(org: object) -> Response | tuple[Response, int]:
        org = str(org)
        checked = _member_json(rs, org)
        if isinstance(checked, Response):
            return checked
        body, granted = checked
        try:
            return _answer(
                agent_endpoints.approve(
                    grants, granted, org, body, known_scopes=known_scopes, ttl=approval_ttl
                )
            )
        except VerificationUnavailable as exc:  # the approval cannot be recorded now
            return _unavailable(rs, exc)

    for view in (agent_token, agent_approvals):  # for `flask scopes check` and OpenAPI
        mark(view, authenticated=True, org="org")
    return bp
