"""Fetching the authorization server's JSON documents (JWK Sets, RFC 8414 metadata): bounded,
timed out, never redirected, over https (http only on loopback), with the freshness the server
declares in ``Cache-Control``.

``urllib3`` rather than PyJWT's ``PyJWKClient``: the client exposes neither the response headers
(``Cache-Control: max-age``) nor a bound on the body it parses, and both are needed here.
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import urllib3

from ..strict_json import parse_object, strict_json_decoder

__all__ = ["MAX_DOCUMENT_BYTES", "FetchError", "Fetched", "JSONFetcher", "check_uri", "is_loopback"]

#: A JWK Set or a metadata document is a few KiB; a larger answer is refused unread.
MAX_DOCUMENT_BYTES = 256 * 1024
#: How long a document may be trusted, whatever its ``Cache-Control`` says (seconds).
MIN_MAX_AGE, MAX_MAX_AGE = 60.0, 86400.0
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d{1,10})\"?\s*(?:,|$)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:,|$)", re.IGNORECASE)


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


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_uri(uri: object, what: str) -> str:
    """``uri`` if it is an absolute https URI, or http on a loopback host (a test or a sidecar);
    a ``ValueError`` naming ``what`` otherwise. Keys fetched over plain http from anywhere else
    could be replaced by anyone on the path, and with them every token."""
    if not isinstance(uri, str) or not uri:
        raise ValueError(f"{what} must be an absolute https URI")
    parts = urlsplit(uri)
    if parts.scheme == "https" and parts.hostname:
        return uri
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return uri
    raise ValueError(f"{what} {uri[:200]!r} must be https (http only on a loopback host)")


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


class JSONFetcher:
    """GETs JSON objects over one pooled ``urllib3`` connection pool."""

    def __init__(self, *, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._pool = urllib3.PoolManager(
            num_pools=4, maxsize=2, retries=False, timeout=urllib3.Timeout(connect=timeout, read=timeout)
        )

    def get(self, uri: str) -> Fetched:
        """The JSON object at ``uri``; :class:`FetchError` for anything else (an error status, a
        redirect, a timeout, more than :data:`MAX_DOCUMENT_BYTES`, JSON that is not strictly an
        object)."""
        deadline = time.monotonic() + 2 * self.timeout  # a server trickling bytes is cut off too
        try:
            response = self._pool.request(
                "GET", uri, headers={"Accept": "application/json"}, redirect=False, preload_content=False
            )
        except urllib3.exceptions.HTTPError as exc:
            raise FetchError(f"GET {uri} failed: {type(exc).__name__}") from None
        try:
            if response.status != 200:
                raise FetchError(f"GET {uri} answered {response.status}")
            body = _read_bounded(response, deadline, uri)
            cache_control = response.headers.get("Cache-Control")
        finally:
            response.release_conn()
        return Fetched(parse_object(body, _DECODER, FetchError, what="document"), max_age_of(cache_control))


def _read_bounded(response: Any, deadline: float, uri: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            chunk = response.read(16384)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > MAX_DOCUMENT_BYTES:
                raise FetchError(f"GET {uri}: the document is larger than {MAX_DOCUMENT_BYTES} bytes")
            if time.monotonic() > deadline:
                raise FetchError(f"GET {uri}: the answer took too long")
            chunks.append(chunk)
    except urllib3.exceptions.HTTPError as exc:
        raise FetchError(f"GET {uri} failed while reading: {type(exc).__name__}") from None
