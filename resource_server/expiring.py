"""A bounded cache whose entries leave at their expiry: for verified credentials, which must never
be answered for after their ``exp`` and should not sit in memory after it either."""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["ExpiringCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class ExpiringCache(Generic[K, V]):
    """At most ``size`` entries, each with an expiry on ``clock``'s scale.

    :meth:`get` answers only while ``clock() < expires_at``, and costs a dict lookup and one
    comparison: it takes no lock. Expired entries are removed, oldest expiry first, whenever a
    call finds one due (so no entry outlives its expiry by more than the time to the next call).
    When the cache is full the oldest entry makes room (first in, first out), so no caller can
    hold the cache with long-lived entries: being a cache, it may forget a live entry, which is
    then verified again. ``size=0`` keeps nothing. Thread-safe.
    """

    # __weakref__: telemetry reports the size of the caches that are alive (a weak set).
    __slots__ = ("__weakref__", "_clock", "_entries", "_expiries", "_lock", "_order", "size")

    def __init__(self, size: int, clock: Callable[[], float]) -> None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ValueError("the cache size must be an integer, 0 or more")
        self.size = size
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()  # oldest first, O(1) to drop
        # (expires_at, insertion number, key); the number keeps keys from ever being compared.
        self._expiries: list[tuple[float, int, K]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The live value for ``key``, or None."""
        now = self._clock()
        try:
            due = self._expiries[0][0] <= now
        except IndexError:  # empty (or emptied by another thread just now)
            due = False
        if due:
            self._sweep(now)
        found = self._entries.get(key)
        if found is None or now >= found[0]:
            return None
        return found[1]

    def peek(self, key: K) -> V | None:
        """The value for ``key``, expired or not, without reading the clock or sweeping: for
        statistics (whether a request's credential was cached), never for an answer."""
        found = self._entries.get(key)
        return found[1] if found is not None else None

    def put(self, key: K, value: V, expires_at: float) -> None:
        """Remember ``value`` for ``key`` until ``expires_at`` (nothing already expired is kept)."""
        now = self._clock()
        if expires_at <= now or self.size == 0:
            if key in self._entries:  # the newest word on this key is that it is over
                with self._lock:
                    self._entries.pop(key, None)
            return
        with self._lock:
            entries, expiries = self._entries, self._expiries
            if expiries and expiries[0][0] <= now:
                self._sweep_locked(now)
            entries.pop(key, None)  # a replaced entry moves to the back of the line
            while len(entries) >= self.size:
                entries.popitem(last=False)  # the oldest
            entries[key] = (expires_at, value)
            heapq.heappush(expiries, (expires_at, next(self._order), key))
            if len(expiries) > 2 * self.size:  # evicted and replaced entries leave stale items
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
