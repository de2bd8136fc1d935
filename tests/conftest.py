"""Suite-wide set-up that keeps the tests independent of the machine's environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
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
    machine behind a proxy: httpx and requests honour ``NO_PROXY`` (urllib3 reads no proxy settings),
    and the subprocesses the tests start inherit it."""
    existing = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    value = ",".join(part for part in (existing, "127.0.0.1", "localhost") if part)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("no_proxy", value)
        patch.setenv("NO_PROXY", value)
        yield


REDIS_MISSING = "redis-server not found; install it with: apt-get install redis-server"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A throwaway Redis server for the session, listening on a Unix socket in its own fresh
    directory and on no TCP port (``--port 0``): no port can be taken by anything else. Yields
    its ``unix://`` URL. Skipped with an install hint when ``redis-server`` is absent; a failure
    under ``CI`` (CI must exercise Redis, never skip it silently)."""
    server = shutil.which("redis-server")
    if server is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {REDIS_MISSING}")
        pytest.skip(REDIS_MISSING)
    import redis

    base = Path(tempfile.mkdtemp(prefix="redis-"))  # short: a socket path has ~100 bytes at most
    socket = base / "redis.sock"
    command = [server, "--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700"]
    command += ["--save", "", "--appendonly", "no", "--dir", str(base)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"unix://{socket}"
    try:
        client = redis.Redis.from_url(url, socket_timeout=1)
        deadline = time.monotonic() + 15
        while True:  # start-up, not expiry: polled until the server answers, bounded
            try:
                client.ping()
                break
            except (redis.RedisError, OSError):
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("redis-server did not start")
                time.sleep(0.02)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(base, ignore_errors=True)
