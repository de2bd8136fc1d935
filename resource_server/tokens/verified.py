"""What every verifier returns, and what every verifier is: the contract the guard relies on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from policy import Actor

from .claims import acr_of, actors_of, auth_time_of, bound_thumbprint

__all__ = ["TokenVerifier", "VerifiedToken"]


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A verified access token. ``claims`` is a read-only view of the whole payload.

    ``jkt`` is the key thumbprint the token is bound to (``cnf.jkt``, RFC 9449 §6), or None for
    a bearer token. It is read from ``claims`` when the token is built, by every verifier alike
    (custom ones included), so a ``cnf`` this server cannot enforce (another confirmation method,
    or a malformed one) makes construction raise :class:`InvalidToken`: a confirmation claim is
    a condition of use (RFC 7800 §3.1), and a token that carries one is never a bearer token.

    ``actors`` is the delegation chain of the token's ``act`` claim (RFC 8693 §4.1), the current
    actor first, ``()`` when nobody acts for the subject; ``acr`` and ``auth_time`` say how and
    when the person last authenticated (RFC 9068 §2.2.1), None when the token does not say. They
    are read the same way, strictly: a malformed ``act`` (not an object, no ``sub``, an
    identifier with control or invisible characters, nested deeper than 8), an ``acr`` that is
    not a printable identifier, or an ``auth_time`` that is not an integer date makes
    construction raise :class:`InvalidToken`. Whether ``auth_time`` lies in the future is
    checked by the verifier, against its clock.
    """

    subject: str
    scopes: frozenset[str]
    org: str | None
    client_id: str | None
    expires_at: int
    claims: Mapping[str, Any]
    kind: str = "access"  # "capability" for capability tokens
    jkt: str | None = field(init=False, default=None)
    actors: tuple[Actor, ...] = field(init=False, default=())
    acr: str | None = field(init=False, default=None)
    auth_time: int | None = field(init=False, default=None)
    #: The ``iss`` claim when it is a string (None otherwise), read once: telemetry names the
    #: issuer of every new token without reading the claims again.
    issuer: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        claims = self.claims
        issuer = claims.get("iss")
        if type(issuer) is str:
            object.__setattr__(self, "issuer", issuer)
        # Each reader answers its default for an absent claim, which the field holds already:
        # most tokens carry none of the four, so none is called.
        if "cnf" in claims:
            object.__setattr__(self, "jkt", bound_thumbprint(claims))
        if "act" in claims:
            object.__setattr__(self, "actors", actors_of(claims))
        if "acr" in claims:
            object.__setattr__(self, "acr", acr_of(claims))
        if "auth_time" in claims:
            object.__setattr__(self, "auth_time", auth_time_of(claims))


@runtime_checkable
class TokenVerifier(Protocol):
    """What the guard needs of a verifier: :class:`~resource_server.tokens.JWTVerifier`,
    :class:`~resource_server.tokens.IntrospectionVerifier`, :class:`~resource_server.tokens.TrustedIssuers`.

    ``verify`` returns a :class:`VerifiedToken` or raises ``InvalidToken`` (401) or
    ``VerificationUnavailable`` (503). ``max_token_bytes`` bounds what reaches it; ``clock`` is the
    Unix-time clock its answers are valid against (the guard's cache uses the same one).
    """

    max_token_bytes: int

    @property
    def clock(self) -> Callable[[], float]: ...

    def verify(self, token: str) -> VerifiedToken: ...
