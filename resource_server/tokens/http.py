"""The HTTP client to the authorization server (JWK Sets, RFC 8414 metadata, RFC 7662
introspection): https only (http on loopback), pooled keep-alive connections through ``urllib3``
(:mod:`~resource_server.tokens.pool`), no retries and no redirects, and a deadline on the whole
answer, not only on each read.

``urllib3`` rather than PyJWT's ``PyJWKClient`` (which exposes neither response headers, for
``Cache-Control: max-age``, nor a bound on the body it parses) and rather than ``httpx2`` (a
second client stack for the same few synchronous requests): it is already installed with
``requests``, is synchronous like the guard, pools connections and lets reads be bounded.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..strict_json import parse_object, strict_json_decoder
from ..telemetry import spans

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "FetchError",
    "Fetched",
    "JSONFetcher",
    "check_uri",
    "is_loopback",
    "max_age_of",
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
        from .pool import ERRORS, pool_manager  # urllib3: loaded by the first client built

        self.timeout = timeout
        self._pool = pool_manager(timeout, max_idle=2, pools=4)
        self._errors = ERRORS

    def get(self, uri: str) -> Fetched:
        """The JSON object at ``uri``; :class:`FetchError` for anything else (an error status, a
        redirect, a timeout, more than :data:`MAX_DOCUMENT_BYTES`, JSON that is not strictly an
        object)."""
        headers = {"Accept": "application/json"}
        spans.inject(headers)  # traceparent: the authorization server's trace joins ours
        try:
            response = self._pool.request("GET", uri, headers=headers, redirect=False, preload_content=False)
        except self._errors as exc:
            raise FetchError(f"GET {uri} failed: {type(exc).__name__}") from None
        body = None
        try:
            if response.status != 200:
                raise FetchError(f"GET {uri} answered {response.status}")
            body = response.read(MAX_DOCUMENT_BYTES + 1, decode_content=False)
            if len(body) > MAX_DOCUMENT_BYTES:
                raise FetchError(f"GET {uri}: the document is larger than {MAX_DOCUMENT_BYTES} bytes")
            cache_control = response.headers.get("Cache-Control")
        except self._errors as exc:
            raise FetchError(f"GET {uri} failed while reading: {type(exc).__name__}") from None
        finally:
            if body is None or len(body) > MAX_DOCUMENT_BYTES:
                # Closed, not reused: bytes left unread would be read as the next answer.
                response.close()
            response.release_conn()
        return Fetched(parse_object(body, _DECODER, FetchError, what="document"), max_age_of(cache_control))
