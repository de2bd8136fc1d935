"""Who acts, when someone acts for someone else (RFC 8693 delegation), and how far each actor may go.

A token obtained through token exchange names its subject (the person) in ``sub`` and the party
acting for them in ``act`` (RFC 8693 §4.1), nested for a chain: the outermost ``act`` is the
current actor, the ones inside it acted before (history, not authority). :class:`Actor` is one
link; the chain is a tuple of them, the current actor first.

:class:`Actors` is this server's policy over actors: the scopes each actor, by its ``sub``, may
ever exercise (its ceiling), whatever the person it acts for could do. A delegated request's
effective scopes are the token's, intersected with the person's member role and with the current
actor's ceiling (:func:`policy.assemble_access`).

What a resource server can conclude from ``act``: that the authorization server, which signed the
token, says this actor obtained it for this subject. Whether the actor was allowed to act for the
subject (``may_act``, RFC 8693 §4.4) is the authorization server's decision at exchange time; the
resource server cannot check it and does not try.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from .identifiers import valid_identifier
from .scopes import InvalidScope, parse_scope, validate_scope_token

__all__ = ["Actor", "Actors"]


@dataclass(frozen=True, slots=True)
class Actor:
    """One actor of a delegation chain (RFC 8693 §4.1): its ``sub``, and optionally the client it
    used (``client_id``) and the issuer its ``sub`` belongs to (``iss``). Every value is checked
    like a token's ``sub``: a non-empty printable identifier (``ValueError`` otherwise)."""

    sub: str
    client_id: str | None = None
    iss: str | None = None

    def __post_init__(self) -> None:
        valid_identifier(self.sub, "an actor's sub")
        if self.client_id is not None:
            valid_identifier(self.client_id, "an actor's client_id")
        if self.iss is not None:
            valid_identifier(self.iss, "an actor's iss")


def _scope_set(value: object, where: str) -> frozenset[str]:
    """A scope string, or a collection of scope tokens, as a set; ``ValueError`` naming ``where``."""
    try:
        if isinstance(value, str):
            return parse_scope(value)
        if isinstance(value, (list, tuple, set, frozenset)):
            return frozenset(validate_scope_token(scope) for scope in value)
    except InvalidScope as exc:
        raise ValueError(f"{where}: {exc}") from None
    raise ValueError(f"{where} must be a scope string or a collection of scope tokens")


class Actors:
    """The scopes each actor may exercise, by the actor's ``sub``; ``default`` for actors not
    listed, ``None`` (the default) to refuse them: an unknown agent acting for a person gets no
    scope at all, so every request it makes is refused (403, and no challenge: no token helps).

    ``Actors({"agent:reporting": "project:read", "agent:deploy": ["project:read", "deploy:run"]})``

    Validated at construction (``ValueError`` naming the entry), immutable.
    """

    __slots__ = ("_ceilings", "_default")

    def __init__(
        self,
        ceilings: Mapping[str, str | Iterable[str]],
        default: str | Iterable[str] | None = None,
    ) -> None:
        if not isinstance(ceilings, Mapping):
            raise ValueError("Actors takes a mapping of actor sub -> the scopes that actor may exercise")
        checked: dict[str, frozenset[str]] = {}
        for sub, scopes in ceilings.items():
            valid_identifier(sub, "an actor's sub in Actors")
            checked[sub] = _scope_set(scopes, f"Actors[{sub!r}]")
        self._ceilings = checked
        self._default = None if default is None else _scope_set(default, "Actors default")

    def ceiling(self, sub: str) -> frozenset[str] | None:
        """The scopes the actor ``sub`` may exercise, or None when it is refused altogether."""
        found = self._ceilings.get(sub)
        return found if found is not None else self._default

    @property
    def default(self) -> frozenset[str] | None:
        """The ceiling of actors not listed (None: they are refused)."""
        return self._default

    def __contains__(self, sub: object) -> bool:
        return sub in self._ceilings

    def __iter__(self) -> Iterator[str]:
        return iter(self._ceilings)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Actors):
            return NotImplemented
        return (self._ceilings, self._default) == (other._ceilings, other._default)

    def __hash__(self) -> int:
        return hash((frozenset(self._ceilings.items()), self._default))

    def __repr__(self) -> str:
        listed = {sub: sorted(scopes) for sub, scopes in self._ceilings.items()}
        default = None if self._default is None else sorted(self._default)
        return f"Actors({listed!r}, default={default!r})"
