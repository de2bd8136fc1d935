"""A tour of the decision engine: one route's scope map, a few callers, and what each gets.

Run it with ``python examples/policy_tour.py``. It prints, for each request, the status, the
``WWW-Authenticate`` challenge a client would see, and the one-sentence reason for the logs.
"""

from __future__ import annotations

from policy import (
    OrgMismatch,
    Roles,
    ScopeMap,
    assemble_access,
    decide,
    parse_challenges,
    parse_scope,
)

ROLES = Roles(
    {
        "member": ["project:read", "team:read"],
        "admin": ["project:read", "project:write", "team:read", "team:write"],
        "manager": ["project:read", "project:write", "team:read", "team:write", "member:write"],
        "owner": [
            "project:read",
            "project:write",
            "project:admin",
            "team:read",
            "team:write",
            "member:write",
        ],
    }
)

# /orgs/<org>/projects/<project>
PROJECT = ScopeMap(
    {
        "GET": ["project:read", "project:write"],
        "PATCH": ["project:write"],
        "POST": [["project:write", "team:write"], "project:admin"],
        "DELETE": ["project:admin"],
    }
)

# (who, role in org "acme", token scope or None for a browser session, token's org, method)
REQUESTS = [
    ("an admin, with a read-only token", "admin", "project:read", "acme", "GET"),
    ("the same admin and token, editing", "admin", "project:read", "acme", "PATCH"),
    ("the admin after stepping up to project:write", "admin", "project:read project:write", "acme", "PATCH"),
    ("the admin with project:write and team:write", "admin", "project:write team:write", "acme", "POST"),
    ("a member whose token carries project:write", "member", "project:read project:write", "acme", "PATCH"),
    ("a member in a browser session", "member", None, "acme", "PATCH"),
    ("the owner with a project:read token", "owner", "project:read", "acme", "DELETE"),
    ("the admin's acme token on another org's URL", "admin", "project:read", "globex", "GET"),
    ("the owner, with a method the route does not map", "owner", "project:admin", "acme", "PUT"),
]


def main() -> None:
    print("Route /orgs/<org>/projects/<project>, scope map:")
    for method, alternatives in PROJECT.to_dict().items():
        print(f"  {method:<6} any of {alternatives}")
    print()
    for who, role, scope, token_org, method in REQUESTS:
        print(f"{method} by {who}")
        try:
            access = assemble_access(
                subject=f"user-{role}",
                role_scopes=ROLES.scopes_for(role),
                token_scopes=None if scope is None else parse_scope(scope),
                token_org=token_org,
                request_org="acme",
            )
        except OrgMismatch as exc:
            print(f"  -> 401 invalid_token: {exc}\n")
            continue
        decision = decide(access, PROJECT, method, realm="api")
        print(f"  -> {decision.status}  {decision.reason}")
        if decision.www_authenticate:
            print(f"     WWW-Authenticate: {decision.www_authenticate}")
            bearer = next(c for c in parse_challenges(decision.www_authenticate) if c.is_scheme("Bearer"))
            print(f"     a client parses it and asks for: {bearer.get('scope')}")
        print()


if __name__ == "__main__":
    main()
