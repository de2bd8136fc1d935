"""What every grants store checks and decides, whatever its database (SQLAlchemy Core in
:mod:`resource_server.grants`, the Django ORM in :mod:`resource_server.django.grants`): the
arguments, validated before any I/O, and how a new approval combines with the one already held.

A user approves scopes for one agent session, ``(org, subject, session_id)``, for a limited time.
Approving again for the same session merges the new scopes into the still-active ones and extends
the expiry; an expired approval is replaced, never merged, so an old approval cannot come back to
life. Scopes are stored as an RFC 6749 §3.3 scope string: scope tokens sorted and joined by one
space.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from policy.scopes import format_scope, parse_scope, scope_set

from .capability import MAX_SESSION_ID  # one limit for a session id, wherever it is checked

__all__ = [
    "MAX_NAME",
    "MAX_TTL",
    "Grant",
    "GrantStoreProtocol",
    "Merged",
    "check_key",
    "check_scopes",
    "check_ttl",
    "merge",
]

MAX_TTL = 30 * 24 * 3600  # an approval is a short-lived delegation, never a standing permission
MAX_NAME = 255


@dataclass(frozen=True, slots=True)
class Grant:
    """One approval: the scopes an agent session may use until ``expires_at`` (integer Unix
    seconds, like every ``exp`` and ``expires_at`` this library hands out)."""

    org: str
    subject: str
    session_id: str
    scopes: frozenset[str]
    expires_at: int


class GrantStoreProtocol(Protocol):
    """The interface every grants store offers (keyword arguments only). A database that cannot
    answer now raises :class:`~resource_server.VerificationUnavailable`; a bad argument
    ``ValueError``, before any I/O."""

    def approve(
        self, *, org: str, subject: str, session_id: str, scopes: Iterable[str] | str, ttl: int
    ) -> Grant: ...

    def get(self, *, org: str, subject: str, session_id: str) -> Grant | None: ...

    def active_scopes(self, *, org: str, subject: str, session_id: str) -> frozenset[str]: ...

    def revoke(self, *, org: str, subject: str, session_id: str) -> bool: ...

    def purge_expired(self) -> int: ...


def _check_name(name: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{name} is longer than {limit} characters")
    if "\x00" in value:  # PostgreSQL text cannot hold NUL; refuse it here, not as a database error
        raise ValueError(f"{name} must not contain NUL")
    return value


def check_key(org: object, subject: object, session_id: object) -> tuple[str, str, str]:
    """The ``(org, subject, session_id)`` a grant is kept under; ``ValueError`` for anything but
    non-empty strings of bounded length without NUL."""
    return (
        _check_name("org", org, MAX_NAME),
        _check_name("subject", subject, MAX_NAME),
        _check_name("session_id", session_id, MAX_SESSION_ID),
    )


def check_scopes(scopes: Iterable[str] | str) -> frozenset[str]:
    """A str is an RFC 6749 §3.3 scope string; anything else is a collection of scope tokens.
    Both raise InvalidScope, a ValueError, for a malformed scope or a value that is neither (an
    application's value is checked, whatever its annotation); so does an empty set."""
    result = parse_scope(scopes) if isinstance(scopes, str) else scope_set(scopes)
    if not result:
        raise ValueError("scopes must name at least one scope")
    return result


def check_ttl(ttl: object) -> int:
    if not isinstance(ttl, int) or isinstance(ttl, bool):
        raise ValueError(f"ttl must be an int, not {type(ttl).__name__}")
    if not 0 < ttl <= MAX_TTL:
        raise ValueError(f"ttl must be between 1 and {MAX_TTL} seconds")
    return ttl


@dataclass(frozen=True, slots=True)
class Merged:
    """What a stored approval becomes: its scope string, its expiry, and whether it was replaced
    (an expired one starts over, so its ``created_at`` is new too)."""

    scopes: frozenset[str]
    expires_at: int
    replaced: bool

    @property
    def scope_string(self) -> str:
        return format_scope(self.scopes)


def merge(
    stored_scopes: str, stored_expires_at: float, scopes: frozenset[str], expires_at: int, now: float
) -> Merged:
    """A new approval of ``scopes`` until ``expires_at`` over the stored one: merged while the
    stored one is active (scope union, the later expiry wins), replaced once it has expired."""
    if stored_expires_at > now:
        return Merged(parse_scope(stored_scopes) | scopes, max(int(stored_expires_at), expires_at), False)
    return Merged(scopes, expires_at, True)
