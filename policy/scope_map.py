"""Declarative per-method scope requirements for one route, validated and compiled once."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .outcome import Decision, allowed_decision
from .requirements import Requirement, plain
from .scopes import InvalidScope, validate_scope_token

__all__ = ["KNOWN_METHODS", "Rule", "ScopeMap"]

#: RFC 9110 §9.3 methods, PATCH (RFC 5789) and QUERY (the IETF HTTP WG's safe method with content).
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "QUERY"}
)


@dataclass(frozen=True, slots=True)
class Rule:
    """The compiled requirement of one method: any of ``requirements``, each all of its scopes and
    its conditions (:class:`~policy.Requirement`); ``alternatives`` are their scope sets."""

    method: str
    alternatives: tuple[frozenset[str], ...]
    #: (alternative, the prebuilt allowed Decision) pairs of the alternatives without conditions,
    #: in declaration order: the allowed path is a subset test and a prebuilt answer.
    checks: tuple[tuple[frozenset[str], Decision], ...]
    #: Every alternative, in declaration order.
    requirements: tuple[Requirement, ...] = ()
    #: (requirement, its prebuilt allowed Decision) pairs of the alternatives with conditions.
    conditional: tuple[tuple[Requirement, Decision], ...] = ()

    @property
    def description(self) -> str:
        return ", or ".join(requirement.describe() for requirement in self.requirements)


class ScopeMap:
    """Per HTTP method, a list of alternatives; any one alternative suffices.

    An alternative is one scope token, a list/tuple of scope tokens that must all be held, or a
    :class:`~policy.Requirement` (scopes, and how the person must have authenticated or who may
    act for them)::

        ScopeMap({"GET": ["project:read", "project:write"],
                  "POST": [["project:write", "team:write"], "project:admin"],
                  "DELETE": Requirement("project:admin", acr=["mfa"], max_age=300)})

    Method names are case-insensitive and stored upper-case; ``HEAD`` uses ``GET``'s rule unless
    given (RFC 9110 §9.3.2: HEAD is GET without the content). A string alternative with a space
    in it is refused as ambiguous: write the all-of set as a list. Everything is validated here,
    so a bad map fails at start-up with a ``ValueError`` that names the entry.
    """

    __slots__ = ("_declared", "_rules", "needs_time")
    _declared: dict[str, tuple[Requirement, ...]]
    _rules: dict[str, Rule]
    #: Whether some alternative has a ``max_age``: deciding then needs the current time (read it,
    #: do not set it). An attribute, not a property: a guard reads it on every request, and an
    #: attribute costs about 20 ns less (bench_hot_path's warm guard.authorize).
    needs_time: bool

    def __init__(self, mapping: Mapping[str, object]) -> None:
        if isinstance(mapping, ScopeMap):
            self._declared, self._rules = mapping._declared, mapping._rules
            self.needs_time = mapping.needs_time
            return
        if not isinstance(mapping, Mapping):
            raise ValueError("ScopeMap takes a mapping of HTTP method -> alternatives")
        if not mapping:
            raise ValueError("ScopeMap needs at least one method")
        declared: dict[str, tuple[Requirement, ...]] = {}
        for raw_method, raw_alternatives in mapping.items():
            method = _method_name(raw_method)
            if method in declared:
                raise ValueError(f"ScopeMap method {raw_method!r} is given twice (method names ignore case)")
            declared[method] = _alternatives(method, raw_alternatives)
        self._declared = declared
        self._rules = {method: _compile(method, alts) for method, alts in declared.items()}
        if "GET" in declared and "HEAD" not in declared:
            self._rules["HEAD"] = _compile("HEAD", declared["GET"])
        # Known once: a guard reads the clock for a map only when this says it must.
        self.needs_time = any(r.max_age is not None for reqs in declared.values() for r in reqs)

    def rule(self, method: str) -> Rule | None:
        """The compiled rule for ``method`` (any case; HEAD falls back to GET), or ``None``."""
        return self._rules.get(method.upper()) if isinstance(method, str) else None

    def alternatives(self, method: str) -> tuple[frozenset[str], ...] | None:
        """The alternatives' scope sets for ``method``, or ``None`` when the method is not mapped."""
        rule = self.rule(method)
        return None if rule is None else rule.alternatives

    def requirements(self, method: str) -> tuple[Requirement, ...] | None:
        """The alternatives for ``method`` with their conditions, or ``None`` when not mapped."""
        rule = self.rule(method)
        return None if rule is None else rule.requirements

    @property
    def methods(self) -> tuple[str, ...]:
        """Every method this map answers for, including an implied ``HEAD``."""
        return tuple(self._rules)

    @property
    def scopes(self) -> frozenset[str]:
        """Every scope the map mentions."""
        return frozenset().union(*(r.scopes for reqs in self._declared.values() for r in reqs))

    def to_dict(self) -> dict[str, list[list[str]]]:
        """The declared map in a JSON-friendly form: method → list of sorted all-of lists (the
        alternatives' scopes; :meth:`requirements` has their conditions)."""
        return {method: [sorted(r.scopes) for r in reqs] for method, reqs in self._declared.items()}

    def __contains__(self, method: object) -> bool:
        return isinstance(method, str) and method.upper() in self._rules

    def __iter__(self) -> Iterator[str]:
        return iter(self._rules)

    def __len__(self) -> int:
        return len(self._rules)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScopeMap):
            return NotImplemented
        return self._declared == other._declared

    def __hash__(self) -> int:
        return hash(tuple(self._declared.items()))

    def __repr__(self) -> str:
        return f"ScopeMap({self.to_dict()!r})"


