"""Bearer credentials from the ``Authorization`` header, RFC 6750 §2.1, and nothing looser."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from .bodies import peek_body
from .tokens import InvalidToken

__all__ = [
    "MAX_FORM_INSPECTED",
    "MalformedCredentials",
    "bearer_token",
    "names_access_token",
    "token_elsewhere",
]

#: Larger urlencoded bodies are not searched for a second token (that would mean buffering them);
#: a token there is never accepted anyway, only the ``Authorization`` header is.
MAX_FORM_INSPECTED = 64 * 1024

# RFC 9110 §11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]; the scheme is a token.
_SCHEME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token;
# b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_BEARER = re.compile(r"(?i:bearer) +([A-Za-z0-9._~+/-]+=*)")
# Servers fold repeated header lines into one value joined by commas (RFC 9110 §5.3).
_FOLDED_BEARER = re.compile(r",[ \t]*bearer(?:[ \t]|$)", re.IGNORECASE)
_OWS = " \t"


class MalformedCredentials(ValueError):
    """Bearer credentials that break RFC 6750 §2.1 (answered with ``400 invalid_request``).

    ``description`` is safe to send to the client."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def bearer_token(authorization: str | None, *, max_token_bytes: int = 8192) -> str | None:
    """The bearer token in an ``Authorization`` field value, or ``None`` if there are no bearer
    credentials (no header, or another scheme such as ``Basic``: RFC 6750 §3.1 says to answer
    those with a plain challenge).

    Raises :class:`MalformedCredentials` for ``Bearer`` with no token, a token with spaces or
    characters outside b64token, or two values folded into one (servers join repeated headers
    with commas, which b64token never contains). Raises :class:`InvalidToken` for a token over
    ``max_token_bytes``, without running the token pattern over it.
    """
    if not authorization:
        return None
    # RFC 9110 §5.5: whitespace around a field value is not part of it (servers differ in trimming).
    authorization = authorization.strip(_OWS)
    if len(authorization) <= max_token_bytes + 64:
        found = _BEARER.fullmatch(authorization)
        if found is not None:  # the common case, in one linear pass
            if len(found.group(1)) > max_token_bytes:
                raise InvalidToken("the token is too large")
            return found.group(1)
    scheme = _SCHEME.match(authorization)
    if scheme is None or scheme.group().lower() != "bearer":
        if _FOLDED_BEARER.search(authorization):  # "Basic x" and "Bearer y" sent as two lines
            raise MalformedCredentials("more than one Authorization header was sent")
        return None
    if len(authorization) > max_token_bytes + 64:
        raise InvalidToken("the token is too large")
    raise MalformedCredentials("the Authorization header is not valid Bearer credentials")


def names_access_token(urlencoded: bytes | str) -> bool:
    """Whether an ``application/x-www-form-urlencoded`` string has an ``access_token`` field
    (RFC 6750 §2.2 and §2.3), percent-encoded names included."""
    text = urlencoded.decode("latin-1") if isinstance(urlencoded, bytes) else urlencoded
    return "access_token" in parse_qs(text, keep_blank_values=True)


_FORM = "application/x-www-form-urlencoded"


def token_elsewhere(environ: dict[str, Any]) -> bool:
    """Whether an ``access_token`` came in the query (RFC 6750 §2.3) or in an urlencoded body
    (§2.2): this server takes the ``Authorization`` header only, and refuses a token sent another
    way too, alone or next to the header (RFC 6750 §2: one method per request).

    Up to :data:`MAX_FORM_INSPECTED` bytes of an urlencoded body, chunked or not, are read and
    put back in front of the rest (:func:`~resource_server.bodies.peek_body`), so the application
    still reads the body whole; a larger body is not searched. Raises
    :class:`~resource_server.bodies.BodyError` for a body that cannot be read.
    """
    query = environ.get("QUERY_STRING")
    if query and names_access_token(query):
        return True
    # The raw header first: this runs on every request, and most requests are not forms.
    content_type = environ.get("CONTENT_TYPE")
    if not content_type or content_type[: len(_FORM)].lower() != _FORM:
        return False
    head = peek_body(environ, limit=MAX_FORM_INSPECTED)
    return len(head) <= MAX_FORM_INSPECTED and names_access_token(head)
