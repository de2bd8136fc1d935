"""The authorization decision for one request: :func:`decide` → :class:`Decision`."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING

from .challenge import bearer_challenge

# Defined below both this module and the scope map, which prebuilds allowed decisions; still
# importable from here, where they were first defined.
from .outcome import Decision, describe_alternative, describe_alternatives
from .outcome import allowed_decision as allowed_decision
from .scope_map import ScopeMap

if TYPE_CHECKING:
    from .access import Access
    from .scope_map import Rule

__all__ = ["Decision", "decide"]

INSUFFICIENT_SCOPE = "insufficient_scope"


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
) -> Decision:
    """Decide whether ``access`` may perform ``method`` under ``scope_map``.

    Allowed iff the effective scopes hold every scope of at least one alternative for the
    method (``HEAD`` falls back to ``GET``). When denied:

    * the token falls short (no alternative lies inside the token's scopes) and the member's role
      holds some alternative: 403 with an RFC 6750 §3.1 ``insufficient_scope`` challenge
      advertising one alternative, the first in declaration order that the role holds (RFC 6750
      §3: the ``scope`` attribute names the scope "necessary to access the requested resource"),
      so stepping up to it succeeds;
    * no token could help (the role holds no alternative, the token would do but the role does
      not, the method is not mapped, or the request is a first-party session): 403 without a
      challenge and ``error is None``, so a client does not re-authorize its user for nothing.

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
    return _deny(access, rule, realm, resource_metadata)


@lru_cache(maxsize=512)
def _insufficient_scope_challenge(
    scope: tuple[str, ...], realm: str | None, resource_metadata: str | None
) -> str:
    # A handful of distinct (scope, realm) pairs per application: build each header once.
    return bearer_challenge(
        realm=realm, error=INSUFFICIENT_SCOPE, scope=scope, resource_metadata=resource_metadata
    )


def _deny(access: Access, rule: Rule, realm: str | None, resource_metadata: str | None) -> Decision:
    method, alternatives = rule.method, rule.alternatives
    needed = describe_alternatives(alternatives)
    token, role = access.token_scopes, access.role_scopes
    if token is None:
        return _forbidden(f"{method} denied: the member's role grants none of: {needed}.")
    advertised = next((alt for alt in alternatives if alt <= role), None)
    if advertised is None:
        # No token can help: role ∩ token never reaches an alternative the role lacks. A
        # challenge would send the client to re-authorize its user for nothing (RFC 6750 §3.1:
        # the scope attribute names what is "necessary to access", which no token can supply).
        held_by_token = next((alt for alt in alternatives if alt <= token), None)
        if held_by_token is not None:
            return _forbidden(
                f"{method} denied: the token grants {describe_alternative(held_by_token)} but the member's "
                f"role lacks {describe_alternative(held_by_token - role)}, so no token can help."
            )
        return _forbidden(
            f"{method} denied: neither the token nor the member's role grants {needed}, so no token can help."
        )
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
