"""Capability tokens: short-lived, de-escalated tokens an app hands to automated clients (agents,
CI jobs, integrations), minted from a caller's effective access and never wider than it.

A capability token is a JWT (RFC 7519) signed with HMAC-SHA256 under one of the server's own
secrets (it is both minted and verified here, so there is no third party to hold a public key),
with ``typ: cap+jwt`` and its own audience so it can never pass as an access token, and the
string prefix ``cap_`` so that routing it is a ``startswith`` and ordinary tokens are never
parsed as capabilities.

The agent session a capability is minted for acts for the person (RFC 8693 §4.1): the token
carries it as its current actor, ``"act": {"sub": "<session id>"}``, with the chain of the
request that minted it (if an agent minted it) nested below, so every adapter shows it as
``Access.actor`` and an :class:`policy.Actors` ceiling or a ``Requirement(actors=())`` applies to
it as to any delegated token.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

from policy import Access, Actor, InvalidScope, format_scope, parse_scope
from policy.scopes import scope_set

from .tokens import VerifiedToken
from .tokens.claims import MAX_ACTOR_DEPTH
from .tokens.jws import (
    InvalidToken,
    hmac_keys,
    hs256_sign,
    hs256_verify,
    integer_claim,
    is_printable_identifier,
    string_claim,
)

__all__ = ["MAX_SESSION_ID", "Capability", "CapabilityIssuer", "CapabilityVerifier", "GrantSource"]

CAPABILITY_TYPE = "cap+jwt"
MAX_SESSION_ID = 128


class GrantSource(Protocol):
    """What minting needs from the grants store: the scopes a person approved for one session."""

    def active_scopes(self, *, org: str, subject: str, session_id: str) -> frozenset[str]: ...


@dataclass(frozen=True, slots=True)
class Capability:
    """A minted capability token and what it carries."""

    token: str
    scopes: frozenset[str]
    expires_at: int
    session_id: str


def check_session_id(session_id: object) -> str:
    """A session id is a non-empty string of at most 128 characters without control or
    invisible characters or lone surrogates (the rules of identifier claims,
    :func:`~resource_server.tokens.jws.string_claim`), checked before any I/O."""
    if not isinstance(session_id, str) or not 0 < len(session_id) <= MAX_SESSION_ID:
        raise ValueError(f"sessionId must be a string of 1 to {MAX_SESSION_ID} characters")
    if not is_printable_identifier(session_id):
        raise ValueError("sessionId holds control or invisible characters")
    return session_id


def scope_tokens(scopes: object, what: str = "scopes") -> frozenset[str]:
    """A JSON list of scope tokens, or an RFC 6749 §3.3 scope string, as a validated set.
    Objects are refused outright: ``policy.scope_set`` would quietly take their keys."""
    if isinstance(scopes, str):
        return parse_scope(scopes)
    if not isinstance(scopes, (list, tuple, set, frozenset)) or not all(isinstance(s, str) for s in scopes):
        raise ValueError(f"{what} must be a list of scope strings")  # name the field for the client
    return scope_set(scopes, what=what)


class CapabilityIssuer:
    """Mints capability tokens. ``keys`` maps kid → secret (≥ 32 bytes); the first key signs and
    every key verifies, so rotation is: put the new key first, keep the old one until its tokens
    expire (``ttl``), then drop it.

    A token's scopes are ``access.scopes & (readonly_scopes | approved grant scopes)``, narrowed
    further to ``requested_scopes`` when given: minting only ever de-escalates.
    """

    def __init__(
        self,
        *,
        keys: Mapping[str, bytes | str],
        issuer: str,
        readonly_scopes: Iterable[str],
        audience: str = "agent-api",
        ttl: int = 300,
        prefix: str = "cap_",
        grants: GrantSource | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if not 0 < ttl <= 3600:
            raise ValueError("capability tokens are short-lived: ttl must be 1 to 3600 seconds")
        self._keys = hmac_keys(keys)
        self._signing_kid = next(iter(self._keys))
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self.prefix = prefix
        self.readonly_scopes = scope_tokens(list(readonly_scopes), "readonly_scopes")
        self.grants = grants
        self._clock = clock or time.time

    def grantable(self, access: Access, session_id: str) -> frozenset[str]:
        """What a capability for this session may carry, before any narrowing by the request."""
        approved: frozenset[str] = frozenset()
        if self.grants is not None and access.org is not None:
            approved = self.grants.active_scopes(
                org=access.org, subject=access.subject, session_id=session_id
            )
        return access.scopes & (self.readonly_scopes | approved)

    def mint_capability(
        self, access: Access, *, session_id: str, requested_scopes: Iterable[str] | str | None = None
    ) -> Capability:
        """Mint a capability for ``access`` (which must name an org: capabilities are org-bound)."""
        check_session_id(session_id)
        requested = None if requested_scopes is None else scope_tokens(requested_scopes, "requestedScopes")
        if access.org is None:
            raise ValueError("a capability token is bound to an organization; the access names none")
        if len(access.actors) >= MAX_ACTOR_DEPTH:
            raise ValueError(f"the delegation chain would be longer than {MAX_ACTOR_DEPTH} actors")
        scopes = self.grantable(access, session_id)
        if requested is not None:
            scopes &= requested
        now = int(self._clock())
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": access.subject,
            "org_id": access.org,
            "scope": format_scope(scopes),
            "sid": session_id,
            # RFC 8693 §4.1: the session acts for the subject; whoever minted it acted before.
            "act": act_claim((Actor(session_id), *access.actors)),
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + self.ttl,
        }
        header = {"alg": "HS256", "typ": CAPABILITY_TYPE, "kid": self._signing_kid}
        return Capability(
            self.prefix + hs256_sign(header, claims, self._keys[self._signing_kid]),
            scopes,
            now + self.ttl,
            session_id,
        )

    def mint(
        self, access: Access, *, session_id: str, requested_scopes: Iterable[str] | str | None = None
    ) -> str:
        """The token string of :meth:`mint_capability`."""
        return self.mint_capability(access, session_id=session_id, requested_scopes=requested_scopes).token

    def verifier(self, *, leeway: int = 5, max_token_bytes: int = 4096) -> CapabilityVerifier:
        """A verifier for the tokens this issuer mints (same keys, issuer, audience and prefix)."""
        return CapabilityVerifier(
            keys=self._keys,
            issuer=self.issuer,
            audience=self.audience,
            ttl=self.ttl,
            prefix=self.prefix,
            leeway=leeway,
            max_token_bytes=max_token_bytes,
            clock=self._clock,
        )


class CapabilityVerifier:
    """Verifies capability tokens: the prefix, the strict JWS checks shared with access tokens,
    ``typ: cap+jwt``, HS256 under a known kid (constant-time), our issuer and audience, a lifetime
    no longer than ``ttl``, and every claim's type. Returns a :class:`VerifiedToken` whose
    ``client_id`` is None, whose claims hold ``sid``, and whose current actor is that session
    (``act.sub`` must equal ``sid``; a capability minted before tokens carried ``act`` is
    refused with a description that says to mint a new one)."""

    def __init__(
        self,
        *,
        keys: Mapping[str, bytes | str],
        issuer: str,
        audience: str = "agent-api",
        ttl: int = 300,
        prefix: str = "cap_",
        leeway: int = 5,
        max_token_bytes: int = 4096,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._keys = hmac_keys(keys)
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl
        self.prefix = prefix
        self.leeway = leeway
        self.max_token_bytes = max_token_bytes
        self._clock = clock or time.time

    def handles(self, token: str) -> bool:
        return token.startswith(self.prefix)

    def verify(self, token: str) -> VerifiedToken:
        if not isinstance(token, str) or not token.startswith(self.prefix):
            raise InvalidToken("not a capability token")
        if len(token) > self.max_token_bytes:
            raise InvalidToken("the token is too large")
        claims = hs256_verify(token[len(self.prefix) :], self._keys, CAPABILITY_TYPE)
        return self._claims(claims)

    def _claims(self, claims: dict[str, Any]) -> VerifiedToken:
        now = self._clock()
        exp = integer_claim(claims, "exp", required=True)
        iat = integer_claim(claims, "iat", required=True)
        if now >= exp + self.leeway:
            raise InvalidToken("the token has expired")
        if iat > now + self.leeway or exp > iat + self.ttl:
            raise InvalidToken("the token lifetime is not one this server issues")
        if claims.get("iss") != self.issuer or claims.get("aud") != self.audience:
            raise InvalidToken("the token was not issued for this server")
        subject = string_claim(claims, "sub", required=True)
        org = string_claim(claims, "org_id", required=True)
        sid = string_claim(claims, "sid", required=True)
        if len(sid) > MAX_SESSION_ID:
            raise InvalidToken("the token session id is too long")
        scope = claims.get("scope")
        try:
            scopes = parse_scope(scope)
        except InvalidScope:
            raise InvalidToken("the token scope claim is not a valid scope string") from None
        verified = VerifiedToken(  # reads act like any token's (claims.py)
            subject=subject,
            scopes=scopes,
            org=org,
            client_id=None,
            expires_at=exp,
            claims=MappingProxyType(claims),
            kind="capability",
        )
        if not verified.actors:
            # Minted before capabilities named their session as the actor: refused rather than
            # taken as the person acting directly, which would lift every actor rule from it.
            raise InvalidToken("this capability token names no acting session (act); mint a new one")
        if verified.actors[0].sub != sid:
            raise InvalidToken("the token's acting session is not its session")
        return verified


def act_claim(chain: tuple[Actor, ...]) -> dict[str, Any]:
    """The ``act`` claim (RFC 8693 §4.1) of a delegation chain, the current actor first: each
    actor's ``sub`` (and ``client_id``, ``iss`` when known), the one before it nested as ``act``."""
    claim: dict[str, Any] | None = None
    for actor in reversed(chain):
        level: dict[str, Any] = {"sub": actor.sub}
        if actor.client_id is not None:
            level["client_id"] = actor.client_id
        if actor.iss is not None:
            level["iss"] = actor.iss
        if claim is not None:
            level["act"] = claim
        claim = level
    if claim is None:
        raise ValueError("a delegation chain names at least one actor")
    return claim


def new_capability_key() -> str:
    """A fresh 32-byte secret, URL-safe, for configuration files and environment variables."""
    return secrets.token_urlsafe(32)
