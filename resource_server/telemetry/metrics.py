"""Metrics through the OpenTelemetry API (``pip install 'scoped-resource-server[otel]'``).

The meter is named ``resource_server`` with the package's version. The application owns the
SDK, its readers, exporters and views: this module only asks the API for a meter (the global
provider's, or the one given to :func:`resource_server.telemetry.configure`). Without the API
installed, :func:`current` is None and nothing is recorded.

Counts made on every request are kept in process (:class:`Tally`: one ``itertools.count`` per
attribute set) and reported through observable counters when a reader collects: the SDK's synchronous
``Counter.add`` costs several microseconds a call in CPython, more than the guard's whole warm
path. Histograms are recorded synchronously, and only for the requests that did work (a token
new to the cache, a DPoP proof, a failure) or waited on the network (introspection), where a
few microseconds are lost in the work they measure. While the instruments are the API's proxies
for a global meter provider nobody has set (the API installed, no SDK), the guard records
nothing at all (:meth:`Metrics.live`): no reader could ever see it.

Cardinality is bounded by construction: every attribute takes its values from a fixed set, from
the application's configuration (route templates, configured issuers), or is left out; no
subject, organization, client, token or ``jti`` is ever an attribute. Each tally keeps at most
:data:`MAX_SERIES` attribute sets; past that, counts go to one set marked
``otel.metric.overflow=true``, as the SDK's own cardinality limit does. docs/observability.md
lists every metric, attribute and value.
"""

from __future__ import annotations

import itertools
import sys
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .failures import failed

if TYPE_CHECKING:
    from ..expiring import ExpiringCache
    from ..tokens.keys import RemoteKeySet

__all__ = [
    "DURATION_BUCKETS",
    "MAX_SERIES",
    "METER_NAME",
    "Metrics",
    "Tally",
    "current",
    "method_attribute",
]

METER_NAME = "resource_server"

# Attribute names: OpenTelemetry's where one has the meaning (http.*, error.type), ours otherwise.
SCHEME = "resource_server.authentication.scheme"
AUTHENTICATION_RESULT = "resource_server.authentication.result"
AUTHORIZATION_RESULT = "resource_server.authorization.result"
ERROR_TYPE = "error.type"
ISSUER = "resource_server.issuer"
CAUSE = "resource_server.unavailable.cause"
ROUTE = "http.route"
METHOD = "http.request.method"
STATUS = "http.response.status_code"
FETCH_RESULT = "resource_server.fetch.result"
INTROSPECTION_RESULT = "resource_server.introspection.result"
REPLAY_KIND = "resource_server.replay.kind"
REPLAY_RESULT = "resource_server.replay.result"
OVERFLOW = "otel.metric.overflow"

#: The attribute sets one tally keeps before folding the rest into the overflow set.
MAX_SERIES = 2000
#: Seconds. ASP.NET Core's authentication histogram starts at 5 ms, where a new token's whole
#: verification (about 0.1 ms for ES256) would land in the first bucket with a cached one's;
#: these start at 0.1 ms and reach the 10 s of a hung authorization server.
DURATION_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
#: OpenTelemetry's semantic conventions: a method outside the registered ones is ``_OTHER``
#: (a request may send any token as its method).
_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)
_OVERFLOW_KEY: tuple[Any, ...] = (object(),)


def method_attribute(method: str | None) -> str | None:
    """``http.request.method``: a registered method as it is, any other ``_OTHER``."""
    if method is None:
        return None
    return method if method in _METHODS else "_OTHER"


class Tally:
    """Counts per attribute set, kept in this process and reported (cumulative) through an
    observable counter when a reader collects. Thread-safe.

    :meth:`add` takes no lock and makes no SDK call: each attribute set has an
    ``itertools.count``, whose ``next`` is one C call that no other thread can interleave (about
    50 ns against 450 for a lock and a dict update, on the warm path twice a request). Only a new
    attribute set takes the lock; reading a count (:meth:`snapshot`, on collection) reads the
    counter's state without advancing it."""

    __slots__ = ("_attributes", "_counters", "_lock", "names")

    def __init__(self, *names: str) -> None:
        self.names = names
        self._counters: dict[tuple[Any, ...], itertools.count[int]] = {}
        self._attributes: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._lock = threading.Lock()

    def add(self, key: tuple[Any, ...]) -> None:
        """Count one for the attribute values ``key`` (in the order of ``names``; None leaves an
        attribute out)."""
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counter(key)
        next(counter)

    def _counter(self, key: tuple[Any, ...]) -> itertools.count[int]:
        with self._lock:
            counters = self._counters
            found = counters.get(key)
            if found is None:
                if len(counters) >= MAX_SERIES:
                    key = _OVERFLOW_KEY
                    found = counters.get(key)
                if found is None:
                    found = counters[key] = itertools.count()
            return found

    def snapshot(self) -> list[tuple[int, Mapping[str, Any]]]:
        """Every count so far with its attributes."""
        with self._lock:
            items = list(self._counters.items())
        return [(_value(counter), self._attributes_of(key)) for key, counter in items]

    def total(self, **attributes: Any) -> int:
        """The sum of the counts whose attributes include ``attributes`` (for tools and tests)."""
        return sum(
            count
            for count, found in self.snapshot()
            if all(found.get(name) == value for name, value in attributes.items())
        )

    def _attributes_of(self, key: tuple[Any, ...]) -> Mapping[str, Any]:
        found = self._attributes.get(key)
        if found is None:
            if key is _OVERFLOW_KEY:
                found = {OVERFLOW: True}
            else:
                found = {
                    name: value for name, value in zip(self.names, key, strict=True) if value is not None
                }
            self._attributes[key] = found
        return found


