"""State that every worker must see: the replay caches of one-time credentials (viewer-context
``jti`` values, DPoP proof ``jti`` values, RFC 9449 §11.1).

A replay cache held in one process protects one process: a context or a proof replayed to
another gunicorn worker, or another host, is accepted there. :class:`MemoryReplayCache` is right
for a single worker; :class:`RedisReplayCache` for several, one atomic ``SET NX`` per check.
A store that cannot be reached fails closed: :class:`~resource_server.VerificationUnavailable`
(503), never "not seen".
"""

from __future__ import annotations

import heapq
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from .checks import missing_extra
from .tokens.errors import VerificationUnavailable

__all__ = ["MemoryReplayCache", "RedisReplayCache", "ReplayCache"]

log = logging.getLogger(__name__)


@runtime_checkable
class ReplayCache(Protocol):
    def seen(self, jti: str, exp: float) -> bool:
        """True if ``jti`` was already recorded; otherwise record it until ``exp`` (Unix time).
        Raises :class:`VerificationUnavailable` when the store cannot answer."""
        ...


class MemoryReplayCache:
    """Seen ``jti`` values in process memory, each kept until its ``exp``, at most ``max_entries``
    (RFC 7519 §4.1.7: a ``jti`` is used once; RFC 9449 §11.1 keeps DPoP proof ``jti`` values the
    same way). When full of unexpired entries it cannot record a new one without forgetting an
    old one, which would reopen its replay: it raises :class:`VerificationUnavailable` (503 with
    ``Retry-After``, the seconds until the oldest entry expires) rather than call the new
    credential "seen". Memory stays bounded (about 250 bytes an entry) and replay impossible;
    size it above credentials-per-second x lifetime. Thread-safe. Several worker processes each
    hold their own: use :class:`RedisReplayCache` to close that gap.

    Entries leave by expiry, earliest first, from a heap ordered on ``exp``, whatever order they
    came in: one long-lived entry cannot keep the expired ones behind it in memory and fill the
    cache with the dead. Each call costs O(log n) amortised, plus O(log n) per entry it expires.
    """

    def __init__(self, max_entries: int = 10_000, clock: Callable[[], float] | None = None) -> None:
        self.max_entries = max_entries
        self._clock = clock or time.time
        self._expiry: dict[str, float] = {}  # jti -> exp, the entries alive
        self._by_expiry: list[tuple[float, str]] = []  # a heap of (exp, jti), one per entry alive
        self._lock = threading.Lock()

    def seen(self, jti: str, exp: float) -> bool:
        now = self._clock()
        with self._lock:
            while self._by_expiry and self._by_expiry[0][0] <= now:
                _, expired = heapq.heappop(self._by_expiry)
                del self._expiry[expired]
            if jti in self._expiry:  # alive: every expired entry was swept just above
                return True
            if len(self._expiry) >= self.max_entries:
                # Full of unexpired entries: evicting one would let its credential be replayed.
                # Fail closed, and say so: this credential is not a replay, it cannot be checked.
                wait = math.ceil(self._by_expiry[0][0] - now) if self._by_expiry else 1
                log.error("the replay cache is full (%d live entries); size it larger", self.max_entries)
                raise VerificationUnavailable("the replay cache is full", retry_after=max(1, wait))
            self._expiry[jti] = exp
            heapq.heappush(self._by_expiry, (exp, jti))
            return False


class RedisReplayCache:
    """Seen ``jti`` values in Redis, shared by every worker and host using the same server.

    Each check is one atomic ``SET <prefix><jti> 1 NX PXAT <exp in ms>``: exactly one of any
    number of concurrent requests carrying the same ``jti`` sets the key, the others see it, and
    the key expires by itself when the credential could no longer be accepted anyway. ``exp``
    comes from the verifier's clock and Redis expires keys on its own: keep the hosts' clocks in
    step (NTP), as token expiry already requires.

    ``client_or_url`` is a ``redis.Redis`` client or a URL (``redis://host:6379/0``,
    ``rediss://...``, ``unix:///run/redis.sock``); a URL gets short socket timeouts, so an
    unreachable server costs a request a second, not a hang. Any error from Redis is
    :class:`VerificationUnavailable`: a replay cache that cannot answer must not say "not seen".
    """

    def __init__(
        self, client_or_url: Any, *, prefix: str = "resource_server:replay:", timeout: float = 1.0
    ) -> None:
        try:
            import redis  # an extra: only deployments with several workers need it
        except ModuleNotFoundError as exc:
            raise missing_extra("redis", "RedisReplayCache", exc) from exc

        if isinstance(client_or_url, str):
            client_or_url = redis.Redis.from_url(
                client_or_url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        if not isinstance(client_or_url, redis.Redis):
            raise TypeError("give a redis.Redis client or a redis:// URL")
        if not isinstance(prefix, str) or not prefix:
            raise ValueError("prefix must be a non-empty string")
        self._redis = client_or_url
        self._errors = (redis.RedisError, OSError)
        self.prefix = prefix

    def seen(self, jti: str, exp: float) -> bool:
        try:
            created = self._redis.set(f"{self.prefix}{jti}", b"1", nx=True, pxat=math.ceil(exp * 1000))
        except self._errors as exc:
            log.error("the replay cache in Redis cannot be reached: %s", type(exc).__name__)
            raise VerificationUnavailable("the replay cache cannot be reached") from None
        return not created
