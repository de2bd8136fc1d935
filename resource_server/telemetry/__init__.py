"""Seeing the policy at work: metrics and traces through the OpenTelemetry API, and an audit trail.

Every adapter records what it decides through the shared guard (:mod:`.observer`), the token
side records its fetches, introspection calls and replay checks where they happen:

- metrics (:mod:`.metrics`) and spans (:mod:`.spans`) through ``opentelemetry-api``, the ``otel``
  extra, with a meter and a tracer named ``resource_server``. The application owns the SDK, its
  readers, exporters and views; without the API installed nothing is recorded or spent;
- audit events (:mod:`.audit`) through :mod:`logging` (loggers ``resource_server.audit`` and
  ``resource_server.audit.security``) and, optionally, a hook.

Nothing needs configuring: the global meter and tracer providers are used as the application
sets them, refusals are written to the audit logger, allowed requests are not. :func:`configure`
changes that. docs/observability.md names every metric, attribute, span and event key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import audit, metrics, spans

__all__ = ["AUDIT_LOGGER", "SCHEMA", "SECURITY_LOGGER", "configure", "flush"]

AUDIT_LOGGER = audit.AUDIT_LOGGER
SECURITY_LOGGER = audit.SECURITY_LOGGER
#: The JSON Schema (2020-12) every audit event follows.
SCHEMA = Path(__file__).with_name("audit_event.schema.json")


def configure(
    *,
    meter_provider: Any = None,
    tracer_provider: Any = None,
    audit_hook: Callable[[Mapping[str, Any]], object] | None = None,
    audit_allowed: float = 0.0,
    audit_queue: int = audit.QUEUE_SIZE,
) -> None:
    """Set how this process records; each call replaces the whole previous configuration.

    ``meter_provider`` and ``tracer_provider`` (OpenTelemetry SDK objects) replace the API's
    global providers for this library, as an instrumentation's ``instrument(meter_provider=...)``
    does; the instruments are made anew, with counts from zero. ``audit_hook`` is called with
    every audit event (a mapping, not to be changed), from a worker thread: a request only queues
    the event (at most ``audit_queue`` wait; more are dropped and counted), so the hook can
    neither fail a request nor slow it. ``audit_allowed`` is the share of allowed requests that
    get a decision event: 0 (none, the default), 1 (every one), or between, one request in
    ``round(1 / audit_allowed)``. Refusals always get one.
    """
    sampler = audit.Sampler(audit_allowed)  # checked before anything changes
    hook = audit.HookQueue(audit_hook, audit_queue) if audit_hook is not None else None
    metrics.use(meter_provider)
    spans.use(tracer_provider)
    audit.use_queue(hook)
    audit.sampler = sampler


def flush(timeout: float = 1.0) -> bool:
    """Wait up to ``timeout`` seconds until the audit hook has been given every queued event;
    whether it has (for tests, and for a graceful shutdown)."""
    return audit.flush(timeout)
