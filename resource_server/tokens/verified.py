"""What every verifier returns, and what every verifier is: the contract the guard relies on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["TokenVerifier", "VerifiedToken"]


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A verified access token. ``claims`` is a read-only view of the whole payload."""

    subject: str
    scopes: frozenset[str]
    org: str | None
    client_id: str | None
    expires_at: int
    claims: Mapping[str, Any]
    kind: str = "access"  # "capability" for capability tokens


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
