"""Access tokens from the ``Authorization`` header: ``Bearer`` (RFC 6750 §2.1) and ``DPoP``
(RFC 9449 §7.1), and nothing looser; and the request facts a DPoP proof is checked against: the
``Host`` (RFC 9110 §7.2), validated, and the request URL built from it."""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from .bodies import peek_body
from .tokens import InvalidToken

__all__ = [
    "MAX_FORM_INSPECTED",
    "Authority",
    "MalformedCredentials",
    "MalformedHost",
    "access_token",
    "bearer_token",
    "check_host",
    "http_scheme",
    "names_access_token",
    "parse_host",
    "request_url",
    "server_authority",
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
            if found.end() - found.start(2) > max_token_bytes:
                raise InvalidToken("the token is too large")
            # The pattern matched "bearer" or "dpop" in any case: the first letter tells which.
            return "Bearer" if authorization[0] in "Bb" else "DPoP", found.group(2)
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


class MalformedHost(ValueError):
    """A ``Host`` header that is not ``host[:port]`` (RFC 9110 §7.2), or a request whose URL
    cannot be named (no usable host, a scheme other than http(s)): answered with ``400`` and no
    challenge, before any credential is looked at. ``description`` is safe to send: it never
    repeats the value."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


# RFC 9110 §7.2: Host = uri-host [ ":" port ]; RFC 3986 §3.2.2-3: uri-host = IP-literal /
# IPv4address / reg-name, port = *DIGIT. An IPv4 address is a reg-name by these characters. The
# reg-name is held to the unreserved characters (ALPHA DIGIT - . _ ~): RFC 3986 allows
# pct-encoded and sub-delims there too, but no DNS name holds them, "," is how servers fold two
# Host lines into one, and "%" would give one host several spellings. An IP-literal is an IPv6
# address (checked by ``ipaddress`` below); IPvFuture and zone identifiers are refused. No
# quantifier is nested: one linear pass, and nothing longer than a DNS name (255) is scanned.
_HOST = re.compile(r"(?:([A-Za-z0-9._~-]{1,255})|\[([0-9A-Fa-f:.]{2,45})\])(?::([0-9]{0,5}))?")
_PORT = re.compile(r"[0-9]{1,5}")
_MAX_HOST = 255 + len(":65535")
_DEFAULT_PORTS = {"http": 80, "https": 443}
# A server sees few hosts: each valid Host value is remembered with what it names (a bounded
# dict, cleared when full), so most requests cost a dict lookup, not a match. Measured on the
# WSGI middleware's warm path (shared machine, medians of 15 interleaved rounds): the match
# added 1.7 µs to 3.8 µs, the lookup adds 0.3 µs; a DPoP request, which builds its URL from the
# Host, saves the match a second time.
_AUTHORITIES: dict[str, Authority] = {}
_KNOWN_HOSTS = 256


@dataclass(frozen=True, slots=True)
class Authority:
    """A request's validated host and port: ``host`` in lower case (RFC 3986 §6.2.2.1), an IPv6
    address in brackets; ``port`` None when none was given (or an empty one, RFC 3986 §3.2.3)."""

    host: str
    port: int | None

    def url(self, scheme: str, path: str) -> str:
        """``scheme://host[:port]path``, from these parts only; the scheme's default port left
        out (RFC 3986 §6.2.3). ``scheme`` is one :func:`http_scheme` returned, ``path`` starts
        with ``/`` and holds no ``?`` or ``#``."""
        if self.port is None or self.port == _DEFAULT_PORTS[scheme]:
            return f"{scheme}://{self.host}{path}"
        return f"{scheme}://{self.host}:{self.port}{path}"


def parse_host(value: object) -> Authority:
    """The :class:`Authority` a ``Host`` field value names (RFC 9110 §7.2); :class:`MalformedHost`
    for anything else: a path, query or fragment, userinfo, spaces or controls, non-ASCII, an
    empty value (RFC 9110 §4.2.1: an http URI has a host), a port past 65535, a bad IPv6 literal.
    Whitespace around the value is not part of it (RFC 9110 §5.5)."""
    if type(value) is str:
        known = _AUTHORITIES.get(value)
        if known is not None:
            return known
        authority = _parsed_host(value)
        if len(_AUTHORITIES) >= _KNOWN_HOSTS:
            _AUTHORITIES.clear()
        _AUTHORITIES[value] = authority
        return authority
    return _parsed_host(value)


def _parsed_host(value: object) -> Authority:
    if isinstance(value, str):
        value = value.strip(_OWS)
    found = _HOST.fullmatch(value) if isinstance(value, str) and len(value) <= _MAX_HOST else None
    if found is None:
        raise MalformedHost("the Host header is not a valid host[:port]")
    name, literal, port = found.groups()
    if literal is not None:
        try:
            ipaddress.IPv6Address(literal)
        except ValueError:
            raise MalformedHost("the Host header's IP literal is not an IPv6 address") from None
        name = f"[{literal}]"
    return Authority(name.lower(), _port(port))


def _port(digits: str | None) -> int | None:
    if not digits:
        return None
    number = int(digits)
    if number > 65535:
        raise MalformedHost("the port in the Host header is larger than 65535")
    return number


def check_host(value: str | None) -> None:
    """:class:`MalformedHost` when a ``Host`` header was sent and is not valid (RFC 9112 §3.2:
    a server answers such a request with 400, whatever else it carries). Adapters call it on
    every request they guard, before anything else is checked; an absent Host is the
    server's to judge (HTTP/1.0 has none)."""
    if value is None or (type(value) is str and value in _AUTHORITIES):
        return
    parse_host(value)


def server_authority(name: object, port: object) -> Authority:
    """The server's own address (WSGI ``SERVER_NAME``/``SERVER_PORT``, ASGI ``scope["server"]``)
    as an :class:`Authority`, for a request without ``Host``; a bare IPv6 address gets its
    brackets (RFC 3986 §3.2.2). :class:`MalformedHost` when it names no host (a Unix socket)."""
    unusable = MalformedHost("the request has no Host header and the server's address names no host")
    if isinstance(name, str) and ":" in name and not name.startswith("["):
        name = f"[{name}]"
    digits = str(port) if isinstance(port, int) and not isinstance(port, bool) else port
    if not isinstance(digits, str) or _PORT.fullmatch(digits) is None:
        raise unusable
    try:
        host = parse_host(name)
        number = _port(digits)
    except MalformedHost:
        raise unusable from None
    if host.port is not None:  # a SERVER_NAME that carries a port of its own
        raise unusable
    return Authority(host.host, number)


def http_scheme(value: object) -> str:
    """The request's scheme as a DPoP ``htu`` may name it: ``http`` or ``https`` (RFC 9449 §4.3),
    in lower case. A scheme a proxy fix copied from ``X-Forwarded-Proto`` is checked like any
    other request value: :class:`MalformedHost` for anything else."""
    if isinstance(value, str):
        scheme = value.lower()
        if scheme in _DEFAULT_PORTS:
            return scheme
    raise MalformedHost("the request's scheme is not http or https")


@functools.lru_cache(maxsize=32)
def resource_origin(resource: str) -> str:
    """``scheme://authority`` of a configured resource identifier, for the DPoP ``htu`` of the
    requests it serves: split once per resource (a server has one or a few), not per proof."""
    parts = urlsplit(resource)
    return f"{parts.scheme}://{parts.netloc}"


def request_url(environ: dict[str, Any], resource: str | None = None) -> str:
    """The URL a request was sent to, without query or fragment, for DPoP's ``htu`` (RFC 9449
    §4.3): the scheme and authority of ``resource`` (the configured resource identifier) when
    given, else the request's scheme and its ``Host`` (no Host: the server's address), each
    validated, and the URL built from the parsed parts (behind a proxy, configure the resource
    or install werkzeug's ``ProxyFix``: the Host it sets is validated the same way); the path as
    it came on the wire when the server keeps it (``RAW_URI``/``REQUEST_URI``), else re-encoded
    from ``SCRIPT_NAME`` + ``PATH_INFO``. :class:`MalformedHost` when no valid URL can be named."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if isinstance(raw, str) and raw.startswith("/"):
        path = raw.split("?", 1)[0].split("#", 1)[0]
    else:
        decoded = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1", "replace")
        path = quote(decoded.decode("utf-8", "replace"), safe="/;=!$&'()*+,:@~") or "/"
    if resource is not None:
        return resource_origin(resource) + path
    scheme = http_scheme(environ.get("wsgi.url_scheme", "http"))
    host = environ.get("HTTP_HOST")
    authority = (
        parse_host(host)
        if host is not None
        else server_authority(environ.get("SERVER_NAME"), environ.get("SERVER_PORT"))
    )
    return authority.url(scheme, path)


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
