"""What the telemetry tests read back: the OpenTelemetry SDK's in-memory metric reader and span
exporter, and the audit events of the loggers (each validated against the shipped JSON Schema
as it is captured)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonschema
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import resource_server
from resource_server import telemetry
from tests.support import serving

VERSION = getattr(resource_server, "__version__", None)
SCHEMA = json.loads(telemetry.SCHEMA.read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())

Attributes = frozenset[tuple[str, Any]]


def key(values: dict[str, Any]) -> Attributes:
    """A point's attributes as :meth:`Recorded.metrics` keys them."""
    return frozenset(values.items())


class AuditCapture(logging.Handler):
    """Every audit record's event, checked against the schema (a failure is kept, and raised by
    :meth:`Recorded.events`, so a bad event fails the test that made it)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.events: list[dict[str, Any]] = []
        self.records: list[logging.LogRecord] = []
        self.invalid: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "audit", None)
        if not isinstance(event, dict):
            self.invalid.append(f"a record of {record.name} without an audit dict: {record.getMessage()}")
            return
        errors = [error.message for error in VALIDATOR.iter_errors(json.loads(json.dumps(event)))]
        if errors:
            self.invalid.append(f"{event}: {errors}")
        self.events.append(event)
        self.records.append(record)


@dataclass
class Recorded:
    """What one test recorded."""

    reader: InMemoryMetricReader
    exporter: InMemorySpanExporter
    tracer_provider: TracerProvider
    capture: AuditCapture
    hooked: list[dict[str, Any]] = field(default_factory=list)

    def metrics(self) -> dict[str, dict[Attributes, Any]]:
        """Each metric's points: attributes → value (a histogram's count; a gauge's value)."""
        found: dict[str, dict[Attributes, Any]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                assert (scope.scope.name, scope.scope.version) == ("resource_server", VERSION)
                for metric in scope.metrics:
                    points = found.setdefault(metric.name, {})
                    for point in metric.data.data_points:
                        value = point.count if isinstance(point, HistogramDataPoint) else point.value
                        points[frozenset((point.attributes or {}).items())] = value
        return found

    def points(self, name: str) -> dict[Attributes, Any]:
        """The non-zero points of one metric."""
        return {key: value for key, value in self.metrics().get(name, {}).items() if value}

    def spans(self) -> list[ReadableSpan]:
        self.tracer_provider.force_flush()
        return list(self.exporter.get_finished_spans())

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """The audit events so far (of one ``event`` kind), each valid against the schema."""
        assert not self.capture.invalid, self.capture.invalid
        return [event for event in self.capture.events if kind is None or event["event"] == kind]


@contextmanager
def recording(level: int = logging.INFO, **settings: Any) -> Iterator[Recorded]:
    """Telemetry into in-memory readers for the block (``settings`` go to ``configure``, with
    ``hook=True`` for a hook that keeps the events in ``Recorded.hooked``); the defaults after."""
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    capture = AuditCapture()
    recorded = Recorded(reader, exporter, tracer_provider, capture)
    if settings.pop("hook", False):
        settings["audit_hook"] = recorded.hooked.append
    logger = logging.getLogger(telemetry.AUDIT_LOGGER)
    previous = logger.level
    logger.addHandler(capture)
    logger.setLevel(level)
    telemetry.configure(
        meter_provider=MeterProvider(metric_readers=[reader]), tracer_provider=tracer_provider, **settings
    )
    try:
        yield recorded
    finally:
        telemetry.configure()
        logger.removeHandler(capture)
        logger.setLevel(previous)


class HeaderServer:
    """A loopback HTTP server answering every GET and POST with ``document`` (JSON) at
    ``status``, or with ``routes[path]`` for a path it names, keeping the headers of each
    request (to see the trace context the library sends)."""

    def __init__(
        self,
        document: dict[str, Any],
        status: int = 200,
        routes: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.document = document
        self.status = status
        self.routes = routes if routes is not None else {}
        self.headers: list[dict[str, str]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.headers.append({name.lower(): value for name, value in self.headers.items()})
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                found = owner.routes.get(self.path)
                body = json.dumps(found if found is not None else owner.document).encode()
                self.send_response(owner.status if found is None else 200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        self.url = f"{self.base}/jwks"

    @contextmanager
    def running(self) -> Iterator[HeaderServer]:
        with serving(self._server):
            yield self
