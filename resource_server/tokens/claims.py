"""Claims every kind of token shares, read the same way whoever issued them: the scopes (a string
or an array), the organization (the token's own claim, or its issuer's), the confirmation
(``cnf``) a token is bound by, the actors acting for its subject (``act``, RFC 8693 §4.1) and
how the person authenticated (``acr``, ``auth_time``: RFC 9068 §2.2.1, OpenID Connect Core §2)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from policy import Actor, InvalidScope, parse_scope
from policy.identifiers import valid_identifier
from policy.scopes import validate_scope_token

from .errors import InvalidToken
from .jws import string_claim

__all__ = [
    "MAX_ACTOR_DEPTH",
    "MAX_AUTH_TIME",
    "MAX_SCOPE_TOKENS",
    "acr_of",
    "actors_of",
    "auth_time_of",
    "bound_thumbprint",
    "check_auth_time",
    "org_of",
    "scopes_of",
]

#: More scope tokens than any real grant holds; a longer array is refused before it is walked.
MAX_SCOPE_TOKENS = 1024
#: The longest delegation chain accepted (the current actor and those before it): a person's
#: agent, its sub-agents, and room to spare. A deeper ``act`` is refused, never cut short.
MAX_ACTOR_DEPTH = 8
#: The latest ``auth_time`` any token can hold: 9999-12-31T23:59:59Z (RFC 3339's last instant).
#: Beyond it a NumericDate is no date, and subtracting it from a float clock would overflow.
MAX_AUTH_TIME = 253_402_300_799

# RFC 9449 §6.1 / RFC 7638 §3: base64url (no padding) of a SHA-256 digest, 43 characters. The
# last one carries 2 bits of padding that are zero in a canonical encoding, so it is one of 16.
_SHA256_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]")
# The registered confirmation methods (IANA "JWT Confirmation Methods") other than jkt: a token
# bound by one of them is usable only by a party that proves it, which this server cannot check.
_UNCHECKED_METHODS = {
    "x5t#S256": "a client certificate (cnf x5t#S256, RFC 8705 mutual TLS)",
    "jwk": "a proof-of-possession key (cnf jwk, RFC 7800)",
    "jwe": "an encrypted proof-of-possession key (cnf jwe, RFC 7800)",
    "jku": "a proof-of-possession key set (cnf jku, RFC 7800)",
    "kid": "a proof-of-possession key id (cnf kid, RFC 7800)",
    "osc": "an OSCORE security context (cnf osc, RFC 9203)",
}


#: Scope strings parsed already, each with its one frozenset: an authorization server grants a
#: handful of scope combinations, so tokens share them (a frozenset costs 216 bytes and up, per
#: cached token otherwise). Bounded: cleared when full, and long strings are not kept.
_PARSED_SCOPES: dict[str, frozenset[str]] = {}
_PARSED_SCOPES_MAX = 512
_SHARED_SCOPE_LENGTH = 512
#: Identifiers many tokens repeat (organizations, clients), one string object each.
_SHARED_IDENTIFIERS: dict[str, str] = {}
_SHARED_IDENTIFIERS_MAX = 4096


def shared_identifier(value: str | None) -> str | None:
    """``value``, or the equal string an earlier token brought: an organization or a client is
    named by thousands of cached tokens, which then hold one string, not a copy each."""
    if value is None:
        return None
    if len(_SHARED_IDENTIFIERS) >= _SHARED_IDENTIFIERS_MAX:
        _SHARED_IDENTIFIERS.clear()
    return _SHARED_IDENTIFIERS.setdefault(value, value)


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
            found = _PARSED_SCOPES.get(value)
            if found is None:
                found = parse_scope(value)
                if len(value) <= _SHARED_SCOPE_LENGTH:
                    if len(_PARSED_SCOPES) >= _PARSED_SCOPES_MAX:
                        _PARSED_SCOPES.clear()
                    _PARSED_SCOPES[value] = found
            return found
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


def bound_thumbprint(claims: Mapping[str, Any]) -> str | None:
    """The RFC 7638 thumbprint the token is bound to by ``cnf.jkt`` (RFC 9449 §6), or None when
    it carries no ``cnf``: then it is a bearer token.

    A confirmation claim is a condition of use, not a hint (RFC 7800 §3.1, RFC 9449 §6): a
    token bound by any other method (a client certificate's ``x5t#S256`` under RFC 8705, an RFC
    7800 ``jwk``, ``jwe``, ``jku`` or ``kid``, an unknown member) can be honoured only by a server
    that checks that binding, so it is :class:`InvalidToken` here, never a bearer token. So is a
    malformed ``cnf``: not a JSON object, empty, or a ``jkt`` that is not a 43-character
    base64url SHA-256 thumbprint (which no proof's key could ever match).
    """
    if "cnf" not in claims:
        return None
    cnf = claims["cnf"]
    if not isinstance(cnf, Mapping) or not cnf:
        raise InvalidToken("the token's cnf claim must be a non-empty JSON object (RFC 7800)")
    for method in cnf:
        if method == "jkt":
            continue
        bound_to = _UNCHECKED_METHODS.get(method)
        if bound_to is None:  # the member's name comes from the token: it is not repeated
            raise InvalidToken("the token's cnf claim holds a confirmation method this server does not know")
        raise InvalidToken(f"the token is bound to {bound_to}, which this server cannot check")
    jkt = cnf["jkt"]
    if not isinstance(jkt, str) or _SHA256_THUMBPRINT.fullmatch(jkt) is None:
        raise InvalidToken("the token's cnf.jkt is not a SHA-256 JWK thumbprint (RFC 9449)")
    return jkt


def actors_of(claims: Mapping[str, Any]) -> tuple[Actor, ...]:
    """The delegation chain of ``act`` (RFC 8693 §4.1), the current actor first; ``()`` without
    one. Each level is a JSON object with a ``sub`` and optionally ``client_id`` and ``iss``,
    every one an identifier checked like a token's ``sub`` (non-empty, printable, at most 1024
    characters), and optionally the ``act`` of the actor before it; other members are allowed
    (§4.1) and ignored. Only the outermost level is the current actor; the nested ones are
    history, carried for audit, never authority. More than :data:`MAX_ACTOR_DEPTH` levels, or
    any level malformed, is :class:`InvalidToken`: a chain this server cannot read whole names
    nobody it can trust."""
    if "act" not in claims:
        return ()
    chain: list[Actor] = []
    level: object = claims["act"]
    while True:
        if len(chain) == MAX_ACTOR_DEPTH:
            raise InvalidToken(f"the token's act claim nests more than {MAX_ACTOR_DEPTH} actors")
        chain.append(_actor(level))
        assert isinstance(level, Mapping)  # _actor checked it
        if "act" not in level:
            return tuple(chain)
        level = level["act"]


def _actor(level: object) -> Actor:
    if not isinstance(level, Mapping):
        raise InvalidToken("the token's act claim must be a JSON object naming the actor (RFC 8693)")
    if "sub" not in level:
        raise InvalidToken("the token's act claim names no actor (sub, RFC 8693)")
    values = {}
    for member in ("sub", "client_id", "iss"):
        if member in level:
            try:  # the description names the member, never its value
                values[member] = valid_identifier(level[member], f"the token's act.{member}")
            except ValueError as exc:
                raise InvalidToken(str(exc)) from None
    return Actor(**values)


def acr_of(claims: Mapping[str, Any]) -> str | None:
    """The authentication context class reference the person authenticated with (``acr``, RFC
    9068 §2.2.1, OpenID Connect Core §2), or None without one: an identifier checked like
    ``sub``, or :class:`InvalidToken`. What it is worth is the route's business
    (:class:`policy.Requirement`)."""
    if "acr" not in claims:
        return None
    try:
        return valid_identifier(claims["acr"], "the token's acr claim")
    except ValueError as exc:
        raise InvalidToken(str(exc)) from None


def auth_time_of(claims: Mapping[str, Any]) -> int | None:
    """When the person last authenticated (``auth_time``, RFC 9068 §2.2.1: a NumericDate), or
    None without one: an integer from 0 to :data:`MAX_AUTH_TIME` (not a boolean, a float or a
    string), or :class:`InvalidToken`. Whether it lies in the future is for the verifier, which
    holds the clock (and its leeway)."""
    if "auth_time" not in claims:
        return None
    value = claims["auth_time"]
    if type(value) is not int:  # bool is an int subclass, and 1.5 or "1900000000" are no NumericDate
        raise InvalidToken("the token's auth_time claim must be an integer NumericDate")
    if not 0 <= value <= MAX_AUTH_TIME:
        raise InvalidToken("the token's auth_time claim is not a date")
    return value


def check_auth_time(auth_time: int | None, now: float, leeway: float) -> None:
    """:class:`InvalidToken` when the person is said to have authenticated after ``now`` plus
    the verifier's ``leeway`` (as ``iat`` is checked, RFC 7519 §4.1.6): such a token would meet
    every ``max_age`` (RFC 9470 §3) for as long as it lives."""
    if auth_time is not None and auth_time > now + leeway:
        raise InvalidToken("the token's auth_time is in the future")
