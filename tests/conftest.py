"""Suite-wide set-up that keeps the tests independent of the machine's environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Hypothesis keeps its example database (failures it found, replayed on the next run) under the
# working directory by default: run from elsewhere, the suite would leave a .hypothesis/ there and
# forget what it had found. Keep it at the repository's root, whatever the working directory.
os.environ.setdefault(
    "HYPOTHESIS_STORAGE_DIRECTORY", str(Path(__file__).resolve().parent.parent / ".hypothesis")
)


@pytest.fixture(scope="session", autouse=True)
def _loopback_never_through_a_proxy() -> Iterator[None]:
    """Every server the tests talk to is on 127.0.0.1. A proxy named in the environment
    (``HTTP_PROXY``, ``ALL_PROXY``, ...) must not catch those requests, or each one fails on a
    machine behind a proxy: httpx, requests and urllib (PyJWKClient) all honour ``NO_PROXY``,
    and the subprocesses the tests start inherit it."""
    existing = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    value = ",".join(part for part in (existing, "127.0.0.1", "localhost") if part)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("no_proxy", value)
        patch.setenv("NO_PROXY", value)
        yield
