"""The HTTP client to the authorization server (JWK Sets, RFC 8414 metadata, RFC 7662
introspection): https only (http on loopback), pooled keep-alive connections through ``urllib3``,
no retries and no redirects, and a deadline on the whole answer, not only on each read.

``urllib3`` rather than PyJWT's ``PyJWKClient`` (which exposes neither response headers, for
``Cache-Control: max-age``, nor a bound on the body it parses) and rather than ``httpx2`` (a
second client stack for the same few synchronous requests): it is already installed with
``requests``, is synchronous like the guard, pools connections and lets reads be bounded.
"""

from __future__ import annotations

import http.client
import io
import ipaddress
import re
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3
import urllib3.connection

from ..strict_json import parse_object, strict_json_decoder

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "FetchError",
    "Fetched",
    "JSONFetcher",
    "check_uri",
    "is_loopback",
    "max_age_of",
    "pool_manager",
]

#: A JWK Set or a metadata document is a few KiB; a larger answer is refused unread.
MAX_DOCUMENT_BYTES = 256 * 1024
#: How long a document may be trusted, whatever its ``Cache-Control`` says (seconds).
MIN_MAX_AGE, MAX_MAX_AGE = 60.0, 86400.0
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)", re.IGNORECASE)


def is_loopback(host: str | None) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``: where plain http cannot be overheard."""
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_uri(uri: object, what: str = "the URL") -> str:
    """``uri`` if it is an absolute https URL, or http on a loopback host (a test or a sidecar),
    without credentials, fragment, spaces or controls; a ``ValueError`` naming ``what``
    otherwise. Over plain http anyone on the path could replace the keys, and with them every
    token, or read the tokens sent for introspection (RFC 7662 §4)."""
    if not isinstance(uri, str) or not uri or re.search(r"[\x00-\x20\x7f]", uri):
        raise ValueError(f"{what} must be an absolute https URL without spaces or controls")
    parts = urlsplit(uri)
    try:
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number in range)
    except ValueError:
        raise ValueError(f"{what} {uri[:200]!r} has an invalid port") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"{what} {uri[:200]!r} must be an absolute https URL")
    if parts.username is not None or parts.fragment:
        raise ValueError(f"{what} must not carry credentials or a fragment")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(f"{what} {uri[:200]!r} must be https (http only on a loopback host)")
    return uri


def max_age_of(cache_control: str | None) -> float | None:
    """RFC 9111 §5.2.2.1 ``max-age``, clamped to [60 s, 24 h]; ``no-store``/``no-cache`` count as
    the minimum (keys are needed on every request: refetching them on every request would make
    the authorization server part of every request)."""
    if not cache_control:
        return None
    if _NO_CACHE.search(cache_control):
        return MIN_MAX_AGE
    match = _MAX_AGE.search(cache_control)
    if match is None:
        return None
    return min(max(float(match.group(1)), MIN_MAX_AGE), MAX_MAX_AGE)


# -- the HTTP client -------------------------------------------------------------------------------


class _DeadlineReader(io.RawIOBase):
    """A socket's byte stream in which each read gets only the time left before a deadline."""

    def __init__(self, raw: Any, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._raw = raw
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer did not arrive in time")
        self._sock.settimeout(left)
        return self._raw.readinto(buffer)

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        self._raw.close()
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, read so that the status line, headers and body together arrive
    within the read timeout: a socket timeout bounds each read, not their sum, and a server
    trickling a byte at a time would otherwise hold the request for as long as it liked."""

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        budget = sock.gettimeout()  # urllib3 has just set it to what is left of the timeout
        if budget is not None:
            raw = self.fp.detach()  # nothing has been read or buffered yet
            self.fp = io.BufferedReader(_DeadlineReader(raw, sock, time.monotonic() + budget))


class _HTTPConnection(urllib3.connection.HTTPConnection):
    response_class = _DeadlineResponse


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    response_class = _DeadlineResponse


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


def pool_manager(timeout: float, *, max_idle: int = 16, pools: int = 1) -> urllib3.PoolManager:
    """Pooled keep-alive connections; no retries and no redirects (a retry is the client's
    call, after our 503); ``total`` makes the read timeout what the connect left over."""
    manager = urllib3.PoolManager(
        num_pools=pools,
        maxsize=max_idle,
        block=False,  # more connections when busy; only this many are kept
        retries=False,
        timeout=urllib3.Timeout(connect=timeout, read=timeout, total=timeout),
    )
    manager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}
    return manager


class FetchError(Exception):
    """The document could not be fetched or is not a JSON object; the message is safe to log."""


_DECODER = strict_json_decoder(
    lambda: FetchError("the document has duplicate JSON members"),
    lambda: FetchError("the document holds NaN, Infinity or an overflowing number"),
)


@dataclass(frozen=True, slots=True)
class Fetched:
    document: dict[str, Any]
    max_age: float | None  # seconds from Cache-Control, clamped; None when it says nothing


class JSONFetcher:
    """GETs JSON objects (JWK Sets, metadata) with :func:`pool_manager`'s connections."""

    def __init__(self, *, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._pool = pool_manager(timeout, max_idle=2, pools=4)

    def get(self, uri: str) -> Fetched:
        """The JSON object at ``uri``; :class:`FetchError` for anything else (an error status, a
        redirect, a timeout, more than :data:`MAX_DOCUMENT_BYTES`, JSON that is not strictly an
        object)."""
        try:
            response = self._pool.request(
                "GET", uri, headers={"Accept": "application/json"}, redirect=False, preload_content=False
            )
        except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
            raise FetchError(f"GET {uri} failed: {type(exc).__name__}") from None
        body = None
        try:
            if response.status != 200:
                raise FetchError(f"GET {uri} answered {response.status}")
            body = response.read(MAX_DOCUMENT_BYTES + 1, decode_content=False)
            if len(body) > MAX_DOCUMENT_BYTES:
                raise FetchError(f"GET {uri}: the document is larger than {MAX_DOCUMENT_BYTES} bytes")
            cache_control = response.headers.get("Cache-Control")
        except (urllib3.exceptions.HTTPError, OSError, http.client.HTTPException) as exc:
            raise FetchError(f"GET {uri} failed while reading: {type(exc).__name__}") from None
        finally:
            if body is None or len(body) > MAX_DOCUMENT_BYTES:
                # Closed, not reused: bytes left unread would be read as the next answer.
                response.close()
            response.release_conn()
        return Fetched(parse_object(body, _DECODER, FetchError, what="document"), max_age_of(cache_control))
