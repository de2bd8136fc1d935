"""What one alternative of a scope map asks beyond scopes: how the person authenticated (RFC 9470)
and who may act (RFC 8693).

``Requirement("project:admin", acr=["mfa"], max_age=300)`` is written wherever a scope-map
alternative is written today, alone or next to plain ones::

    ScopeMap({"GET": "project:read",
              "DELETE": Requirement("project:admin", acr=["mfa"], max_age=300, actors=())})

``acr``: the acceptable authentication context class references (RFC 9470 §3, OpenID Connect
Core §2), any one of which the token's ``acr`` must be; ``max_age``: at most this many seconds
since the person last authenticated (the token's ``auth_time``); ``actors``: ``None`` lets any
actor act (within its ceiling, :class:`policy.Actors`), ``()`` refuses delegated requests (only
the person, never an agent for them), and a tuple of actor ``sub`` values lets only those actors
act. A request with no actor (the person acting directly) meets every actor condition.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from .identifiers import valid_identifier
from .scopes import InvalidScope, validate_scope_token

__all__ = ["Requirement", "plain"]

# RFC 9470 §3 / OpenID Connect Core §3.1.2.1: acr_values is a space-separated string of values,
# so one value holds no space; it is sent in a quoted challenge parameter, so it is printable
# ASCII without `"` and `\` (the characters of an RFC 6749 scope-token, which acr URIs and names
# such as "urn:mace:incommon:iap:silver" or "mfa" fit).
_ACR = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,256}")
#: More acceptable values than any policy lists; and a day's worth of seconds times a thousand.
_MAX_ACR_VALUES, _MAX_AGE = 32, 86_400_000


@dataclass(frozen=True, slots=True, init=False)
class Requirement:
    """One alternative of a scope map: all of ``scopes``, and the authentication and actor
    conditions. Validated at construction: ``ValueError`` naming what is wrong."""

    scopes: frozenset[str]
    acr: frozenset[str]
    #: The acceptable acr values in the order given, as the challenge's ``acr_values`` lists them.
    acr_values: tuple[str, ...]
    max_age: int | None
    actors: frozenset[str] | None

    def __init__(
        self,
        scopes: str | Iterable[str],
        *,
        acr: str | Iterable[str] = (),
        max_age: int | None = None,
        actors: Collection[str] | None = None,
    ) -> None:
        object.__setattr__(self, "scopes", _scopes(scopes))
        values = _acr_values(acr)
        object.__setattr__(self, "acr", frozenset(values))
        object.__setattr__(self, "acr_values", values)
        if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, int)):
            raise ValueError("Requirement max_age must be an integer number of seconds or None")
        if max_age is not None and not 0 <= max_age <= _MAX_AGE:
            raise ValueError(f"Requirement max_age must be between 0 and {_MAX_AGE} seconds")
        object.__setattr__(self, "max_age", max_age)
        object.__setattr__(self, "actors", _actors(actors))

    @property
    def authenticates(self) -> bool:
        """Whether this alternative asks how (or how recently) the person authenticated."""
        return bool(self.acr) or self.max_age is not None

    @property
    def conditional(self) -> bool:
        """Whether it asks anything beyond its scopes."""
        return self.authenticates or self.actors is not None

    def allows_actor(self, actor: str | None) -> bool:
        """Whether a request whose current actor is ``actor`` (None: no delegation) may use it."""
        return actor is None or self.actors is None or actor in self.actors

    def authenticated(self, acr: str | None, auth_time: int | None, now: float | None) -> bool:
        """Whether a person who authenticated with ``acr`` at ``auth_time`` meets it at ``now``."""
        if self.acr and acr not in self.acr:
            return False
        if self.max_age is None:
            return True
        if now is None:
            raise TypeError("a Requirement with max_age needs now= (the current Unix time) to decide")
        # auth_time in the future (beyond what the verifier let through) is not "recent": it is
        # compared as it is, so it counts as authenticated just now, never as older.
        return auth_time is not None and now - auth_time <= self.max_age

    def describe(self) -> str:
        """The alternative for a reason or a tool: its scopes, then its conditions."""
        text = " and ".join(sorted(self.scopes))
        conditions = []
        if self.acr_values:
            conditions.append(f"acr {' or '.join(self.acr_values)}")
        if self.max_age is not None:
            conditions.append(f"authenticated within {self.max_age} s")
        if self.actors is not None:
            conditions.append(
                "no actor" if not self.actors else f"actors {', '.join(sorted(self.actors))} only"
            )
        return f"{text} ({'; '.join(conditions)})" if conditions else text

    def __repr__(self) -> str:
        parts = [repr(sorted(self.scopes))]
        if self.acr_values:
            parts.append(f"acr={list(self.acr_values)!r}")
        if self.max_age is not None:
            parts.append(f"max_age={self.max_age}")
        if self.actors is not None:
            parts.append(f"actors={tuple(sorted(self.actors))!r}")
        return f"Requirement({', '.join(parts)})"


def _scopes(raw: object) -> frozenset[str]:
    if isinstance(raw, str):
        if " " in raw:
            raise ValueError(
                f"Requirement scopes {raw!r} has a space; write scopes that must all be held as a list"
            )
        raw = (raw,)
    if not isinstance(raw, (list, tuple, set, frozenset)):
        raise ValueError(f"Requirement scopes must be a scope or a list of scopes, not {type(raw).__name__}")
    if not raw:
        raise ValueError("Requirement scopes is empty, which would require nothing")
    try:
        return frozenset(validate_scope_token(scope) for scope in raw)
    except InvalidScope as exc:
        raise ValueError(f"Requirement scopes: {exc}") from None


def _acr_values(raw: object) -> tuple[str, ...]:
    values = (raw,) if isinstance(raw, str) else raw
    if not isinstance(values, (list, tuple, set, frozenset)):
        raise ValueError("Requirement acr must be an acr value or a list of them")
    if len(values) > _MAX_ACR_VALUES:
        raise ValueError(f"Requirement acr lists more than {_MAX_ACR_VALUES} values")
    checked: list[str] = []
    for value in sorted(values) if isinstance(values, (set, frozenset)) else values:
        if not isinstance(value, str) or _ACR.fullmatch(value) is None:
            raise ValueError(
                "Requirement acr values must be 1 to 256 printable ASCII characters without "
                'spaces, " or \\ (RFC 9470 §3)'
            )
        if value not in checked:
            checked.append(value)
    return tuple(checked)


def _actors(raw: object) -> frozenset[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str) or not isinstance(raw, (list, tuple, set, frozenset)):
        raise ValueError(
            "Requirement actors must be None (any actor), () (no delegated request) or a tuple of actor subs"
        )
    return frozenset(valid_identifier(sub, "an actor's sub in Requirement actors") for sub in raw)


def plain(scopes: frozenset[str]) -> Requirement:
    """The requirement of a plain alternative: these (already validated) scopes, no condition."""
    requirement = object.__new__(Requirement)
    object.__setattr__(requirement, "scopes", scopes)
    object.__setattr__(requirement, "acr", frozenset())
    object.__setattr__(requirement, "acr_values", ())
    object.__setattr__(requirement, "max_age", None)
    object.__setattr__(requirement, "actors", None)
    return requirement
