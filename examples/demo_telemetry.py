"""What the demo's operators see: the library's metrics in Prometheus format and its audit trail
as JSON lines, set up by the demo (the application), never by the library.

:func:`observing` gives the library an OpenTelemetry SDK meter provider whose reader is the
OpenTelemetry Prometheus exporter's, on a registry of the demo's own (the API serves it at
``GET /metrics``), asks for an audit event per allowed request as well as per refusal
(``configure(audit_allowed=1)``: a demo's traffic is small; a busy API would sample), and writes
every event of the loggers ``resource_server.audit`` and ``resource_server.audit.security`` as
one JSON line to a file, and only there. The API and the MCP server run in one process, so the one registry
holds both; a multi-process server (gunicorn) would need Prometheus's multi-process mode.

:func:`read_summary` reads both back, as an operator would: the refusals by reason and the 503s
by cause from the scraped ``/metrics`` text, the key rotations too; the org-binding violations
and what each agent did for whom from the audit trail.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from resource_server.telemetry import AUDIT_LOGGER, configure

#: The Prometheus names the exporter gives the library's counters (dots become underscores,
#: counters gain ``_total``).
REFUSALS = "resource_server_refusals_total"
ROTATIONS = "resource_server_jwks_rotations_total"


class JSONLines(logging.Formatter):
    """An audit record as its event (the record attribute ``audit``), one JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(getattr(record, "audit", {"message": record.getMessage()}), sort_keys=True)


@contextmanager
def observing(audit_log: Path) -> Iterator[CollectorRegistry]:
    """Record the library's metrics into the registry this yields, and its audit events, every
    decision and security event, into ``audit_log``; undone when the block ends."""
    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    handler = logging.FileHandler(audit_log, encoding="utf-8")
    handler.setFormatter(JSONLines())
    logger = logging.getLogger(AUDIT_LOGGER)  # its child, the security logger, propagates to it
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # decisions are INFO
    # The trail goes to its file only: one INFO line per request would bury the story on the
    # console (the MCP SDK puts a handler on the root logger).
    logger.propagate = False
    configure(meter_provider=provider, audit_allowed=1)
    try:
        yield registry
    finally:
        configure()  # the library back to its defaults: the global providers, no sampling
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
        handler.close()
        provider.shutdown()


@dataclass(frozen=True)
class Summary:
    """What an operator reads back. ``refusals``: (status, error code) → count, from the
    metrics; ``unavailable``: a 503's cause → count; ``rotations``: key-set rotations;
    ``org_bindings``: (the token's org, the URL's org) of each org-binding violation;
    ``agents``: (actor, subject, outcome) → count, from the decisions of delegated requests;
    ``refused_decisions``: the audit trail's refusals (the metrics count the same ones)."""

    refusals: dict[tuple[int, str], int]
    unavailable: dict[str, int]
    rotations: int
    org_bindings: list[tuple[str | None, str | None]]
    agents: dict[tuple[str, str | None, str], int]
    refused_decisions: int
    events: list[dict[str, Any]] = field(repr=False)


def scrape(metrics_url: str, http: httpx.Client) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The samples of a Prometheus text page, by sample name: their labels and values."""
    response = http.get(metrics_url)
    response.raise_for_status()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def read_audit(audit_log: Path) -> list[dict[str, Any]]:
    """The audit events written so far, in order."""
    return [json.loads(line) for line in audit_log.read_text(encoding="utf-8").splitlines()]


def read_summary(metrics_url: str, audit_log: Path, http: httpx.Client) -> Summary:
    """Scrape ``metrics_url`` and read ``audit_log``."""
    samples = scrape(metrics_url, http)
    refusals: Counter[tuple[int, str]] = Counter()
    unavailable: Counter[str] = Counter()
    for labels, value in samples.get(REFUSALS, []):
        status = int(labels["http_response_status_code"])
        refusals[status, labels["error_type"]] += int(value)
        if status == 503:
            unavailable[labels.get("resource_server_unavailable_cause", "other")] += int(value)
    events = read_audit(audit_log)
    agents: Counter[tuple[str, str | None, str]] = Counter()
    for event in events:
        if event["event"] == "decision" and event["actors"]:
            agents[event["actors"][0]["sub"], event["subject"], event["outcome"]] += 1
    return Summary(
        refusals=dict(refusals),
        unavailable=dict(unavailable),
        rotations=int(sum(value for _, value in samples.get(ROTATIONS, []))),
        org_bindings=[
            (event["token_org"], event["org"])
            for event in events
            if event["event"] == "org_binding_violation"
        ],
        agents=dict(agents),
        refused_decisions=sum(
            1 for event in events if event["event"] == "decision" and event["outcome"] == "refused"
        ),
        events=events,
    )


def format_summary(summary: Summary, metrics_url: str) -> str:
    """The operator's summary, as the demo prints it."""
    reasons = ", ".join(
        f"{status} {error} x{count}" for (status, error), count in sorted(summary.refusals.items())
    )
    causes = ", ".join(f"{cause} x{count}" for cause, count in sorted(summary.unavailable.items()))
    bindings = Counter(summary.org_bindings)
    agents: dict[tuple[str, str | None], Counter[str]] = {}
    for (actor, subject, outcome), count in summary.agents.items():
        agents.setdefault((actor, subject), Counter())[outcome] += count
    lines = [
        f"\n== the operator's summary, read back from {metrics_url} and the audit log",
        f"   refusals by status and error (metrics): {reasons or 'none'};"
        f" {sum(summary.refusals.values())} in all, {summary.refused_decisions} refusal events in the audit log",
        f"   503s by cause (metrics): {causes or 'none'}",
        f"   key rotations (metrics): {summary.rotations}",
        "   org-binding violations (audit): "
        + (
            ", ".join(
                f"{count} with a token of {token_org} on {org}'s URL"
                for (token_org, org), count in sorted(bindings.items(), key=str)
            )
            or "none"
        ),
        "   agents acting for people (audit, by actor):",
    ]
    for (actor, subject), outcomes in sorted(agents.items(), key=str):
        lines.append(
            f"     {actor} for {subject}: {outcomes['allowed']} allowed, {outcomes['refused']} refused"
        )
    if not agents:
        lines[-1] += " none"
    return "\n".join(lines)
