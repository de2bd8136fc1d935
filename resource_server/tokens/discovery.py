"""Finding an issuer's keys from its metadata (RFC 8414; OpenID Connect Discovery 1.0 as the
fallback): ``JWTVerifier(issuer=..., discover=True)``.

Nothing is fetched at construction. On first need the metadata is fetched, its ``issuer`` must
equal the configured issuer exactly (RFC 8414 §3.3, OIDC Discovery §4.3: a document for another
issuer is not used, whatever else it says), and its ``jwks_uri`` must be https (http only on
loopback). The keys then come from a :class:`~resource_server.tokens.keys.RemoteKeySet`. The
metadata is refreshed with the keys' rules: at most one attempt per cooldown, its
``Cache-Control: max-age`` (clamped) or five minutes, the last good document kept through
failures, and :class:`VerificationUnavailable` while none has ever been fetched.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Collection
from urllib.parse import urlsplit, urlunsplit

from .errors import VerificationUnavailable
from .http import FetchError, JSONFetcher, check_uri
from .keys import RemoteKeySet, VerificationKey, within

__all__ = ["DiscoveredKeySet", "metadata_uris"]

log = logging.getLogger(__name__)


def metadata_uris(issuer: str) -> tuple[str, str]:
    """Where the metadata of ``issuer`` lives: RFC 8414 §3.1 inserts the well-known suffix
    between the host and the issuer's path; OpenID Connect Discovery §4 appends it."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    rfc8414 = urlunsplit(
        (parts.scheme, parts.netloc, f"/.well-known/oauth-authorization-server{path}", "", "")
    )
    oidc = urlunsplit((parts.scheme, parts.netloc, f"{path}/.well-known/openid-configuration", "", ""))
    return rfc8414, oidc


class DiscoveredKeySet:
    """The keys of ``issuer``, found through its metadata document."""

    def __init__(
        self,
        issuer: str,
        *,
        algorithms: Collection[str],
        cooldown: float = 30.0,
        max_age: float = 300.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(issuer)
        if parts.query or parts.fragment:  # RFC 8414 §2: no query or fragment components
            raise ValueError(f"issuer {issuer!r} has a query or fragment; it cannot be discovered")
        check_uri(issuer, "issuer (for discovery)")
        self.issuer = issuer
        self._uris = metadata_uris(issuer)
        self._algorithms = frozenset(algorithms)
        self._cooldown, self._default_max_age, self._max_age = cooldown, max_age, max_age
        self._timeout = timeout
        self._clock = clock
        self._fetcher = JSONFetcher(timeout=timeout)
        self._lock = threading.Lock()
        self._keys: RemoteKeySet | None = None
        self._fetched_at = 0.0
        self._last_attempt: float | None = None

    def find(self, kid: str | None) -> VerificationKey | None:
        now = self._clock()
        if self._keys is None or not within(now, self._fetched_at, self._max_age):
            self._discover()
        keys = self._keys
        if keys is None:
            raise VerificationUnavailable(
                f"the metadata of {self.issuer} has never been fetched", retry_after=self._retry_after()
            )
        return keys.find(kid)

    @property
    def jwks_uri(self) -> str | None:
        return self._keys.uri if self._keys is not None else None

    def _retry_after(self) -> int:
        if self._last_attempt is None:
            return 1
        return max(1, math.ceil(self._cooldown - (self._clock() - self._last_attempt)))

    def _discover(self) -> None:
        with self._lock:
            now = self._clock()
            if self._last_attempt is not None and within(now, self._last_attempt, self._cooldown):
                return
            self._last_attempt = now
            for uri in self._uris:
                try:
                    jwks_uri, max_age = self._jwks_uri_from(uri)
                except (FetchError, ValueError) as exc:
                    log.warning("discovery of %s: %s", self.issuer, exc)
                    continue
                if self._keys is None or self._keys.uri != jwks_uri:
                    self._keys = RemoteKeySet(
                        jwks_uri,
                        algorithms=self._algorithms,
                        cooldown=self._cooldown,
                        timeout=self._timeout,
                        clock=self._clock,
                        fetcher=self._fetcher,
                    )
                self._fetched_at = now
                self._max_age = max_age if max_age is not None else self._default_max_age
                return

    def _jwks_uri_from(self, uri: str) -> tuple[str, float | None]:
        fetched = self._fetcher.get(uri)
        document = fetched.document
        if document.get("issuer") != self.issuer:  # exact (RFC 8414 §3.3)
            raise ValueError(f"{uri} describes another issuer; not used")
        jwks_uri = document.get("jwks_uri")
        return check_uri(jwks_uri, f"the jwks_uri in {uri}"), fetched.max_age
