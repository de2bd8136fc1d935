"""Finding an issuer's keys from its metadata (RFC 8414; OpenID Connect Discovery 1.0 as the
fallback): ``JWTVerifier(issuer=..., discover=True)``.

Nothing is fetched at construction. On first need the metadata is fetched, its ``issuer`` must
equal the configured issuer exactly (RFC 8414 §3.3, OIDC Discovery §4.3: a document for another
issuer is not used, whatever else it says), and its ``jwks_uri`` must be https (http only on
loopback). The keys then come from a :class:`~resource_server.tokens.keys.RemoteKeySet` (with
its refetch on an unknown ``kid``). The metadata is refreshed with the keys' rules: at most one
attempt per cooldown, its ``Cache-Control: max-age`` (clamped) or five minutes, the last good
document kept through failures, and :class:`VerificationUnavailable` while none has ever been
fetched.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Collection
from urllib.parse import urlsplit, urlunsplit

from ..telemetry import audit, metrics, spans
from .errors import VerificationUnavailable, WouldWait, loggable
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
    """The keys of ``issuer``, found through its metadata document.

    The location that answered last is asked first next time, so an issuer that publishes only
    one of the two documents is not asked for the other on every refresh; when one location
    fails and the other answers, the failure is logged as a warning once per location, then at
    debug level. Both failing is a warning each time (at most once per ``cooldown``). A refresh
    of stale metadata is made by one thread while the others go on with the document they have.
    """

    def __init__(
        self,
        issuer: str,
        *,
        algorithms: Collection[str],
        cooldown: float = 30.0,
        refetch_interval: float = 5.0,
        max_age: float = 300.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        leeway: float = 30.0,
    ) -> None:
        parts = urlsplit(issuer)
        if parts.query or parts.fragment:  # RFC 8414 §2: no query or fragment components
            raise ValueError(f"issuer {issuer!r} has a query or fragment; it cannot be discovered")
        check_uri(issuer, "issuer (for discovery)")
        self.issuer = issuer
        self._uris = metadata_uris(issuer)
        self._algorithms = frozenset(algorithms)
        self._cooldown, self._default_max_age, self._max_age = cooldown, max_age, max_age
        self._refetch_interval = refetch_interval
        self._leeway = leeway
        self._timeout = timeout
        self._clock = clock
        self._fetcher = JSONFetcher(timeout=timeout)
        self._lock = threading.Lock()
        self._keys: RemoteKeySet | None = None
        self._fetched_at = 0.0
        self._last_attempt: float | None = None
        self._answered: str | None = None  # the location whose document is in use
        self._warned: set[str] = set()  # locations whose failure has been logged as a warning

    def find(
        self, kid: str | None, issued_at: int | None = None, *, wait: bool = True
    ) -> VerificationKey | None:
        """The key for ``kid`` from the set the metadata names (see :meth:`RemoteKeySet.find`)."""
        keys = self._keys
        if not wait:
            if keys is None or not within(self._clock(), self._fetched_at, self._max_age):
                raise WouldWait("the issuer's metadata must be fetched")
            return keys.find(kid, issued_at, wait=False)
        if keys is None:
            self._discover(wait=True)
            keys = self._keys
            if keys is None:
                unavailable = VerificationUnavailable(
                    f"the metadata of {self.issuer} has never been fetched",
                    retry_after=self._retry_after(),
                    cause="discovery",
                )
                unavailable.issuer = self.issuer
                raise unavailable
        elif not within(self._clock(), self._fetched_at, self._max_age):
            self._discover(wait=False)
            keys = self._keys or keys
        return keys.find(kid, issued_at)

    @property
    def jwks_uri(self) -> str | None:
        return self._keys.uri if self._keys is not None else None

    def _retry_after(self) -> int:
        if self._last_attempt is None:
            return 1
        return max(1, math.ceil(self._cooldown - (self._clock() - self._last_attempt)))

    def _discover(self, *, wait: bool) -> None:
        if not self._lock.acquire(blocking=wait):
            return  # another thread is fetching the metadata
        try:
            now = self._clock()
            if self._last_attempt is not None and within(now, self._last_attempt, self._cooldown):
                return
            self._last_attempt = now
            failed: list[tuple[str, Exception]] = []
            rfc8414, oidc = self._uris
            for uri in (oidc, rfc8414) if self._answered == oidc else (rfc8414, oidc):
                attributes = {"url.full": uri, "resource_server.issuer": self.issuer}
                with spans.span(
                    "resource_server.discovery.fetch", client=True, attributes=attributes
                ) as span:
                    try:
                        jwks_uri, max_age = self._jwks_uri_from(uri)
                    except (FetchError, ValueError) as exc:
                        spans.error(span, type(exc).__name__, str(exc))
                        failed.append((uri, exc))
                        continue
                metrics.fetched("discovery", self.issuer, True)
                self._note_fallback(failed, uri)
                self._use(jwks_uri, uri, now, max_age)
                return
            metrics.fetched("discovery", self.issuer, False)
            reasons = "; ".join(str(exc) for _, exc in failed)
            audit.security(
                "discovery_failed",
                {"issuer": self.issuer, "details": {"reason": reasons}},
                "discovery of %s failed: %s",
                self.issuer,
                reasons,
            )
        finally:
            self._lock.release()

    def _note_fallback(self, failed: list[tuple[str, Exception]], answered: str) -> None:
        """Log the locations that failed before ``answered`` did: a warning the first time for
        each (an issuer without an RFC 8414 document is common, and refreshed every minute when
        its answers say ``no-store``), at debug level afterwards."""
        for uri, exc in failed:
            level = logging.DEBUG if uri in self._warned else logging.WARNING
            self._warned.add(uri)
            log.log(level, "discovery of %s: %s; using %s instead", self.issuer, exc, answered)

    def _use(self, jwks_uri: str, answered: str, now: float, max_age: float | None) -> None:
        if self._keys is None or self._keys.uri != jwks_uri:
            self._keys = RemoteKeySet(
                jwks_uri,
                algorithms=self._algorithms,
                cooldown=self._cooldown,
                refetch_interval=self._refetch_interval,
                timeout=self._timeout,
                clock=self._clock,
                leeway=self._leeway,
                fetcher=self._fetcher,
                issuer=self.issuer,
            )
        self._answered = answered
        self._fetched_at = now
        self._max_age = max_age if max_age is not None else self._default_max_age

    def _jwks_uri_from(self, uri: str) -> tuple[str, float | None]:
        fetched = self._fetcher.get(uri)
        document = fetched.document
        named = document.get("issuer")
        if named != self.issuer:  # exact (RFC 8414 §3.3)
            raise ValueError(
                f"{uri} names the issuer {loggable(named)}, not {loggable(self.issuer)}; not used"
            )
        jwks_uri = document.get("jwks_uri")
        return check_uri(jwks_uri, f"the jwks_uri in {uri}"), fetched.max_age
