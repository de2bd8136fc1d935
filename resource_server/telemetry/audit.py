"""The audit trail: one structured event per refusal (and, when asked, per allowed request), and
the security events beside the decisions. Standard library only: events are written whether or
not OpenTelemetry is installed.

Each event is a dict with the same keys (``None`` where a value does not apply), validated in the
tests against ``audit_event.schema.json`` (shipped beside this module). It is delivered:

- through :mod:`logging`: a decision on the logger ``resource_server.audit``, a security event on
  ``resource_server.audit.security`` (a child: a handler on ``resource_server.audit`` gets both),
  with the dict in the record attribute ``audit`` (``extra={"audit": event}``, so a JSON
  formatter writes it as an object) and a one-line message for plain-text handlers;
- to the hook given to :func:`resource_server.telemetry.configure`, if any, from a worker thread
  (:class:`HookQueue`): a request only appends the event to a bounded queue, so a slow or failing
  hook can neither fail a request nor slow it by more than that append.

An event never holds a token, a proof, a secret or a request body: a token is named by
``token_id``, a truncated SHA-256 of its ``jti`` (or of the token, when it has none); every
value taken from a token was verified, bounded to 200 characters, or is left out.
"""

from __future__ import annotations

import atexit
import hashlib
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import metrics, spans

if TYPE_CHECKING:
    from ..tokens.verified import VerifiedToken

__all__ = [
    "AUDIT_LOGGER",
    "KEYS",
    "SECURITY_LOGGER",
    "HookQueue",
    "decision",
    "misconfigured",
    "security",
    "token_id",
]

AUDIT_LOGGER = "resource_server.audit"
SECURITY_LOGGER = "resource_server.audit.security"
#: Every event has these keys, and no other.
KEYS = (
    "event",
    "time",
    "outcome",
    "status",
    "error",
    "reason",
    "subject",
    "org",
    "token_org",
    "client_id",
    "issuer",
    "actors",
    "route",
    "method",
    "required",
    "scopes",
    "source",
    "token_id",
    "cause",
    "trace_id",
    "details",
)
#: The most characters of a value from a token or a request an event carries.
MAX_TEXT = 200
#: The most events waiting for the hook; more are dropped, and counted.
QUEUE_SIZE = 10_000

_decisions = logging.getLogger(AUDIT_LOGGER)
_security = logging.getLogger(SECURITY_LOGGER)
_operations = logging.getLogger("resource_server")
_TEMPLATE: dict[str, Any] = dict.fromkeys(KEYS)


