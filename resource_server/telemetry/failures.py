"""Telemetry never fails a request: an exception from the OpenTelemetry SDK, an exporter or a
view the application configured is caught where the library records, logged, and the request
goes on as if nothing had been recorded (DESIGN.md: never a 500).

The log line is written at ERROR once per place and then at most once a minute, so a broken
meter provider costs a line a minute, not one a request.
"""

from __future__ import annotations

import logging
import threading
import time

__all__ = ["failed"]

log = logging.getLogger("resource_server")

#: Seconds between two log lines about the same failing place.
EVERY = 60.0

_last: dict[str, float] = {}
_lock = threading.Lock()


def failed(where: str) -> None:
    """Called from an ``except Exception`` block: log the exception being handled, paced."""
    now = time.monotonic()
    with _lock:
        last = _last.get(where)
        if last is not None and now - last < EVERY:
            return
        _last[where] = now
    log.error("telemetry failed (%s); the request goes on unrecorded", where, exc_info=True)
