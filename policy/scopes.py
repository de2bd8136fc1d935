"""Scope tokens: the RFC 6749 §3.3 grammar, parsing, formatting and an optional hierarchy.

RFC 6749 §3.3::

    scope       = scope-token *( SP scope-token )
    scope-token = 1*( %x21 / %x23-5B / %x5D-7E )

The separator is exactly one U+0020. ``str.split()`` without an argument is never used: it
also splits on NBSP, U+2028, U+3000, ``\\x1c`` and ``\\x85``, which would let a hostile scope
string smuggle in tokens the authorization server never granted as such.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["InvalidScope", "ScopeHierarchy", "format_scope", "parse_scope", "validate_scope_token"]

_TOKEN = r"[\x21\x23-\x5b\x5d-\x7e]+"
# The token class excludes the separator, so this pattern has one way to match any input
# and runs in linear time.
_SCOPE_RE = re.compile(rf"{_TOKEN}(?: {_TOKEN})*")
_TOKEN_RE = re.compile(_TOKEN)


class InvalidScope(ValueError):
    """A scope string or scope token does not follow RFC 6749 §3.3."""


def _describe(value: str) -> str:
    """Say what is wrong with a scope string without echoing a long or hostile value."""
    if value.startswith(" ") or value.endswith(" "):
        return "leading or trailing space"
    if "  " in value:
        return "two spaces in a row"
    for char in value:
        if char == " " or _TOKEN_RE.fullmatch(char):
            continue
        if char in '"\\':
            return f"character {char!r} is not allowed"
        return f"character U+{ord(char):04X} is not allowed"
    return "malformed scope"  # pragma: no cover - every failing input hits a branch above


def parse_scope(value: object) -> frozenset[str]:
    """Parse an RFC 6749 §3.3 scope string into a set of scope tokens.

    ``""`` is the empty set. Anything else that is not single-space separated tokens of
    ``%x21 / %x23-5B / %x5D-7E`` raises :class:`InvalidScope`, including non-``str`` input.
    """
    if not isinstance(value, str):
        raise InvalidScope(f"scope must be a string, not {type(value).__name__}")
    if not value:
        return frozenset()
    if _SCOPE_RE.fullmatch(value) is None:
        raise InvalidScope(f"invalid scope string: {_describe(value)}")
    return frozenset(value.split(" "))


def validate_scope_token(token: object) -> str:
    """Return ``token`` if it is one RFC 6749 §3.3 scope-token, else raise :class:`InvalidScope`."""
    if not isinstance(token, str):
        raise InvalidScope(f"scope token must be a string, not {type(token).__name__}")
    if _TOKEN_RE.fullmatch(token) is None:
        raise InvalidScope(f"invalid scope token {token[:64]!r}: {_describe(token) if token else 'empty'}")
    return token


def scope_set(scopes: Iterable[str], *, what: str = "scopes") -> frozenset[str]:
    """Validate an iterable of scope tokens into a frozenset.

    A bare ``str`` is refused: iterating it would yield single characters, a classic bug.
    """
    if isinstance(scopes, (str, bytes)):
        raise InvalidScope(f"{what} must be a collection of scope tokens, not a string (use parse_scope)")
    try:
        items = list(scopes)
    except TypeError:
        raise InvalidScope(f"{what} must be a collection of scope tokens") from None
    return frozenset(validate_scope_token(token) for token in items)


def format_scope(scopes: Iterable[str]) -> str:
    """Format scope tokens as an RFC 6749 §3.3 scope string: sorted, joined by one space."""
    return " ".join(sorted(scope_set(scopes)))


class ScopeHierarchy:
    """Scopes that imply other scopes, e.g. ``org:admin`` ⇒ ``org:write`` ⇒ ``org:read``.

    ``ScopeHierarchy({"org:admin": ["org:write"], "org:write": ["org:read"]})``. Implication is
    transitive and computed once, at construction; a cycle is a configuration error.
    """

    __slots__ = ("_closure",)

    def __init__(self, implies: Mapping[str, Iterable[str]]) -> None:
        if not isinstance(implies, Mapping):
            raise ValueError("ScopeHierarchy takes a mapping of scope -> implied scopes")
        direct: dict[str, frozenset[str]] = {}
        for scope, implied in implies.items():
            try:
                validate_scope_token(scope)
                direct[scope] = scope_set(implied, what=f"scopes implied by {scope!r}")
            except InvalidScope as exc:
                raise ValueError(f"ScopeHierarchy entry {scope!r}: {exc}") from None
        self._closure = {scope: self._close(scope, direct) for scope in direct}

    @staticmethod
    def _close(start: str, direct: Mapping[str, frozenset[str]]) -> frozenset[str]:
        seen: set[str] = set()
        stack = list(direct[start])
        while stack:
            scope = stack.pop()
            if scope == start:
                raise ValueError(f"ScopeHierarchy has a cycle through {start!r}")
            if scope not in seen:
                seen.add(scope)
                stack.extend(direct.get(scope, ()))
        return frozenset(seen)

    def implied_by(self, scope: str) -> frozenset[str]:
        """Every scope that ``scope`` implies, not including itself."""
        return self._closure.get(scope, frozenset())

    def expand(self, scopes: Iterable[str]) -> frozenset[str]:
        """``scopes`` plus everything they imply."""
        expanded = set(scopes)
        for scope in tuple(expanded):
            implied = self._closure.get(scope)
            if implied:
                expanded |= implied
        return frozenset(expanded)

    def __repr__(self) -> str:
        return f"ScopeHierarchy({ {k: sorted(v) for k, v in self._closure.items()}!r})"
