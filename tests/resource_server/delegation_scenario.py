"""One scenario of delegation (RFC 8693) and step-up authentication (RFC 9470) that every adapter
is put through: the same roles, actors, scope map, tokens and expected answers, so each adapter
is held to the same table. An adapter's test mounts :data:`SCOPE_MAP` at ``/orgs/<org>/projects``
with a view answering :func:`seen`, and hands :func:`run` a function sending one request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policy import Access, Actors, Requirement, Roles, parse_challenges
from tests.support import NOW, Signer

PATH = "/orgs/acme/projects"
ROLES = Roles(
    {
        "admin": ["project:read", "project:write", "project:admin"],
        "reader": ["project:read"],
    }
)
MEMBERS = {("user-1", "acme"): "admin", ("user-2", "acme"): "reader"}
#: GET for anyone who may read; POST a write; PUT an approval only the person may give, never an
#: agent for them; DELETE a write that needs a recent multi-factor (or hardware key) sign-in.
SCOPE_MAP: dict[str, Any] = {
    "GET": "project:read",
    "POST": "project:write",
    "PUT": Requirement("project:write", actors=()),
    "DELETE": Requirement("project:admin", acr=["mfa", "hwk"], max_age=300),
}
#: The reporting agent reads only; the deploy agent may do anything its person may; any other
#: agent is refused (no default).
ACTORS = Actors(
    {"agent:reporting": "project:read", "agent:deploy": ["project:read", "project:write", "project:admin"]}
)
EVERYTHING = "project:read project:write project:admin"
#: The description of the RFC 9470 refusal, in the challenge and the body.
STEP_UP = "a stronger or more recent authentication of the person is required"


def membership(subject: str, org: str | None) -> str | None:
    return MEMBERS.get((subject, org))


def seen(access: Access) -> dict[str, Any]:
    """What the view answers: who, through which actors, with which scopes."""
    return {
        "subject": access.subject,
        "actor": None if access.actor is None else access.actor.sub,
        "actors": [actor.sub for actor in access.actors],
        "scopes": sorted(access.scopes),
    }


#: Sends ``method`` to :data:`PATH` with ``Authorization: Bearer <token>`` and returns the
#: status, the ``WWW-Authenticate`` field values, and the JSON body.
Send = Callable[[str, str], tuple[int, list[str], Any]]


def tokens(signer: Signer) -> dict[str, str]:
    """The tokens of the scenario, minted at ``NOW`` (the verifiers' clock)."""
    person = {"scope": EVERYTHING, "acr": "mfa", "auth_time": NOW - 10}
    return {
        "person": signer.token(**person),
        "person, password only": signer.token(**{**person, "acr": "pwd"}),
        "person, no acr": signer.token(scope=EVERYTHING),
        "person, mfa too long ago": signer.token(**{**person, "auth_time": NOW - 301}),
        "person, read-only token, password only": signer.token(scope="project:read", acr="pwd"),
        "reporting agent": signer.token(**person, act={"sub": "agent:reporting"}),
        "deploy agent for the chat agent": signer.token(
            **person, act={"sub": "agent:deploy", "client_id": "deployer", "act": {"sub": "agent:chat"}}
        ),
        "unknown agent": signer.token(**person, act={"sub": "agent:stranger"}),
    }


def run(send: Send, signer: Signer, *, resource_metadata: str | None = None) -> None:
    """The whole table through one adapter."""
    minted = tokens(signer)

    def ok(name: str, method: str) -> dict[str, Any]:
        status, challenges, body = send(method, minted[name])
        assert (status, challenges) == (200, []), (name, method, status, body)
        return body

    def forbidden(name: str, method: str) -> None:
        status, challenges, body = send(method, minted[name])
        # No challenge: no token could help (DESIGN.md's status table).
        assert (status, challenges) == (403, []), (name, method, status, challenges, body)

    # The person, signed in with a second factor ten seconds ago, does everything.
    for method in ("GET", "POST", "PUT", "DELETE"):
        assert ok("person", method)["actor"] is None
    assert ok("person", "GET") == {
        "subject": "user-1",
        "actor": None,
        "actors": [],
        "scopes": sorted(EVERYTHING.split()),
    }

    # An agent acting for the person: the view sees it; its ceiling caps what the person could do.
    assert ok("reporting agent", "GET") == {
        "subject": "user-1",
        "actor": "agent:reporting",
        "actors": ["agent:reporting"],
        "scopes": ["project:read"],
    }
    forbidden("reporting agent", "POST")  # the person could (above); the agent may not
    deploy = ok("deploy agent for the chat agent", "POST")
    assert (deploy["actor"], deploy["actors"]) == ("agent:deploy", ["agent:deploy", "agent:chat"])
    forbidden("deploy agent for the chat agent", "PUT")  # Requirement(actors=()): the person only
    forbidden("unknown agent", "GET")  # not listed, and no default

    # Step-up: the scope is there, the authentication is not (RFC 9470 §3).
    for name in ("person, password only", "person, no acr", "person, mfa too long ago"):
        status, challenges, body = send("DELETE", minted[name])
        assert status == 401, (name, status, body)
        (challenge,) = parse_challenges(challenges)
        assert challenge.is_scheme("Bearer")
        assert challenge.get("error") == "insufficient_user_authentication"
        assert challenge.get("error_description") == STEP_UP
        assert challenge.get("acr_values") == "mfa hwk"
        assert challenge.get("max_age") == "300"
        assert challenge.get("scope") is None
        assert challenge.get("resource_metadata") == resource_metadata
        assert body["error"] == "insufficient_user_authentication", body

    # Scopes first, then authentication: a token lacking the scope is told about the scope.
    status, challenges, _ = send("DELETE", minted["person, read-only token, password only"])
    assert status == 403
    (challenge,) = parse_challenges(challenges)
    assert (challenge.get("error"), challenge.get("scope")) == ("insufficient_scope", "project:admin")
