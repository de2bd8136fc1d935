"""The ``scopes`` tools every adapter offers (``flask scopes``, ``manage.py scopes``), framework-free:
the route table, the checks that fail on a misconfigured route, and the explanation of one
request, each as data (for ``--json``) and as the text the commands print.

An adapter lists its routes as :class:`Route` values (walking its own URL map) and runs the
request through its own per-request code for ``explain``; everything else is here, so the tools of
two frameworks print the same table, the same problems and the same explanations.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from policy import Roles, ScopeMap, decide

from .checks import ungranted_scopes
from .denials import Denial
from .guard import Granted
from .openapi import requirement_object

__all__ = [
    "Problem",
    "Route",
    "Wording",
    "check_explained_token",
    "explanation",
    "find_problems",
    "format_explanation",
    "format_problems",
    "format_route_table",
    "route_problems",
    "route_table",
]


@dataclass(frozen=True)
class Route:
    """One URL rule as an adapter sees it. ``kind``: "scope map", "authenticated" (any member,
    such as the agent endpoints), "resource token", "public" (declared public on purpose) or
    "unprotected". ``org`` is the URL variable the protection reads the organization from;
    ``arguments`` are the variables the rule has. ``methods`` leaves out HEAD and OPTIONS."""

    rule: str
    endpoint: str
    methods: tuple[str, ...]
    kind: str
    scope_map: ScopeMap | None = None
    org: str | None = None
    arguments: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Wording:
    """How a framework's users fix what :func:`route_problems` finds: ``public`` says how to
    declare a route public on purpose, ``no_org`` how to say a route names no organization."""

    public: str
    no_org: str = "use org=None for a route that names no organization"
    org_none: str = "declares org=None"


def _roles_reaching(roles: Roles, alternatives: tuple[frozenset[str], ...]) -> list[str]:
    return [name for name, scopes in roles.items() if any(alt <= scopes for alt in alternatives)]


def route_table(routes: Iterable[Route], roles: Roles) -> list[dict[str, Any]]:
    """Rule x method x required scopes, and which roles can reach each (the ``--json`` rows).
    ``requirements`` lists the alternatives with what each asks beyond scopes (a
    :class:`policy.Requirement`'s ``acr_values``, ``max_age`` and ``actors``, when set), as the
    OpenAPI extension ``x-authorization-conditions`` does."""
    rows = []
    for route in routes:
        for method in route.methods or ("-",):
            requirements = route.scope_map.requirements(method) if route.scope_map else None
            alternatives = tuple(r.scopes for r in requirements) if requirements else None
            rows.append(
                {
                    "rule": route.rule,
                    "method": method,
                    "protection": route.kind,
                    "scopes": [sorted(a) for a in alternatives] if alternatives else None,
                    "roles": _roles_reaching(roles, alternatives) if alternatives else None,
                    "requirements": [requirement_object(r) for r in requirements] if requirements else None,
                }
            )
    return rows


def _alternative_text(requirement: dict[str, Any]) -> str:
    """One alternative of a row: its scopes, then its conditions in parentheses."""
    said = []
    if "acr_values" in requirement:
        said.append(f"acr {' or '.join(requirement['acr_values'])}")
    if "max_age" in requirement:
        said.append(f"authenticated within {requirement['max_age']} s")
    if "actors" in requirement:
        actors = requirement["actors"]
        said.append(f"actors {', '.join(actors)} only" if actors else "no actor")
    scopes = " ".join(requirement["scopes"])
    return f"{scopes} ({'; '.join(said)})" if said else scopes


def format_route_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows of :func:`route_table` as the text ``scopes routes`` prints."""
    return "\n".join(
        f"{r['rule']:<40} {r['method']:<7} "
        + (
            " | ".join(_alternative_text(a) for a in r["requirements"])
            if r["requirements"]
            else f"({r['protection']})"
        )
        + (f"   roles: {', '.join(r['roles']) or 'none'}" if r["roles"] is not None else "")
        for r in rows
    )


@dataclass(frozen=True)
class Problem:
    """One thing :func:`find_problems` found: ``kind`` is "org" (the rule lacks the org
    variable its protection reads), "org_none" (the protection names no org on a rule with an
    ``org`` variable), "method" (a method the scope map misses), "scope" (a scope no role grants)
    or "unprotected"; ``message`` is the sentence ``scopes check`` prints."""

    kind: str
    route: Route
    message: str


def find_problems(
    routes: Sequence[Route], roles: Roles, wording: Wording, *, skip: Iterable[str] = ()
) -> list[Problem]:
    """What ``scopes check`` fails on: a rule without the org variable its protection reads, a
    rule with an ``org`` variable whose protection says it names none, a method its scope map
    misses, a scope no role grants, and any route neither protected nor declared public (except
    the endpoints in ``skip``, which the adapter reports another way)."""
    skipped = set(skip)
    found = []
    for route in routes:
        if route.org is not None and route.org not in route.arguments:
            found.append(
                Problem(
                    "org",
                    route,
                    f"{route.rule} ({route.endpoint}) reads the organization from the URL variable "
                    f"{route.org!r}, which the rule does not have: every request gets 403 ({wording.no_org})",
                )
            )
        if route.org is None and route.kind == "scope map" and "org" in route.arguments:
            found.append(
                Problem(
                    "org_none",
                    route,
                    f"{route.rule} ({route.endpoint}) {wording.org_none} but has the URL variable 'org': "
                    "its requests are checked in the token's own organization, not the URL's",
                )
            )
        if route.scope_map is None:
            continue
        for method in route.methods:
            if route.scope_map.rule(method) is None:
                found.append(
                    Problem(
                        "method", route, f"{route.rule} accepts {method}, which its scope map does not cover"
                    )
                )
        found += [
            Problem("scope", route, message)
            for message in ungranted_scopes(roles, [(route.rule, route.scope_map)])
        ]
    found += [
        Problem("unprotected", r, f"{r.rule} ({r.endpoint}) has no protection; {wording.public}")
        for r in routes
        if r.kind == "unprotected" and r.endpoint not in skipped
    ]
    return found


def route_problems(
    routes: Sequence[Route], roles: Roles, wording: Wording, *, skip: Iterable[str] = ()
) -> list[str]:
    """The sentences of :func:`find_problems`."""
    return [problem.message for problem in find_problems(routes, roles, wording, skip=skip)]


def format_problems(found: Sequence[str]) -> str:
    """What ``scopes check`` prints: each problem on its line, or that all is well."""
    return "\n".join(found) or "scope maps OK"


def check_explained_token(token: str) -> None:
    """``ValueError`` for a token no ``Authorization`` header could carry, before any request
    is built with it."""
    if any(ord(char) < 0x21 or ord(char) > 0x7E for char in token):
        raise ValueError("the token holds spaces, control characters or non-ASCII")


def explanation(
    outcome: Granted | Denial,
    *,
    method: str,
    scope_map: ScopeMap,
    response: Callable[[Denial], tuple[int, str | None, Any]] | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """What ``scopes explain`` reports for the outcome the server's own code reached: the
    status, ``WWW-Authenticate`` and body it sends (``response`` gives those three as the
    adapter sends them; by default the denial's own), and the reason, which is never sent.
    ``now`` is the time the server decided at (its guard's clock), for a ``max_age``."""
    if isinstance(outcome, Granted):
        reason = decide(outcome.access, scope_map, method, now=now).reason
        return {"status": 200, "reason": reason, "www_authenticate": None, "body": None}
    status, challenge, body = (
        response(outcome)
        if response is not None
        else (outcome.status, outcome.www_authenticate, json.loads(outcome.body))
    )
    return {
        "status": status,
        "reason": outcome.reason,
        "www_authenticate": challenge,
        "body": None if method == "HEAD" else body,  # HEAD has no content
    }


def format_explanation(result: dict[str, Any]) -> str:
    """An :func:`explanation` as the text ``scopes explain`` prints."""
    text = f"{result['status']}: {result['reason']}"
    if result["www_authenticate"]:
        text += f"\nWWW-Authenticate: {result['www_authenticate']}"
    if result["body"] is not None:
        text += f"\n{json.dumps(result['body'])}"
    return text
