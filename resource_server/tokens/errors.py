"""The two ways verification ends without a token: the credential is bad, or it cannot be checked now."""

from __future__ import annotations

__all__ = ["InvalidToken", "ResourceServerError", "VerificationUnavailable"]


class ResourceServerError(Exception):
    """Base of this package's errors that are not about a bad value (those are ``ValueError``)."""


class InvalidToken(ValueError):
    """The token cannot be accepted. ``description`` is short and safe to send to the client
    (RFC 6750 §3 ``error_description``): it never holds the token or a claim's value."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class VerificationUnavailable(ResourceServerError):
    """Verification cannot happen now: the authorization server (its introspection endpoint, its
    JWK Set, its metadata) cannot be reached or answers with an error, and no cached answer can
    stand in. Answered with ``503`` and ``Retry-After``, never ``401``: a 401 ``invalid_token``
    tells the client to throw away a token that may be good (RFC 6750 §3.1).

    ``description`` is safe to log; ``retry_after`` is the seconds a client should wait.
    """

    def __init__(self, description: str, *, retry_after: int = 5) -> None:
        super().__init__(description)
        self.description = description
        self.retry_after = retry_after
