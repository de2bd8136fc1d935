"""Several authorization servers behind one resource server: each JWT goes to the verifier of the
issuer it names, anything else to introspection (multi-tenant SaaS with one issuer per customer,
or a migration from one authorization server to another)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .errors import InvalidToken
from .jws import json_object, split_compact
from .jwt import JWTVerifier
from .verified import TokenVerifier, VerifiedToken

__all__ = ["TrustedIssuers"]


class TrustedIssuers:
    """One verifier for several issuers.

    A compact JWS goes to the :class:`JWTVerifier` whose ``issuer`` equals the token's ``iss``,
    read before verification only to choose the verifier, which then checks everything itself,
    ``iss`` and the signature included, with its own keys: a token naming issuer A but signed
    with B's key is refused by A's verifier. An ``iss`` no verifier has is ``401``. A token that
    is not a compact JWS goes to ``opaque`` (an
    :class:`~resource_server.tokens.introspection.IntrospectionVerifier`), or is ``401`` when
    there is none.

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
        if not isinstance(token, str):
            raise InvalidToken("the token must be a string")
        if len(token) > self.max_token_bytes:
            raise InvalidToken("the token is too large")
        try:
            payload = split_compact(token)[1]
        except InvalidToken:  # not a compact JWS: an opaque token
            if self._opaque is None:
                raise InvalidToken("the token is not a JWT, and no introspection is configured") from None
            return self._opaque.verify(token)
        issuer = json_object(payload, "payload").get("iss")
        verifier = self._by_issuer.get(issuer) if isinstance(issuer, str) else None
        if verifier is None:
            raise InvalidToken("the token issuer is not accepted")
        return verifier.verify(token)
