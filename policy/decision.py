"""The authorization decision for one request: :func:`decide` → :class:`Decision`."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

from .challenge import Challenge, bearer_challenge, format_challenge

# Defined below both this module and the scope map, which prebuilds allowed decisions; still
# importable from here, where they were first defined.
from .outcome import Decision, describe_alternative
from .outcome import allowed_decision as allowed_decision
from .outcome import describe_alternatives as describe_alternatives
from .requirements import Requirement
from .scope_map import Rule, ScopeMap

if TYPE_CHECKING:
    from .access import Access

__all__ = ["Decision", "decide"]

INSUFFICIENT_SCOPE = "insufficient_scope"
INSUFFICIENT_USER_AUTHENTICATION = "insufficient_user_authentication"
_STEP_UP_DESCRIPTION = "a stronger or more recent authentication of the person is required"


def _forbidden(reason: str) -> Decision:
    return Decision(allowed=False, status=403, error=None, scope=(), www_authenticate=None, reason=reason)


def _printable_method(method: object) -> str:
    text = method if isinstance(method, str) else type(method).__name__
    return text[:32].encode("ascii", "backslashreplace").decode("ascii")


def decide(
    access: Access,
    scope_map: ScopeMap | Mapping[str, object],
    method: str,
    *,
    realm: str | None = None,
    resource_metadata: str | None = None,
    now: float | None = None,
) -> Decision:
    """Decide whether ``access`` may perform ``method`` under ``scope_map``.

    Allowed iff the effective scopes hold every scope of at least one alternative for the
    method (``HEAD`` falls back to ``GET``) and the request meets that alternative's conditions
    (:class:`~policy.Requirement`: its current actor is allowed, and the person authenticated as
    it asks). ``now`` (Unix time) is needed for an alternative with ``max_age``. When denied,
    scopes come first, then authentication, so a client that follows the challenges succeeds in
    at most two steps (the first may be silent, the second asks the person once):

    * an alternative's scopes are held and its actor is allowed, but the person authenticated too
      weakly or too long ago: 401 with an RFC 9470 §3 ``insufficient_user_authentication``
      challenge carrying that alternative's ``acr_values`` and ``max_age`` (a first-party
      session cannot show either: 403 without a challenge);
    * the token falls short and the member's role (within the actor's ceiling) holds some
      alternative whose actor condition the request meets: 403 with an RFC 6750 §3.1
      ``insufficient_scope`` challenge advertising one alternative, the first in declaration order
      (RFC 6750 §3: the ``scope`` attribute names the scope "necessary to access the requested
      resource"), so stepping up to it succeeds;
    * no token could help (the role or the actor's ceiling holds no alternative, the route
      refuses this actor, the method is not mapped, or the request is a first-party session): 403
      without a challenge and ``error is None``, so a client does not re-authorize its user for
      nothing.

    ``realm`` and ``resource_metadata`` (RFC 9728 §5.1) are added to the challenge when given.
    Pass a prebuilt :class:`~policy.scope_map.ScopeMap`: a plain mapping is compiled on every
    call. The allowed path returns a decision prebuilt with the scope map and allocates nothing.
    """
    if not isinstance(scope_map, ScopeMap):
        scope_map = ScopeMap(scope_map)
    rules = scope_map._rules
    rule = rules.get(method)
    if rule is None:
        rule = rules.get(method.upper()) if isinstance(method, str) else None
        if rule is None:
            return _forbidden(
                f"{_printable_method(method)} denied: the route's scope map has no entry for this method, "
                "so no token or role can allow it."
            )
    scopes = access.scopes
    for alternative, decision in rule.checks:
        if alternative <= scopes:
            return decision
    if rule.conditional:
        return _conditional(access, rule, now, realm, resource_metadata)
    return _deny(access, rule, realm, resource_metadata)


def _conditional(
    access: Access, rule: Rule, now: float | None, realm: str | None, resource_metadata: str | None
) -> Decision:
    """The alternatives with conditions: allowed by the first one met; else, when one falls
    short only of how the person authenticated, the RFC 9470 step-up; else as :func:`_deny`."""
    scopes, actor = access.scopes, access.actor
    current = None if actor is None else actor.sub
    step_up: Requirement | None = None
    for requirement, decision in rule.conditional:
        if not requirement.scopes <= scopes or not requirement.allows_actor(current):
            continue
        if requirement.authenticated(access.acr, access.auth_time, now):
            return decision
        step_up = step_up or requirement
    if step_up is None:
        return _deny(access, rule, realm, resource_metadata)
    needed = step_up.describe()
    if access.is_session:
        return _forbidden(
            f"{rule.method} denied: it needs {needed}, and a first-party session cannot show how or "
            "when the person authenticated."
        )
    reason = f"{rule.method} denied: the person must authenticate again for {needed}"
    return Decision(
        allowed=False,
        status=401,
        error=INSUFFICIENT_USER_AUTHENTICATION,
        scope=(),
        www_authenticate=_step_up_challenge(step_up.acr_values, step_up.max_age, realm, resource_metadata),
        reason=f"{reason} (the token's acr is {_shown(access.acr)}, its auth_time {_shown(access.auth_time)}).",
        acr_values=step_up.acr_values,
        max_age=step_up.max_age,
    )


def _shown(value: object) -> str:
    """A token's value, bounded and escaped, for a reason (it reaches logs)."""
    return "absent" if value is None else ascii(value if isinstance(value, int) else str(value)[:64])


@lru_cache(maxsize=512)
def _insufficient_scope_challenge(
    scope: tuple[str, ...], realm: str | None, resource_metadata: str | None
) -> str:
    # A handful of distinct (scope, realm) pairs per application: build each header once.
    return bearer_challenge(
        realm=realm, error=INSUFFICIENT_SCOPE, scope=scope, resource_metadata=resource_metadata
    )


@lru_cache(maxsize=512)
def _step_up_challenge(
    acr_values: tuple[str, ...], max_age: int | None, realm: str | None, resource_metadata: str | None
) -> str:
    """RFC 9470 §3: ``acr_values`` space-separated, ``max_age`` in seconds, each when required."""
    params = {
        "realm": realm,
        "error": INSUFFICIENT_USER_AUTHENTICATION,
        "error_description": _STEP_UP_DESCRIPTION,
        "acr_values": " ".join(acr_values) if acr_values else None,
        "max_age": None if max_age is None else str(max_age),
        "resource_metadata": resource_metadata,
    }
    return format_challenge(Challenge("Bearer", {k: v for k, v in params.items() if v is not None}))


def _deny(access: Access, rule: Rule, realm: str | None, resource_metadata: str | None) -> Decision:
    method, requirements = rule.method, rule.requirements
    needed = rule.description
    token, role = access.token_scopes, access.role_scopes
    if token is None:
        return _forbidden(f"{method} denied: the member's role grants none of: {needed}.")
    actor = access.actor
    current = None if actor is None else actor.sub
    usable = [r for r in requirements if r.allows_actor(current)]
    if not usable:
        return _forbidden(
            f"{method} denied: the route does not let the actor {_shown(current)} act for the person "
            f"(it needs {needed}), so no token can help."
        )
    ceiling = access.actor_ceiling
    reachable = role if ceiling is None else role & ceiling
    advertised = next((r.scopes for r in usable if r.scopes <= reachable), None)
    if advertised is None:
        # No token can help: role ∩ token (∩ the actor's ceiling) never reaches an alternative
        # they lack. A challenge would send the client to re-authorize its user for nothing
        # (RFC 6750 §3.1: the scope attribute names what is "necessary to access", which no token
        # can supply).
        return _forbidden(_why_no_token_helps(access, usable, needed, method))
    scope = tuple(sorted(advertised))
    missing = describe_alternative(advertised - token)
    reason = (
        f"{method} denied: the token lacks {missing} (it needs {needed}); "
        f"a token that also grants {missing} would succeed."
    )
    return Decision(
        allowed=False,
        status=403,
        error=INSUFFICIENT_SCOPE,
        scope=scope,
        www_authenticate=_insufficient_scope_challenge(scope, realm, resource_metadata),
        reason=reason,
    )


def _why_no_token_helps(access: Access, usable: list[Requirement], needed: str, method: str) -> str:
    token, role, ceiling = access.token_scopes or frozenset(), access.role_scopes, access.actor_ceiling
    if ceiling is not None:
        held = next((r.scopes for r in usable if r.scopes <= role), None)
        if held is not None:
            return (
                f"{method} denied: the actor {_shown(access.actor.sub if access.actor else None)} may "
                f"not exercise {describe_alternative(held - ceiling)}, so no token can help."
            )
    held_by_token = next((r.scopes for r in usable if r.scopes <= token), None)
    if held_by_token is not None:
        return (
            f"{method} denied: the token grants {describe_alternative(held_by_token)} but the member's "
            f"role lacks {describe_alternative(held_by_token - role)}, so no token can help."
        )
    return f"{method} denied: neither the token nor the member's role grants {needed}, so no token can help."