def token_id(value: str) -> str:
    """16 hex digits of SHA-256: names a token (or its ``jti``) without holding it."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def text(value: object) -> str | None:
    """``value`` if it is a string, cut to :data:`MAX_TEXT` characters; None otherwise."""
    return value[:MAX_TEXT] if isinstance(value, str) else None


def request_text(value: object, limit: int = MAX_TEXT) -> str | None:
    """A value from the request (the URL's org, the method) as an event carries it: a string of
    printable characters up to ``limit``, else its ASCII escape (:func:`ascii`), cut as well."""
    if not isinstance(value, str):
        return None
    shown = value[:limit]
    return shown if shown.isprintable() else ascii(shown)[1:-1][:limit]


def actors_of(token: VerifiedToken) -> list[dict[str, str | None]] | None:
    """The delegation chain of a verified token (its ``act`` claim, RFC 8693 §4.1, read strictly
    by the verifier), the current actor first: each step's ``sub``, ``client_id`` and ``iss``;
    None without delegation."""
    chain = [
        {"sub": text(actor.sub), "client_id": text(actor.client_id), "iss": text(actor.iss)}
        for actor in token.actors
    ]
    return chain or None


def _now() -> str:
    return datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _event(kind: str, facts: Mapping[str, Any]) -> dict[str, Any]:
    event = dict(_TEMPLATE)
    event.update(facts)
    event["event"] = kind
    event["time"] = _now()
    event["trace_id"] = spans.trace_id()
    return event


def wanted(security_event: bool = False, level: int = logging.INFO) -> bool:
    """Whether an event would go anywhere: its logger is enabled for ``level``, or a hook is set
    (checked before an event is built, so a disabled trail costs nothing more)."""
    logger = _security if security_event else _decisions
    return _hook is not None or logger.isEnabledFor(level)


def decision(facts: Mapping[str, Any], message: str, *args: object) -> None:
    """A decision event (``event: "decision"``) at INFO, with ``facts`` for its keys."""
    _deliver(_decisions, logging.INFO, _event("decision", facts), message, args)


def security(
    kind: str, facts: Mapping[str, Any], message: str, *args: object, level: int = logging.WARNING
) -> None:
    """A security event ``kind`` (``org_binding_violation``, ``jwks_fetch_failed``, ...)."""
    if wanted(True, level):
        _deliver(_security, level, _event(kind, facts), message, args)


def misconfigured(component: str, reason: str) -> str:
    """The security event of a configuration refused at start-up (``misconfiguration_refused``,
    at ERROR); returns ``reason``, the message of the error the caller raises."""
    security(
        "misconfiguration_refused",
        {"details": {"component": component, "reason": reason}},
        "%s refused its configuration: %s",
        component,
        reason,
        level=logging.ERROR,
    )
    return reason


def _deliver(
    logger: logging.Logger, level: int, event: dict[str, Any], message: str, args: tuple[object, ...]
) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, message, *args, extra={"audit": event})
    hook = _hook
    if hook is not None:
        hook.submit(event)


class HookQueue:
    """Hands events to ``hook`` from a worker thread of its own.

    A request's part is :meth:`submit`: a length check and a ``deque`` append, never a wait.
    When ``size`` events are waiting (the hook is slower than the events come), a new one is
    dropped and counted (``resource_server.audit.dropped``); an exception from the hook is
    counted (``resource_server.audit.hook_errors``) and logged once a minute at most. The worker
    starts with the first event, again in a forked child, and at exit gets one second to finish
    what is queued.
    """

    def __init__(self, hook: Callable[[Mapping[str, Any]], object], size: int = QUEUE_SIZE) -> None:
        if not callable(hook):
            raise TypeError("audit_hook must be a callable taking one event (a mapping)")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError("audit_queue must be a positive integer")
        self.hook = hook
        self.size = size
        self._events: deque[Mapping[str, Any]] = deque()
        self._wake = threading.Event()
        self._idle = threading.Condition()
        self._busy = False
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False
        self._logged_at: float | None = None

    def submit(self, event: Mapping[str, Any]) -> None:
        if len(self._events) >= self.size or self._closed:
            _count(lambda m: m.audit_dropped)
            return
        self._events.append(event)
        if self._worker is None:
            self._start()
        if not self._wake.is_set():  # a set event costs nothing more; setting it takes a lock
            self._wake.set()

    def flush(self, timeout: float = 1.0) -> bool:
        """Wait up to ``timeout`` seconds for the queue to empty: whether it did."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._events or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or self._worker is None:
                    return not self._events and not self._busy
                self._wake.set()
                self._idle.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 1.0) -> None:
        """Deliver what is queued (for up to ``timeout`` seconds), then take no more."""
        self.flush(timeout)
        self._closed = True

    def _start(self) -> None:
        with self._start_lock:
            if self._worker is None:
                worker = threading.Thread(target=self._run, name="resource_server audit hook", daemon=True)
                worker.start()
                self._worker = worker

    def forget_worker(self) -> None:
        """In a forked child, where the worker thread does not exist: the next event starts one."""
        self._worker = None
        self._start_lock = threading.Lock()
        self._idle = threading.Condition()
        self._busy = False

    def _run(self) -> None:
        events = self._events
        while True:
            self._wake.wait()
            self._wake.clear()  # before draining: an event appended meanwhile sets it again
            while events:
                with self._idle:
                    self._busy = True
                event = events.popleft()
                try:
                    self.hook(event)
                # BaseException too: a hook raising SystemExit or KeyboardInterrupt would end
                # this thread, and every later event would wait in the queue for nobody.
                except BaseException as exc:  # the hook's failure is counted, never the request's
                    _count(lambda m: m.hook_errors)
                    self._log_failure(exc)
                finally:
                    with self._idle:
                        self._busy = False
                        self._idle.notify_all()
            with self._idle:
                self._idle.notify_all()

    def _log_failure(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._logged_at is None or now - self._logged_at >= 60:
            self._logged_at = now
            # Only the class: the hook's message is the application's.
            _operations.error(
                "the audit hook raised %s; events it fails on are counted, not retried", type(exc).__name__
            )


def _count(which: Callable[[metrics.Metrics], metrics.Tally]) -> None:
    found = metrics.current()
    if found is not None:
        which(found).add(())


_hook: HookQueue | None = None


def use_queue(queue: HookQueue | None) -> None:
    """Send every event to ``queue``'s hook too (None: to the loggers only); the previous queue
    delivers what it holds (for up to a second) and takes no more."""
    global _hook
    previous, _hook = _hook, queue
    if previous is not None:
        previous.close()


def flush(timeout: float = 1.0) -> bool:
    """Wait up to ``timeout`` seconds for the hook to have every event: whether it has."""
    hook = _hook
    return hook.flush(timeout) if hook is not None else True


@atexit.register
def _at_exit() -> None:
    hook = _hook
    if hook is not None:
        hook.close(1.0)


def _after_fork() -> None:
    hook = _hook
    if hook is not None:
        hook.forget_worker()


os.register_at_fork(after_in_child=_after_fork)


class Sampler:
    """Which allowed requests get a decision event: none (``rate`` 0), all (1), or one in
    ``round(1 / rate)``, counted (every n-th, not at random: the same traffic gives the same
    events, and no random number is drawn per request)."""

    __slots__ = ("_counter", "every", "rate")

    def __init__(self, rate: float) -> None:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            raise ValueError("audit_allowed must be a number from 0 (no allowed request) to 1 (every one)")
        self.rate = float(rate)
        self.every = round(1 / rate) if rate > 0 else 0
        self._counter = itertools.count()

    def take(self) -> bool:
        every = self.every
        return every == 1 or (every > 1 and next(self._counter) % every == 0)


#: Which allowed requests get an event (:func:`resource_server.telemetry.configure` sets it).
sampler = Sampler(0)
