"""Member roles: role name → the scopes a member with that role may exercise in an organization."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from .scopes import InvalidScope, ScopeHierarchy, parse_scope, scope_set

__all__ = ["Roles"]


class Roles:
    """An ordered set of named roles, each with its scopes, validated at construction.

    ``Roles({"member": ["project:read"], "admin": ["project:read", "project:write"]})``. A role's
    scopes may also be given as one RFC 6749 §3.3 scope string. With a
    :class:`~policy.scopes.ScopeHierarchy`, each role's scopes are expanded once, here, so
    lookups on the request path are a dict access.
    """

    __slots__ = ("_hierarchy", "_scopes")

    def __init__(
        self,
        mapping: Mapping[str, Iterable[str] | str],
        *,
        hierarchy: ScopeHierarchy | None = None,
    ) -> None:
        if not isinstance(mapping, Mapping):
            raise ValueError("Roles takes a mapping of role name -> scopes")
        if hierarchy is not None and not isinstance(hierarchy, ScopeHierarchy):
            raise ValueError("hierarchy must be a ScopeHierarchy")
        scopes: dict[str, frozenset[str]] = {}
        for name, granted in mapping.items():
            if not isinstance(name, str) or not name or name != name.strip():
                raise ValueError(f"role name {name!r} must be a non-empty string without surrounding spaces")
            try:
                role_scopes = (
                    parse_scope(granted) if isinstance(granted, str) else scope_set(granted, what="scopes")
                )
            except InvalidScope as exc:
                raise ValueError(f"role {name!r}: {exc}") from None
            scopes[name] = hierarchy.expand(role_scopes) if hierarchy else role_scopes
        self._scopes = scopes
        self._hierarchy = hierarchy

    @property
    def hierarchy(self) -> ScopeHierarchy | None:
        return self._hierarchy

    def scopes_for(self, name: str) -> frozenset[str]:
        """The scopes of role ``name`` (hierarchy applied); ``KeyError`` for an unknown role."""
        try:
            return self._scopes[name]
        except (KeyError, TypeError):
            raise KeyError(f"unknown role {name!r}") from None

    def roles_granting(self, scopes: Iterable[str]) -> tuple[str, ...]:
        """Names of the roles that hold every scope in ``scopes``, in declaration order."""
        wanted = frozenset(scopes)
        return tuple(name for name, held in self._scopes.items() if wanted <= held)

    @property
    def all_scopes(self) -> frozenset[str]:
        """Every scope some role grants."""
        return frozenset().union(*self._scopes.values())

    def __contains__(self, name: object) -> bool:
        return name in self._scopes

    def __iter__(self) -> Iterator[str]:
        return iter(self._scopes)

    def __len__(self) -> int:
        return len(self._scopes)

    def items(self) -> Iterator[tuple[str, frozenset[str]]]:
        return iter(self._scopes.items())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Roles):
            return NotImplemented
        return list(self._scopes.items()) == list(other._scopes.items())

    __hash__ = None  # type: ignore[assignment]  # unhashable, declared (typeshed's idiom) so checkers flag hash()

    def __repr__(self) -> str:
        body = ", ".join(f"{name!r}: {sorted(scopes)!r}" for name, scopes in self._scopes.items())
        return f"Roles({{{body}}})"
