"""Spans through the OpenTelemetry API, around the work that can wait: verifying a token new to the
guard, fetching a JWK Set, discovering an issuer's metadata, an introspection call, a round
trip to a shared replay store. Each is a child of whatever span is current, which is the web
framework's request span when its instrumentation runs (the async adapters verify new tokens in
a worker thread, which the ``contextvars`` copy follows). Nothing is traced on the warm path.

Calls to the authorization server carry the current trace context (W3C ``traceparent``, through
the API's global propagator: :func:`inject`), so the authorization server's traces join.

Without the API installed, :func:`span` yields None and costs a context manager.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from .failures import failed

__all__ = ["NO_SPAN", "TRACER_NAME", "error", "inject", "span", "trace_id", "use"]

TRACER_NAME = "resource_server"

_tracer: Any = None
_api: Any = None  # the opentelemetry.trace module, once loaded
_loaded = False
_lock = threading.Lock()


def use(tracer_provider: Any) -> None:
    """Trace with ``tracer_provider`` (None: the API's global provider); without the API, not."""
    global _tracer, _api, _loaded
    with _lock:
        try:
            from opentelemetry import trace
        except ImportError:  # the otel extra is not installed
            _tracer, _api, _loaded = None, None, True
            return
        from .metrics import _version

        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        _tracer, _api, _loaded = provider.get_tracer(TRACER_NAME, _version()), trace, True


def _current_tracer() -> Any:
    if not _loaded:
        use(None)
    return _tracer


def span(
    name: str, *, client: bool = False, attributes: Mapping[str, Any] | None = None
) -> AbstractContextManager[Any]:
    """A span named ``name`` (``client``: an outgoing call) around the block; None without the
    API, or while no SDK is set (the API's own no-op spans cost some 7 µs, a tenth of an ECDSA
    check, for nothing). Errors are the caller's to mark (:func:`error`): an exception escaping
    the block is recorded as one too."""
    if not _loaded:
        use(None)
    tracer = _tracer
    # The API's proxy while no provider is set (the common case, read inline: a new token asks).
    if tracer is None or (
        type(tracer) is _api.ProxyTracer and getattr(_api, "_TRACER_PROVIDER", _ASK) is None
    ):
        return NO_SPAN
    if _idle(tracer):
        return NO_SPAN
    kind = _api.SpanKind.CLIENT if client else _api.SpanKind.INTERNAL
    try:
        current: AbstractContextManager[Any] = tracer.start_as_current_span(
            name, kind=kind, attributes=dict(attributes or {}), record_exception=False
        )
    except Exception:  # never a request's failure (telemetry.failures)
        failed("spans.span")
        return NO_SPAN
    return _Contained(current)


class _Contained(AbstractContextManager[Any]):
    """A span's context manager whose own failures (the SDK's, an exporter's) are logged, never
    raised; an exception of the block itself passes through unchanged."""

    __slots__ = ("_inner",)

    def __init__(self, inner: AbstractContextManager[Any]) -> None:
        self._inner: AbstractContextManager[Any] | None = inner

    def __enter__(self) -> Any:
        inner = self._inner
        try:
            return inner.__enter__() if inner is not None else None
        except Exception:
            failed("spans.span")
            self._inner = None
            return None

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> bool:
        inner = self._inner
        if inner is None:
            return False
        try:
            return bool(inner.__exit__(kind, value, traceback))
        except Exception as error:
            if error is value:  # the block's own exception, passed back through the span
                raise
            failed("spans.span")
            return False


#: What :func:`span` gives when nothing would record: a context manager that does nothing.
NO_SPAN: AbstractContextManager[None] = nullcontext()


def _idle(tracer: Any) -> bool:
    """Whether ``tracer`` records nothing: the API's no-op tracer, or its proxy while no tracer
    provider is set (it delegates from the moment one is, so this is asked each time)."""
    # Exact types: the API's classes are ABCs, whose isinstance costs about 1 µs a call.
    if type(tracer) is _api.ProxyTracer:
        # The API's global provider, read where it keeps it: get_tracer_provider() looks in
        # os.environ on every call while none is set (2 µs a new token). use() asked it once,
        # which loads a provider named by OTEL_PYTHON_TRACER_PROVIDER.
        provider = getattr(_api, "_TRACER_PROVIDER", _ASK)
        if provider is _ASK:  # an API that keeps it elsewhere
            return type(_api.get_tracer_provider()) is _api.ProxyTracerProvider
        return provider is None
    return type(tracer) is _api.NoOpTracer


_ASK = object()


def error(current: Any, error_type: str, description: str | None = None) -> None:
    """Mark ``current`` (a span from :func:`span`, or None) as failed with ``error.type``."""
    if current is None:
        return
    try:
        current.set_attribute("error.type", error_type)
        current.set_status(_api.Status(_api.StatusCode.ERROR, description))
    except Exception:  # never a request's failure (telemetry.failures)
        failed("spans.error")


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current trace context to ``headers`` (``traceparent``, ``tracestate`` by the
    global propagator, W3C Trace Context by default); nothing without the API or a span."""
    if _current_tracer() is None:
        return
    from opentelemetry.propagate import inject as propagate

    try:
        propagate(headers)
    except Exception:  # a propagator's failure is not the call's (telemetry.failures)
        failed("spans.inject")


def trace_id() -> str | None:
    """The current trace's id (32 hex digits), for audit events; None outside a trace."""
    if _current_tracer() is None:
        return None
    context = _api.get_current_span().get_span_context()
    return f"{context.trace_id:032x}" if context.is_valid else None
