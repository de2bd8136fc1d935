"""Reading a response's challenge (RFC 9110 §11.6.1, RFC 6750 §3, RFC 9449 §7.1): the
:class:`InsufficientScope` a ``403`` carries, and the parameters of a Bearer or DPoP challenge.
No HTTP library needed: header values in, values out."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from policy import ChallengeSyntaxError, InvalidScope, parse_challenges, parse_scope

__all__ = ["InsufficientScope", "bearer_challenge_of", "challenge_of", "insufficient", "insufficient_scope"]


class InsufficientScope(Exception):
    """A ``403`` with ``error="insufficient_scope"`` (RFC 6750 §3.1), for callers who handle it."""

    def __init__(
        self, scope: frozenset[str], resource_metadata: str | None, error_description: str | None
    ) -> None:
        super().__init__(f"the request needs the scopes: {' '.join(sorted(scope)) or '(not advertised)'}")
        self.scope = scope
        self.resource_metadata = resource_metadata
        self.error_description = error_description


def challenge_of(header_values: Iterable[str], schemes: tuple[str, ...]) -> Mapping[str, str] | None:
    """The parameters of the first challenge of the first of ``schemes`` present, or None (also
    for a header that does not parse: a broken challenge is no instruction to follow)."""
    try:
        challenges = parse_challenges(list(header_values))
    except ChallengeSyntaxError:
        return None
    for scheme in schemes:
        found = next((c.params for c in challenges if c.is_scheme(scheme)), None)
        if found is not None:
            return found
    return None


def bearer_challenge_of(header_values: Iterable[str]) -> Mapping[str, str] | None:
    """The parameters of the first Bearer challenge among ``WWW-Authenticate`` values, or None
    (also for a header that does not parse: a broken challenge is no instruction to follow)."""
    return challenge_of(header_values, ("Bearer",))


def insufficient_scope(
    status: int, header_values: Iterable[str], *, scheme: str = "Bearer"
) -> InsufficientScope | None:
    """The :class:`InsufficientScope` a response carries, or None. ``scheme="DPoP"`` reads the
    DPoP challenge (RFC 9449 §7.1), or the Bearer one when there is no DPoP challenge."""
    return insufficient(status, header_values, ("DPoP", "Bearer") if scheme.lower() == "dpop" else (scheme,))


def insufficient(
    status: int, header_values: Iterable[str], schemes: tuple[str, ...]
) -> InsufficientScope | None:
    if status != 403:
        return None
    params = challenge_of(header_values, schemes)
    if params is None or params.get("error") != "insufficient_scope":
        return None
    try:
        scope = parse_scope(params.get("scope", ""))
    except InvalidScope:
        scope = frozenset()
    return InsufficientScope(scope, params.get("resource_metadata"), params.get("error_description"))
