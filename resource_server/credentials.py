"""Access tokens from the ``Authorization`` header: ``Bearer`` (RFC 6750 §2.1) and ``DPoP``
(RFC 9449 §7.1), and nothing looser; and the request facts a DPoP proof is checked against."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from .bodies import peek_body
from .tokens import InvalidToken

__all__ = [
    "MAX_FORM_INSPECTED",
    "MalformedCredentials",
    "access_token",
    "bearer_token",
    "names_access_token",
    "request_url",
    "token_elsewhere",
]

#: Larger urlencoded bodies are not searched for a second token (that would mean buffering them);
#: a token there is never accepted anyway, only the ``Authorization`` header is.
MAX_FORM_INSPECTED = 64 * 1024

# RFC 9110 §11.4: credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]; the scheme is a token.
_SCHEME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token; RFC 9449 §7.1 the same with "DPoP";
# b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_TOKEN = re.compile(r"(?i:(bearer|dpop)) +([A-Za-z0-9._~+/-]+=*)")
_SCHEMES = {"bearer": "Bearer", "dpop": "DPoP"}
# Servers fold repeated header lines into one value joined by commas (RFC 9110 §5.3).
_FOLDED = re.compile(r",[ \t]*(?:bearer|dpop)(?:[ \t]|$)", re.IGNORECASE)
_OWS = " \t"


class MalformedCredentials(ValueError):
    """Bearer credentials that break RFC 6750 §2.1 (answered with ``400 invalid_request``).

    ``description`` is safe to send to the client."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


def access_token(authorization: str | None, *, max_token_bytes: int = 8192) -> tuple[str, str] | None:
    """``(scheme, token)`` from an ``Authorization`` field value, the scheme ``"Bearer"`` or
    ``"DPoP"`` whatever its case; ``None`` if there are no such credentials (no header, or
    another scheme such as ``Basic``: RFC 6750 §3.1 says to answer those with a plain challenge).

    Raises :class:`MalformedCredentials` for a scheme with no token, a token with spaces or
    characters outside b64token, or two values folded into one (servers join repeated headers
    with commas, which b64token never contains). Raises :class:`InvalidToken` for a token over
    ``max_token_bytes``, without running the token pattern over it.
    """
    if not authorization:
        return None
    # RFC 9110 §5.5: whitespace around a field value is not part of it (servers differ in trimming).
    authorization = authorization.strip(_OWS)
    if len(authorization) <= max_token_bytes + 64:
        found = _TOKEN.fullmatch(authorization)
        if found is not None:  # the common case, in one linear pass
            if len(found.group(2)) > max_token_bytes:
                raise InvalidToken("the token is too large")
            return _SCHEMES[found.group(1).lower()], found.group(2)
    scheme = _SCHEME.match(authorization)
    if scheme is None or scheme.group().lower() not in _SCHEMES:
        if _FOLDED.search(authorization):  # "Basic x" and "Bearer y" sent as two lines
            raise MalformedCredentials("more than one Authorization header was sent")
        return None
    if len(authorization) > max_token_bytes + 64:
        raise InvalidToken("the token is too large")
    raise MalformedCredentials(
        f"the Authorization header is not valid {_SCHEMES[scheme.group().lower()]} credentials"
    )


def bearer_token(authorization: str | None, *, max_token_bytes: int = 8192) -> str | None:
    """The token of ``Bearer`` credentials (RFC 6750 §2.1), ``None`` for no credentials or
    another scheme (``DPoP`` included); errors as :func:`access_token`."""
    found = access_token(authorization, max_token_bytes=max_token_bytes)
    return found[1] if found is not None and found[0] == "Bearer" else None


def request_url(environ: dict[str, Any], resource: str | None = None) -> str:
    """The URL a request was sent to, without query or fragment, for DPoP's ``htu`` (RFC 9449
    §4.3): the scheme and authority of ``resource`` (the configured resource identifier) when
    given, else those the WSGI server reports (behind a proxy, configure the resource or install
    werkzeug's ``ProxyFix``); and the path as it came on the wire when the server keeps it
    (``RAW_URI``/``REQUEST_URI``), else re-encoded from ``SCRIPT_NAME`` + ``PATH_INFO``."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw.startswith("/"):
        path = raw.split("?", 1)[0].split("#", 1)[0]
    else:
        decoded = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1", "replace")
        path = quote(decoded.decode("utf-8", "replace"), safe="/;=!$&'()*+,:@~") or "/"
    if resource is not None:
        parts = urlsplit(resource)
        return f"{parts.scheme}://{parts.netloc}{path}"
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '')}:{environ.get('SERVER_PORT', '')}"
    return f"{scheme}://{host}{path}"


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