def _value(counter: itertools.count[int]) -> int:
    """How many times ``counter`` was advanced: its next value, read from its ``repr``
    (``count(7)``) without advancing it (``itertools.count`` has no attribute for it)."""
    return int(repr(counter)[6:-1])


# Objects whose state some instruments report when a reader collects; weak, so a guard or a
# key set that is gone stops being reported.
_CACHES: weakref.WeakSet[ExpiringCache[Any, Any]] = weakref.WeakSet()
_KEY_SETS: weakref.WeakSet[RemoteKeySet] = weakref.WeakSet()


def track_cache(cache: ExpiringCache[Any, Any]) -> None:
    """Report ``cache``'s entries in ``resource_server.token_cache.size`` while it lives."""
    _CACHES.add(cache)


def track_key_set(key_set: RemoteKeySet) -> None:
    """Report the age of ``key_set``'s keys in ``resource_server.jwks.age`` while it lives."""
    _KEY_SETS.add(key_set)


class Metrics:
    """The instruments, made once per meter. Per-request counts are :class:`Tally` objects
    (reported by observable counters); the rest are the API's instruments."""

    def __init__(self, meter: Any, observation: Callable[..., Any]) -> None:
        self._observation = observation
        self.duration = meter.create_histogram(
            "resource_server.authentication.duration",
            unit="s",
            description="Time to authenticate a request that did verification work, or failed",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.attempts = Tally(ROUTE, METHOD, AUTHORIZATION_RESULT)
        self.refusals = Tally(STATUS, ERROR_TYPE, CAUSE, ISSUER, ROUTE)
        self.cache_hits = Tally()
        self.cache_misses = Tally()
        self.replay_checks = Tally(REPLAY_KIND, REPLAY_RESULT)
        self.audit_dropped = Tally()
        self.hook_errors = Tally()
        self._observed(
            meter,
            "resource_server.authorization.attempts",
            self.attempts,
            "{attempt}",
            "Scope decisions made, by result, route template and method",
        )
        self._observed(
            meter,
            "resource_server.refusals",
            self.refusals,
            "{refusal}",
            "Requests refused, by status and error code (503s by cause)",
        )
        self._observed(
            meter,
            "resource_server.token_cache.hits",
            self.cache_hits,
            "{lookup}",
            "Requests whose token the guard had verified already",
        )
        self._observed(
            meter,
            "resource_server.token_cache.misses",
            self.cache_misses,
            "{lookup}",
            "Requests whose access token the guard had to verify",
        )
        self._observed(
            meter,
            "resource_server.replay.checks",
            self.replay_checks,
            "{check}",
            "One-time credentials checked against a replay cache, by result",
        )
        self._observed(
            meter,
            "resource_server.audit.dropped",
            self.audit_dropped,
            "{event}",
            "Audit events the hook's full queue could not take",
        )
        self._observed(
            meter,
            "resource_server.audit.hook_errors",
            self.hook_errors,
            "{event}",
            "Audit events the hook raised on",
        )
        meter.create_observable_up_down_counter(
            "resource_server.token_cache.size",
            callbacks=[self._cache_size],
            unit="{token}",
            description="Verified tokens held by the guards' caches",
        )
        self.fetches = meter.create_counter(
            "resource_server.jwks.fetches",
            unit="{fetch}",
            description="JWK Set fetches, by result and issuer",
        )
        self.rotations = meter.create_counter(
            "resource_server.jwks.rotations",
            unit="{rotation}",
            description="Fetched JWK Sets whose key ids differ from the set they replace",
        )
        meter.create_observable_gauge(
            "resource_server.jwks.age",
            callbacks=[self._key_set_age],
            unit="s",
            description="Time since the JWK Set in use was fetched, by issuer",
        )
        self.discoveries = meter.create_counter(
            "resource_server.discovery.fetches",
            unit="{fetch}",
            description="Authorization server metadata fetches, by result and issuer",
        )
        self.introspection = meter.create_histogram(
            "resource_server.introspection.duration",
            unit="s",
            description="Introspection calls (RFC 7662), by result",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    def live(self) -> bool:
        """Whether what is recorded now goes anywhere: not while these instruments are the
        API's proxies for a global meter provider nobody has set yet (no reader would ever see
        the counts, and each point would be dropped). From the moment one is set, they are."""
        return getattr(self.duration, "_real_instrument", self) is not None

    def _observed(self, meter: Any, name: str, tally: Tally, unit: str, description: str) -> None:
        observation = self._observation

        def observe(options: Any) -> Iterable[Any]:
            return [observation(count, dict(attributes)) for count, attributes in tally.snapshot()]

        meter.create_observable_counter(name, callbacks=[observe], unit=unit, description=description)

    def _cache_size(self, options: Any) -> Sequence[Any]:
        return [self._observation(sum(len(cache) for cache in list(_CACHES)))]

    def _key_set_age(self, options: Any) -> Sequence[Any]:
        oldest: dict[str, float] = {}
        for key_set in list(_KEY_SETS):
            age = key_set.age()
            if age is not None and key_set.issuer is not None:
                oldest[key_set.issuer] = max(age, oldest.get(key_set.issuer, 0.0))
        return [self._observation(age, {ISSUER: issuer}) for issuer, age in oldest.items()]


#: The instruments in use once :func:`current` has loaded them (the guard's per-request code
#: reads this directly: a module attribute, no call).
active: Metrics | None = None
_loaded = False
_lock = threading.Lock()


def current() -> Metrics | None:
    """The instruments, made on first use from the global meter provider; None without the
    OpenTelemetry API (nothing is recorded)."""
    if not _loaded:
        use(None)
    return active


def use(meter_provider: Any) -> None:
    """Make the instruments from ``meter_provider`` (None: the API's global provider), with
    counts starting at zero; without the API, record nothing."""
    global active, _loaded
    with _lock:
        try:
            from opentelemetry.metrics import Observation, get_meter_provider
        except ImportError:  # the otel extra is not installed: nothing is recorded, nothing spent
            active, _loaded = None, True
            return
        provider = meter_provider if meter_provider is not None else get_meter_provider()
        active = Metrics(provider.get_meter(METER_NAME, _version()), Observation)
        _loaded = True


def _version() -> str | None:
    """The package's version (None in a source tree never installed). Read from the package
    already imported (a submodule's parent always is) rather than by importing it: the package
    imports the token side, which imports this module."""
    package = sys.modules.get(__name__.partition(".")[0])
    return getattr(package, "__version__", None)


# -- what the token side records -----------------------------------------------------------------


def fetched(kind: str, issuer: str | None, ok: bool) -> None:
    """A JWK Set (``kind="jwks"``) or metadata (``"discovery"``) fetch, by result."""
    metrics = current()
    if metrics is None:
        return
    counter = metrics.fetches if kind == "jwks" else metrics.discoveries
    attributes: dict[str, Any] = {FETCH_RESULT: "success" if ok else "failure"}
    if issuer is not None:
        attributes[ISSUER] = issuer
    try:
        counter.add(1, attributes)
    except Exception:  # the SDK's failure is not the fetch's (telemetry.failures)
        failed("metrics.fetched")


def rotated(issuer: str | None) -> None:
    metrics = current()
    if metrics is not None:
        try:
            metrics.rotations.add(1, {ISSUER: issuer} if issuer is not None else {})
        except Exception:  # the SDK's failure is not the rotation's (telemetry.failures)
            failed("metrics.rotated")


def introspected(seconds: float, result: str, issuer: str | None) -> None:
    """One introspection call: ``result`` is ``active``, ``inactive`` or ``error``."""
    metrics = current()
    if metrics is None:
        return
    attributes: dict[str, Any] = {INTROSPECTION_RESULT: result}
    if issuer is not None:
        attributes[ISSUER] = issuer
    try:
        metrics.introspection.record(seconds, attributes)
    except Exception:  # the SDK's failure is not the call's (telemetry.failures)
        failed("metrics.introspected")


def replay_checked(kind: str, result: str) -> None:
    """A replay-cache check: ``kind`` ``dpop`` or ``viewer_context``; ``result`` ``fresh``,
    ``replay``, ``unavailable`` or ``full``."""
    metrics = active if _loaded else current()
    if metrics is not None:
        metrics.replay_checks.add((kind, result))  # our own counter: it cannot fail
