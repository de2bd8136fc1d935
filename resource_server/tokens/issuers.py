"""Several authorization servers behind one resource server: each JWT goes to the verifier of the
issuer it names, any other token to introspection (multi-tenant SaaS with one issuer per customer,
or a migration from one authorization server to another)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from .errors import InvalidToken, WouldWait, loggable
from .jws import json_object
from .jwt import JWTVerifier
from .verified import TokenVerifier, VerifiedToken

__all__ = ["TrustedIssuers"]


class TrustedIssuers:
    """One verifier for several issuers.

    A token that is a JWS goes to the :class:`JWTVerifier` whose ``issuer`` equals the token's
    ``iss``, read before verification only to choose the verifier, which then checks everything
    itself, ``iss`` and the signature included, with its own keys: a token naming issuer A but
    signed with B's key is refused by A's verifier. An ``iss`` no verifier has is ``401``.

    A token is a JWS when it has the compact serialization (RFC 7515 §7.1: three base64url
    segments, the signature possibly empty) and its first segment decodes to a JOSE header: a
    strict JSON object whose ``alg`` (RFC 7515 §4.1.1) is a string. Whatever that ``alg`` says
    (``none`` included), such a token is judged as a JWT, and refused there if its algorithm is
    not accepted: it is nobody's opaque token, and no introspection endpoint should see it. Any
    other token (an opaque string that happens to have two dots, a PASETO ``v4.local.…``, a
    five-segment JWE) goes to ``opaque`` (an
    :class:`~resource_server.tokens.introspection.IntrospectionVerifier`), or is ``401`` when
    there is none. Only the header segment is decoded to decide, after the size check.

    Issuers must be distinct and every verifier must use the same clock (the guard caches a
    verified token until its expiry on that clock): both are ``ValueError`` at construction.
    ``issuers`` lists them, for RFC 9728 ``authorization_servers``.
    """

    def __init__(self, verifiers: Iterable[JWTVerifier], *, opaque: TokenVerifier | None = None) -> None:
        verifiers = list(verifiers)
        by_issuer: dict[str, JWTVerifier] = {}
        for verifier in verifiers:
            if not isinstance(verifier, JWTVerifier):
                raise TypeError(f"TrustedIssuers takes JWTVerifier objects, not {type(verifier).__name__}")
            if verifier.issuer in by_issuer:
                raise ValueError(
                    f"two verifiers for the issuer {verifier.issuer!r}: issuers must be distinct"
                )
            by_issuer[verifier.issuer] = verifier
        if not by_issuer and opaque is None:
            raise ValueError("give at least one verifier")
        everyone: list[Any] = [*verifiers, *([opaque] if opaque is not None else [])]
        first = everyone[0].clock  # bound methods of one object compare equal, not identical
        if not all(v.clock == first for v in everyone):
            raise ValueError("every verifier must use the same clock (the guard's cache relies on it)")
        self._by_issuer = by_issuer
        # For the log line of a refused issuer: the trusted one it differs from only in case or
        # a trailing slash, the usual slip in configuration.
        self._near = {_loosely(issuer): issuer for issuer in by_issuer}
        self._opaque = opaque
        self._clock: Callable[[], float] = everyone[0].clock
        self.max_token_bytes: int = max(v.max_token_bytes for v in everyone)
        opaque_issuer = getattr(opaque, "issuer", None)
        # The opaque tokens' issuer is often one of the JWT issuers too: listed once.
        self.issuers: tuple[str, ...] = tuple(
            dict.fromkeys([*by_issuer, *([opaque_issuer] if opaque_issuer else [])])
        )

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    def verify(self, token: str) -> VerifiedToken:
        """Route ``token`` to its issuer's verifier and return what that verifier says."""
        return self._route(token).verify(token)

    def verify_uncached(self, token: str, *, wait: bool = True) -> VerifiedToken:
        """:meth:`verify` without the JWT verifiers' caches (the guard keeps what it verified);
        an opaque token's introspection answer is still cached, as it costs a round trip.
        ``wait=False``: :class:`WouldWait` rather than any fetch or introspection call."""
        verifier = self._route(token)
        uncached = uncached_verify(verifier)
        if uncached is not None:
            return uncached(token, wait=wait)
        if not wait:
            raise WouldWait("an opaque token is verified by introspection")
        return verifier.verify(token)

    def _route(self, token: str) -> TokenVerifier:
        """The verifier of ``token``'s issuer (introspection for an opaque token)."""
        if not isinstance(token, str):
            raise InvalidToken("the token must be a string")
        if len(token) > self.max_token_bytes:
            raise InvalidToken("the token is too large")
        payload = _jws_payload(token)
        if payload is None:  # not a JWS: an opaque token
            if self._opaque is None:
                raise InvalidToken("the token is not a JWT, and no introspection is configured")
            return self._opaque
        issuer = json_object(payload, "payload").get("iss")
        verifier = self._by_issuer.get(issuer) if isinstance(issuer, str) else None
        if verifier is None:
            raise InvalidToken("the token issuer is not accepted", reason=self._refused(issuer))
        return verifier

    def _refused(self, issuer: object) -> str:
        """The log line for an ``iss`` no verifier has: what it was, and what was expected."""
        trusted = list(self._by_issuer)
        listed = ", ".join(loggable(i) for i in trusted[:_LISTED])
        if len(trusted) > _LISTED:
            listed += f" and {len(trusted) - _LISTED} more"
        reason = f"the token issuer {loggable(issuer)} is not a trusted one ({listed or 'none'})"
        near = self._near.get(_loosely(issuer)) if isinstance(issuer, str) else None
        if near is not None:
            reason += f"; the trusted {loggable(near)} differs from it only in case or a trailing slash"
        return reason


#: Trusted issuers named in the log line of a refused one; the others are counted.
_LISTED = 5


def _loosely(issuer: str) -> str:
    return issuer.rstrip("/").lower()


# RFC 7515 §7.1 compact serialization, with the signature allowed to be empty, so that an
# unsecured JWS (alg "none", RFC 7519 §6) is judged, and refused, as the JWT it is.
_JWS = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.[A-Za-z0-9_-]*")


def _jws_payload(token: str) -> str | None:
    """The payload segment of a JWS (RFC 7515 §7.1: three base64url segments, the first a JOSE
    header, a JSON object naming its ``alg``, §4.1.1); None for a token of any other shape."""
    match = _JWS.fullmatch(token)
    if match is None:
        return None
    try:
        alg = json_object(match.group(1), "header").get("alg")
    except InvalidToken:
        return None
    return match.group(2) if isinstance(alg, str) else None


def uncached_verify(verifier: object) -> Callable[..., VerifiedToken] | None:
    """``verifier.verify_uncached`` (which takes ``wait=``) when ``verifier`` is one of the
    library's JWT verifiers as the library wrote it, else None: a subclass that overrides
    ``verify`` or ``verify_uncached`` (to add a check of its own) is asked through ``verify``,
    so no shortcut can skip what it adds."""
    for kind in (JWTVerifier, TrustedIssuers):
        if isinstance(verifier, kind):
            own = type(verifier)
            if own.verify is kind.verify and own.verify_uncached is kind.verify_uncached:
                found: Callable[..., VerifiedToken] = verifier.verify_uncached
                return found
            return None
    return None
