"""Claims every kind of token shares, read the same way whoever issued them: the scopes (a string
or an array) and the organization (the token's own claim, or its issuer's)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from policy import InvalidScope, parse_scope
from policy.scopes import validate_scope_token

from .errors import InvalidToken
from .jws import string_claim

__all__ = ["MAX_SCOPE_TOKENS", "org_of", "scopes_of"]

#: More scope tokens than any real grant holds; a longer array is refused before it is walked.
MAX_SCOPE_TOKENS = 1024


def scopes_of(claims: Mapping[str, Any], name: str) -> frozenset[str]:
    """The scope tokens of claim ``name``: absent is no scopes; a space-delimited string
    (RFC 9068 §2.2.3, RFC 7662 §2.2, RFC 6749 §3.3) or a JSON array whose every element is one
    scope-token (Okta's and Entra ID's ``scp``, Auth0's ``permissions``), never a space-delimited
    string inside an array. Anything else is :class:`InvalidToken`."""
    if name not in claims:
        return frozenset()
    value = claims[name]
    try:
        if isinstance(value, str):
            return parse_scope(value)
        if isinstance(value, list) and len(value) <= MAX_SCOPE_TOKENS:
            return frozenset(validate_scope_token(token) for token in value)
    except InvalidScope:
        raise InvalidToken(f"the {name} claim holds an invalid scope token") from None
    raise InvalidToken(f"the {name} claim must be a scope string or an array of scope tokens")


def org_of(claims: Mapping[str, Any], name: str, issuer_org: str | None) -> str | None:
    """The organization a token is bound to: its own ``name`` claim, or ``issuer_org`` (every
    token of a per-customer issuer belongs to that customer) when it carries none. A token whose
    claim names another organization than its issuer's is :class:`InvalidToken`: an issuer for
    one tenant cannot speak for another. The binding to the request's organization is made in
    ``policy.assemble_access``, not here."""
    org = string_claim(claims, name, required=False)
    if issuer_org is None:
        return org
    if org is not None and org != issuer_org:
        raise InvalidToken("the token names an organization its issuer does not serve")
    return issuer_org
