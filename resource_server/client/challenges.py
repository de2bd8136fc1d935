"""Reading a response's challenge (RFC 9110 §11.6.1, RFC 6750 §3, RFC 9449 §7.1, RFC 9470 §3):
the :class:`InsufficientScope` a ``403`` carries, the :class:`InsufficientUserAuthentication` a
``401`` carries, and the parameters of a Bearer or DPoP challenge. No HTTP library needed: header
values in, values out."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from policy import ChallengeSyntaxError, InvalidScope, parse_challenges, parse_scope

__all__ = [
    "InsufficientScope",
    "InsufficientUserAuthentication",
    "bearer_challenge_of",
    "challenge_of",
    "insufficient",
    "insufficient_scope",
    "insufficient_user_authentication",
    "user_authentication",
]

# RFC 9470 §3: acr_values is a space-separated list (OpenID Connect Core §3.1.2.1), so one value
# holds no space. What is passed on to an authorization request is a plain printable value: the
# characters of an RFC 6749 scope-token, which acr names and URIs fit ("mfa",
# "urn:mace:incommon:iap:silver"); no '"' or backslash, which the quoted-string could have carried
# escaped. The separator is exactly one space, as in a scope string. The bounds are those of the
# servers of this package (at most 32 values of at most 256 characters), which no policy comes near.
_ACR_VALUE = r"[\x21\x23-\x5b\x5d-\x7e]{1,256}"
_ACR_VALUES = re.compile(rf"{_ACR_VALUE}(?: {_ACR_VALUE}){{0,31}}")
# max_age: a non-negative number of seconds (RFC 9470 §3), in ASCII digits only (int() would also
# take other scripts' digits, spaces around, a sign and underscores), and at most what a signed
# 32-bit integer holds: a larger value is refused rather than passed on to an authorization server
# whose store it may overflow.
_MAX_AGE = re.compile(r"[0-9]{1,10}")
MAX_AGE_LIMIT = 2**31 - 1


class InsufficientScope(Exception):
    """A ``403`` with ``error="insufficient_scope"`` (RFC 6750 §3.1), for callers who handle it."""

    def __init__(
        self, scope: frozenset[str], resource_metadata: str | None, error_description: str | None
    ) -> None:
        super().__init__(f"the request needs the scopes: {' '.join(sorted(scope)) or '(not advertised)'}")
        self.scope = scope
        self.resource_metadata = resource_metadata
        self.error_description = error_description


class InsufficientUserAuthentication(Exception):
    """A ``401`` with ``error="insufficient_user_authentication"`` (RFC 9470 §3), for callers who
    handle it: the person must authenticate again, with one of ``acr_values`` (in the server's order
    of preference; ``()`` when it named none) and/or within ``max_age`` seconds (None: not asked)."""

    def __init__(
        self,
        acr_values: tuple[str, ...],
        max_age: int | None,
        resource_metadata: str | None,
        error_description: str | None,
    ) -> None:
        wanted = []
        if acr_values:
            wanted.append(f"acr {' or '.join(acr_values)}")
        if max_age is not None:
            wanted.append(f"an authentication within {max_age} s")
        super().__init__(f"the person must authenticate again: {' and '.join(wanted) or 'no level named'}")
        self.acr_values = acr_values
        self.max_age = max_age
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


def insufficient_user_authentication(
    status: int, header_values: Iterable[str], *, scheme: str = "Bearer"
) -> InsufficientUserAuthentication | None:
    """The :class:`InsufficientUserAuthentication` a response carries (RFC 9470 §3), or None: also
    when its ``acr_values`` or ``max_age`` is malformed (a value of other characters, two spaces in
    a row, more than 32 values, a ``max_age`` that is not 0 to 2**31 - 1 in ASCII digits): a
    challenge that cannot be followed as sent is no instruction. ``scheme="DPoP"`` reads the DPoP
    challenge (RFC 9449 §7.1), or the Bearer one when there is no DPoP challenge."""
    schemes = ("DPoP", "Bearer") if scheme.lower() == "dpop" else (scheme,)
    return user_authentication(status, header_values, schemes)


def user_authentication(
    status: int, header_values: Iterable[str], schemes: tuple[str, ...]
) -> InsufficientUserAuthentication | None:
    """:func:`insufficient_user_authentication` for the first of ``schemes`` present."""
    if status != 401:
        return None
    params = challenge_of(header_values, schemes)
    if params is None or params.get("error") != "insufficient_user_authentication":
        return None
    acr_values, max_age = params.get("acr_values"), params.get("max_age")
    if acr_values is not None and _ACR_VALUES.fullmatch(acr_values) is None:
        return None
    if max_age is not None and (_MAX_AGE.fullmatch(max_age) is None or int(max_age) > MAX_AGE_LIMIT):
        return None
    return InsufficientUserAuthentication(
        tuple(dict.fromkeys(acr_values.split(" "))) if acr_values is not None else (),
        int(max_age) if max_age is not None else None,
        params.get("resource_metadata"),
        params.get("error_description"),
    )
