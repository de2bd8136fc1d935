"""A bounded cache whose entries leave at their expiry: for verified credentials, which must never
be answered for after their ``exp`` and should not sit in memory after it either."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["ExpiringCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    """At most ``size`` entries, each with an expiry on ``clock``'s scale.

    :meth:`get` answers only while ``clock() < expires_at``, and costs a dict lookup and one
    comparison: it takes no lock. Expired entries are removed, oldest expiry first, whenever a
    call finds one due (so no entry outlives its expiry by more than the time to the next call),
    and when the cache is full the entry that expires soonest makes room: being a cache, it may
    forget a live entry, which is then verified again. Thread-safe.
    """

    __slots__ = ("_clock", "_entries", "_expiries", "_lock", "_order", "size")

    def __init__(self, size: int, clock: Callable[[], float]) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError("the cache size must be a positive integer")
        self.size = size
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        # (expires_at, insertion number, key); the number keeps keys from ever being compared.
        self._expiries: list[tuple[float, int, K]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The live value for ``key``, or None."""
        now = self._clock()
        expiries = self._expiries
        if expiries and expiries[0][0] <= now:
            self._sweep(now)
        found = self._entries.get(key)
        if found is None or now >= found[0]:
            return None
        return found[1]

    def put(self, key: K, value: V, expires_at: float) -> None:
        """Remember ``value`` for ``key`` until ``expires_at`` (nothing already expired is kept)."""
        now = self._clock()
        if expires_at <= now:
            return
        with self._lock:
            self._sweep_locked(now)
            entries, expiries = self._entries, self._expiries
            while len(entries) >= self.size and key not in entries:
                _, _, soonest = heapq.heappop(expiries)
                entries.pop(soonest, None)
            entries[key] = (expires_at, value)
            heapq.heappush(expiries, (expires_at, next(self._order), key))
            if len(expiries) > 2 * self.size:  # entries replaced in place leave stale heap items
                self._expiries = [(exp, next(self._order), k) for k, (exp, _) in entries.items()]
                heapq.heapify(self._expiries)

    def __len__(self) -> int:
        return len(self._entries)

    def _sweep(self, now: float) -> None:
        with self._lock:
            self._sweep_locked(now)

    def _sweep_locked(self, now: float) -> None:
        entries, expiries = self._entries, self._expiries
        while expiries and expiries[0][0] <= now:
            _, _, key = heapq.heappop(expiries)
            found = entries.get(key)
            if found is not None and found[0] <= now:  # not a newer entry under the same key
                del entries[key]