def _method_name(raw: object) -> str:
    if not isinstance(raw, str):
        raise ValueError(f"ScopeMap method {raw!r} must be a string")
    method = raw.upper()
    if method not in KNOWN_METHODS:
        raise ValueError(f"ScopeMap method {raw!r} is not an HTTP method this library knows")
    return method


def _alternatives(method: str, raw: object) -> tuple[Requirement, ...]:
    where = f"ScopeMap[{method!r}]"
    if isinstance(raw, (str, Requirement)):
        raw = [raw]  # a single scope, or a single requirement, is a single alternative
    if not isinstance(raw, (list, tuple)):
        raise ValueError(f"{where} must be a list of alternatives, not {type(raw).__name__}")
    if not raw:
        raise ValueError(f"{where} has no alternatives; every mapped method needs at least one")
    compiled: list[Requirement] = []
    for index, alternative in enumerate(raw):
        requirement = (
            alternative
            if isinstance(alternative, Requirement)
            else plain(_alternative(f"{where}[{index}]", alternative))
        )
        if requirement not in compiled:
            compiled.append(requirement)
    return tuple(compiled)


def _alternative(where: str, raw: object) -> frozenset[str]:
    if isinstance(raw, str):
        if " " in raw:
            raise ValueError(f"{where} = {raw!r} has a space; write scopes that must all be held as a list")
        raw = (raw,)
    if not isinstance(raw, (list, tuple, set, frozenset)):
        raise ValueError(f"{where} must be a scope or a list of scopes, not {type(raw).__name__}")
    if not raw:
        raise ValueError(f"{where} is an empty alternative, which would require nothing")
    try:
        return frozenset(validate_scope_token(scope) for scope in raw)
    except InvalidScope as exc:
        raise ValueError(f"{where}: {exc}") from None


def _compile(method: str, requirements: tuple[Requirement, ...]) -> Rule:
    allowed = [(r, allowed_decision(method, r.scopes, r.describe())) for r in requirements]
    return Rule(
        method=method,
        alternatives=tuple(r.scopes for r in requirements),
        checks=tuple((r.scopes, decision) for r, decision in allowed if not r.conditional),
        requirements=requirements,
        conditional=tuple((r, decision) for r, decision in allowed if r.conditional),
    )
