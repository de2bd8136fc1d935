"""What the agent endpoints answer, framework-free: every adapter's endpoints (Flask's blueprint,
Django's views) authenticate the caller and read the JSON body their own way, then call these.

``mint``      any authenticated member → a de-escalated capability token for one agent session
``approve``   a first-party session only → approve write scopes for one agent session

Scopes come from the caller's access, never from the request: a request can only narrow them.
A grants store that cannot answer raises :class:`~resource_server.VerificationUnavailable`,
which the adapter answers ``503`` with ``Retry-After`` (:data:`UNAVAILABLE` as the description).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from policy import InvalidScope

from .capability import CapabilityIssuer, check_session_id, scope_tokens
from .guard import Granted

__all__ = ["UNAVAILABLE", "Answer", "approve", "error", "mint", "not_json"]

#: The description of the 503 a grants store that cannot answer gets.
UNAVAILABLE = "the grants store cannot be reached right now; retry later"


@dataclass(frozen=True, slots=True)
class Answer:
    """A JSON response: its status and body."""

    status: int
    body: dict[str, Any]


def error(status: int, code: str, description: str) -> Answer:
    return Answer(status, {"error": code, "error_description": description})


#: The answer to a body that is not JSON (a cross-site form cannot send JSON without a preflight).
not_json = error(415, "invalid_request", "send a JSON body (Content-Type: application/json)")


def mint(issuer: CapabilityIssuer, granted: Granted, body: dict[str, Any]) -> Answer:
    """Mint a capability for the caller's access, narrowed to ``requestedScopes`` if given."""
    if granted.token is not None and granted.token.kind == "capability":
        # Otherwise a capability could renew itself forever and its short ttl would mean nothing.
        return error(403, "forbidden", "a capability token cannot mint capability tokens")
    try:
        session_id = check_session_id(body.get("sessionId"))
        requested = body.get("requestedScopes")
        capability = issuer.mint_capability(
            granted.access,
            session_id=session_id,
            requested_scopes=None if requested is None else scope_tokens(requested, "requestedScopes"),
        )
    except UnicodeError:  # a database driver's, a ValueError too: its text is not ours to send
        return error(400, "invalid_request", "the request holds text that cannot be stored")
    except (ValueError, InvalidScope) as exc:  # our own validation: safe, specific messages
        return error(400, "invalid_request", str(exc))
    return Answer(
        200,
        {
            "token": capability.token,
            "expires_at": capability.expires_at,
            "scopes": sorted(capability.scopes),
        },
    )


def approve(
    grants: Any,
    granted: Granted,
    org: str,
    body: dict[str, Any],
    *,
    known_scopes: frozenset[str],
    ttl: int,
) -> Answer:
    """Record the caller's approval of ``scopes`` for ``sessionId`` in ``org``: a first-party
    session only (a token, or another service's viewer context, cannot approve), capped at the
    caller's own access, through ``grants`` (a store with ``approve``)."""
    if granted.source != "session":
        return error(403, "forbidden", "approvals need a first-party session; a token cannot approve")
    try:
        session_id = check_session_id(body.get("sessionId"))
        scopes = scope_tokens(body.get("scopes"), "scopes")
    except (ValueError, InvalidScope) as exc:
        return error(400, "invalid_request", str(exc))
    unknown = scopes - known_scopes
    if unknown or not scopes:
        return error(
            400,
            "invalid_scope",
            f"unknown scopes: {' '.join(sorted(unknown))}" if unknown else "no scopes given",
        )
    approved = scopes & granted.access.scopes  # nobody approves more than they hold themselves
    if not approved:
        return error(403, "forbidden", "none of these scopes is yours to approve")
    try:
        grant = grants.approve(
            org=org, subject=granted.access.subject, session_id=session_id, scopes=approved, ttl=ttl
        )
    except UnicodeError:
        return error(400, "invalid_request", "the request holds text that cannot be stored")
    except ValueError as exc:  # the store's own checks (a NUL in an id, say), made before any SQL
        return error(400, "invalid_request", str(exc))
    return Answer(
        201, {"sessionId": session_id, "scopes": sorted(grant.scopes), "expires_at": grant.expires_at}
    )
