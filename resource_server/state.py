"""State that every worker must see: the replay caches of one-time credentials (viewer-context
``jti`` values, DPoP proof ``jti`` values, RFC 9449 §11.1).

A replay cache held in one process protects one process: a context or a proof replayed to
another gunicorn worker, or another host, is accepted there. :class:`MemoryReplayCache` is right
for a single worker; :class:`RedisReplayCache` for several, one atomic ``SET NX`` per check.
A store that cannot be reached fails closed: :class:`~resource_server.VerificationUnavailable`
(503), never "not seen". Its description says why; the refusal's log line carries it (at ERROR
once a minute, :class:`~resource_server.denials.Refusals`), so a flood writes no line per request.

A replay cache is shared by every client, so :class:`PerKeyLimit` bounds what one client can
hold in it: without that bound, one client with one valid token could fill a memory cache with
fresh proofs, and a full cache refuses everyone (503) rather than forget a live entry.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .checks import missing_extra
from .telemetry import audit, spans
from .tokens.errors import VerificationUnavailable

__all__ = ["MemoryReplayCache", "PerKeyLimit", "RedisReplayCache", "ReplayCache", "replayed"]


@runtime_checkable
class ReplayCache(Protocol):
    def seen(self, jti: str, exp: float) -> bool:
        """True if ``jti`` was already recorded; otherwise record it until ``exp`` (Unix time).
        Raises :class:`VerificationUnavailable` when the store cannot answer.

        The verifiers pass only values they have checked: at most 300 characters (a DPoP key is
        ``<43-character thumbprint>:<jti>``), without controls, invisible characters or lone
        surrogates, so any store can encode them as UTF-8."""
        ...


def replayed(cache: ReplayCache, jti: str, exp: float) -> bool:
    """``cache.seen(jti, exp)``, any other exception from the cache (one the application wrote,
    say) as :class:`VerificationUnavailable`: a cache that raised has not answered, so the
    credential is neither "seen" nor "not seen" but unchecked (503), never a 500."""
    try:
        return cache.seen(jti, exp)
    except VerificationUnavailable:
        raise
    except Exception as exc:
        # Only the class: its message is the application's. The refusal's log line carries it.
        raise VerificationUnavailable(
            f"the replay cache failed ({type(exc).__name__})", cause="replay_store"
        ) from None


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
                raise VerificationUnavailable(
                    f"the replay cache is full: {self.max_entries} entries, all live; size it larger",
                    retry_after=max(1, wait),
                    cause="replay_full",
                )
            self._expiry[jti] = exp
            heapq.heappush(self._by_expiry, (exp, jti))
            return False


class RedisReplayCache:
    """Seen ``jti`` values in Redis, shared by every worker and host using the same server.

    Each check is one atomic ``SET <prefix><jti> 1 NX PX <ms until exp>``: exactly one of any
    number of concurrent requests carrying the same ``jti`` sets the key, the others see it, and
    the key expires by itself when the credential could no longer be accepted anyway. The time
    to live is ``exp`` minus ``clock()`` (give the verifier's clock; ``time.time`` by default),
    measured on this host: Redis's own clock plays no part, so a Redis host whose clock runs
    ahead of the application's cannot make an entry expire early and reopen a replay.

    ``client_or_url`` is a ``redis.Redis`` client or a URL (``redis://host:6379/0``,
    ``rediss://...``, ``unix:///run/redis.sock``); a URL gets short socket timeouts, so an
    unreachable server costs a request a second, not a hang. Any error from Redis is
    :class:`VerificationUnavailable`: a replay cache that cannot answer must not say "not seen".
    """

    def __init__(
        self,
        client_or_url: Any,
        *,
        prefix: str = "resource_server:replay:",
        timeout: float = 1.0,
        clock: Callable[[], float] | None = None,
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
        self._clock = clock or time.time
        self.prefix = prefix
        self._prefix = prefix.encode("utf-8", "surrogatepass")

    def seen(self, jti: str, exp: float) -> bool:
        # The key is built as bytes here: given a str, redis-py encodes it as strict UTF-8 and
        # raises UnicodeEncodeError for a lone surrogate. "surrogatepass" encodes every str, and
        # distinct strings stay distinct keys. The verifiers refuse such a jti before this; an
        # application's own caller must not turn it into a 500 either.
        key = self._prefix + jti.encode("utf-8", "surrogatepass")
        # A round trip to a shared store: one of the waits a trace shows.
        with spans.span("resource_server.replay_store.check", client=True, attributes=_REDIS) as span:
            try:
                # Relative, never PXAT: an absolute expiry would be read against Redis's clock.
                ttl = math.ceil((exp - self._clock()) * 1000)
                if ttl <= 0:  # past its expiry already: nothing could be replayed, nothing to keep
                    return False
                created = self._redis.set(key, b"1", nx=True, px=ttl)
            except Exception as exc:  # RedisError, OSError, or any other: Redis has not answered
                spans.error(span, type(exc).__name__)
                raise VerificationUnavailable(
                    f"the replay cache in Redis cannot be reached ({type(exc).__name__})",
                    cause="replay_store",
                ) from None
        return not created


_REDIS = {"db.system.name": "redis", "db.operation.name": "SET"}


@dataclass(slots=True)
class _Places:
    """One key's places: how many, and how many free up at each whole second."""

    live: int = 0
    by_second: dict[int, int] = field(default_factory=dict)
    warned: bool = False  # one warning per stretch at the limit, not one per refused request


class PerKeyLimit:
    """At most ``limit`` live replay entries per key (a DPoP key's thumbprint) at once.

    RFC 9449 §11.1 has the server remember each proof's ``jti`` while the proof could still be
    accepted; a client signs a fresh proof for every request, so it alone decides how many
    entries it holds. This bound keeps one client (one key; a token is bound to one key) from
    taking more than ``limit`` of them, so it cannot fill a shared cache and lock every other
    client out. The verifier takes a place (:meth:`take`) before it records a proof and gives it
    back (:meth:`give_back`) when the proof is not recorded (a replay, a failing store). A place
    is held until the entry's expiry rounded up to the second, never less than the cache holds
    the entry: the count can only overstate what a key holds, so a key can never go past its
    limit, and a live entry is never forgotten to make room (the fail-closed rule of
    :class:`MemoryReplayCache`).

    A key at its limit gets :class:`VerificationUnavailable` (503 with ``Retry-After``, the
    seconds until its oldest place frees) and every other key is untouched. Memory: one counter
    per key and second of expiry with a live place (with ``max_age=60`` and ``leeway=5``, about
    66 per key), and one heap entry per counter. Thread-safe; per process (with several workers,
    a key holds at most ``limit`` entries per worker).
    """

    def __init__(self, limit: int, clock: Callable[[], float] | None = None) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError("the per-key limit must be a positive integer")
        self.limit = limit
        self._clock = clock or time.time
        self._keys: dict[str, _Places] = {}
        self._expiring: list[tuple[int, str]] = []  # a heap of (second, key), one per counter
        self._lock = threading.Lock()

    def take(self, key: str, exp: float) -> None:
        """Hold a place for ``key`` until ``exp``; :class:`VerificationUnavailable` when it has
        ``limit`` already."""
        now = self._clock()
        second = math.ceil(exp)
        with self._lock:
            expiring = self._expiring
            if expiring and expiring[0][0] <= now:  # a place's second has come
                self._free(now)
            places = self._keys.get(key)
            if places is None:
                places = self._keys[key] = _Places()
            if places.live >= self.limit:
                if not places.warned:
                    places.warned = True
                    # The key is a thumbprint this process computed (base64url): safe to log.
                    audit.security(
                        "replay_limit_reached",
                        {"details": {"jkt": key, "limit": self.limit}},
                        "key %s has %d proofs in flight, its limit: refusing more",
                        key,
                        self.limit,
                    )
                wait = math.ceil(min(places.by_second) - now)
                raise VerificationUnavailable(
                    "too many proofs in flight for this key", retry_after=max(1, wait), cause="replay_full"
                )
            if second not in places.by_second:
                places.by_second[second] = 0
                heapq.heappush(self._expiring, (second, key))
            places.by_second[second] += 1
            places.live += 1

    def give_back(self, key: str, exp: float) -> None:
        """Free the place :meth:`take` held for ``key`` until ``exp``: nothing was recorded."""
        second = math.ceil(exp)
        with self._lock:
            places = self._keys.get(key)
            if places is not None and places.by_second.get(second, 0) > 0:
                places.by_second[second] -= 1  # the counter itself leaves at its second
                places.live -= 1

    def _free(self, now: float) -> None:
        """Free every place whose second has come, and forget keys left with none."""
        while self._expiring and self._expiring[0][0] <= now:
            second, key = heapq.heappop(self._expiring)
            places = self._keys[key]
            places.live -= places.by_second.pop(second)
            if not places.by_second:
                del self._keys[key]
