"""What a decision is made of: :class:`Decision`, the allowed decision a scope map prebuilds for
each of its alternatives, and the phrases that name alternatives in a decision's reason.

It sits below both :mod:`policy.scope_map`, which precompiles allowed decisions, and
:mod:`policy.decision`, which returns them, so neither imports the other to build one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Decision", "allowed_decision", "describe_alternative", "describe_alternatives"]


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of :func:`~policy.decision.decide`.

    ``status`` is 200, 403, or 401 for ``error="insufficient_user_authentication"`` (RFC 9470
    §3: the person must authenticate again, more strongly or more recently). ``error`` is the
    error code sent in the challenge (``"insufficient_scope"``, RFC 6750 §3.1, or
    ``"insufficient_user_authentication"``) and ``None`` when there is no challenge. ``scope``
    lists the scopes the challenge advertises, sorted; ``acr_values`` and ``max_age`` the
    authentication it asks for (RFC 9470 §3); ``www_authenticate`` is the whole header value or
    ``None``. ``reason`` is one sentence for logs and tooling, never sent to the client by default.
    """

    allowed: bool
    status: int
    error: str | None
    scope: tuple[str, ...]
    www_authenticate: str | None
    reason: str
    acr_values: tuple[str, ...] = ()
    max_age: int | None = None


def describe_alternative(alternative: frozenset[str]) -> str:
    """One all-of alternative for a reason: its scopes, sorted, joined by "and"."""
    return " and ".join(sorted(alternative))


def describe_alternatives(alternatives: tuple[frozenset[str], ...]) -> str:
    """Any-of alternatives for a reason, in declaration order, joined by ", or"."""
    return ", or ".join(describe_alternative(alt) for alt in alternatives)


def allowed_decision(method: str, alternative: frozenset[str], described: str | None = None) -> Decision:
    """The (shared, immutable) decision for ``method`` allowed through ``alternative``
    (``described``: the alternative with its conditions, when it has some)."""
    what = described if described is not None else describe_alternative(alternative)
    return Decision(
        allowed=True,
        status=200,
        error=None,
        scope=(),
        www_authenticate=None,
        reason=f"{method} allowed: the effective scopes include {what}.",
    )
