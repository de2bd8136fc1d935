"""The two ways verification ends without a token: the credential is bad, or it cannot be checked now."""

from __future__ import annotations

__all__ = ["InvalidToken", "ResourceServerError", "VerificationUnavailable", "WouldWait", "loggable"]

#: The most characters of a value from a request that a log line shows.
_LOGGED_CHARS = 200


def loggable(value: object) -> str:
    """A value taken from a request (a claim, a ``kid``), fit for a log line: a string bounded to
    200 characters and written as an ASCII literal (``ascii``: quotes, and escapes for controls,
    line breaks, bidi and every other non-ASCII character, so it can neither forge a line nor
    pass for another value); anything else is named by its JSON type, never printed."""
    if isinstance(value, str):
        shown = ascii(value[:_LOGGED_CHARS])
        return shown if len(value) <= _LOGGED_CHARS else f"{shown}... ({len(value)} characters)"
    if value is None:
        return "none"
    kinds = {bool: "a boolean", int: "a number", float: "a number", list: "an array", dict: "an object"}
    return kinds.get(type(value), "a value of another type")


class ResourceServerError(Exception):
    """Base of this package's errors that are not about a bad value (those are ``ValueError``)."""


class InvalidToken(ValueError):
    """The token cannot be accepted. ``description`` is short and safe to send to the client
    (RFC 6750 §3 ``error_description``): it never holds the token or a claim's value.

    ``reason`` is for the log line and ``Denial.reason`` (which ``flask scopes explain`` prints),
    never for the response: it may add what was expected and what the token held (each value
    passed through :func:`loggable`). It defaults to ``description``.

    ``issuer`` is the configured issuer whose verifier refused the token (set by that verifier,
    never read from the token), for metrics and audit events; None when no verifier of a
    configured issuer took it.
    """

    issuer: str | None = None

    def __init__(self, description: str, *, reason: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.reason = reason if reason is not None else description


class VerificationUnavailable(ResourceServerError):
    """Verification cannot happen now: the authorization server (its introspection endpoint, its
    JWK Set, its metadata) cannot be reached or answers with an error, and no cached answer can
    stand in. Answered with ``503`` and ``Retry-After``, never ``401``: a 401 ``invalid_token``
    tells the client to throw away a token that may be good (RFC 6750 §3.1).

    ``description`` is safe to log; ``retry_after`` is the seconds a client should wait.
    ``cause`` says what could not answer, for metrics and audit events: ``"jwks"``,
    ``"discovery"``, ``"introspection"``, ``"replay_store"`` (a shared store unreachable, or
    failing), ``"replay_full"`` (a replay cache, or one key's share of it, full), or ``"other"``
    (a custom verifier's). ``issuer`` is the configured issuer concerned, when there is one.
    """

    issuer: str | None = None

    def __init__(self, description: str, *, retry_after: int = 5, cause: str = "other") -> None:
        super().__init__(description)
        self.description = description
        self.retry_after = retry_after
        self.cause = cause


class WouldWait(ResourceServerError):
    """Raised by a verification told not to wait (``wait=False``) when only the network could
    answer: a key set never fetched, stale, or lacking the token's key; an introspection call.
    The async adapters then verify in a worker thread: never an answer to a request."""
