"""The demo API under gunicorn with four worker processes: a DPoP proof, or a viewer context,
sent 100 times at once is accepted exactly once when the replay cache is in Redis. With each
worker's own memory cache it is accepted once per worker that received it: the figure
docs/deployment.md quotes, recorded here, never asserted as a race.

gunicorn listens on a Unix socket in a fresh directory (no port to find free); the demo
authorization server, in this process, mints the DPoP-bound tokens the workers verify. Workers
are separate processes, so both sides use the real clock; nothing here asserts on time.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

from demo_auth_server import (
    SERVICE_CLIENT,
    SERVICE_SECRET,
    create_auth_server,
    fetch_token_client_credentials,
)
from demo_gateway import GATEWAY_ISSUER

from resource_server.client import DPoPKey
from resource_server.viewer_context import ViewerContextSigner

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
#: The API's identifier: the tokens' audience and the base of the proofs' URL. Never resolved:
#: requests reach gunicorn through its Unix socket whatever the URL's host says.
RESOURCE = "http://api.demo.test"
PATH = "/orgs/acme/projects"
WORKERS = 4
COPIES = 100
START_TIMEOUT = 20.0
GUNICORN_MISSING = "gunicorn is not installed: pip install -e '.[test]'"


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo authorization server on a loopback port the OS picks; yields its issuer URL."""
    server = make_server("127.0.0.1", 0, None, threaded=True)
    base = f"http://127.0.0.1:{server.server_port}"
    db_path = str(tmp_path_factory.mktemp("auth") / "auth.sqlite3")
    server.app = create_auth_server(issuer=base, db_path=db_path, resource=RESOURCE)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Workers:
    """A running gunicorn: its socket, and a client that talks to it through the socket."""

    client: httpx.Client
    log: Path

    def booted(self) -> int:
        return self.log.read_text(errors="replace").count("Booting worker with pid")


@contextmanager
def gunicorn_api(env: Mapping[str, str]) -> Iterator[Workers]:
    """``gunicorn -w 4 'demo_api:from_environment()'`` on a Unix socket, configured by ``env``."""
    if importlib.util.find_spec("gunicorn") is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {GUNICORN_MISSING}")
        pytest.skip(GUNICORN_MISSING)
    base = Path(tempfile.mkdtemp(prefix="gunicorn-"))  # short: a socket path has ~100 bytes at most
    socket, log = base / "api.sock", base / "gunicorn.log"
    environment = {name: value for name, value in os.environ.items() if not name.startswith("DEMO_")}
    environment.update(env, DEMO_RESOURCE=RESOURCE, DEMO_WORKER_HEADER="1")
    command = [sys.executable, "-m", "gunicorn", "--workers", str(WORKERS), "--bind", f"unix:{socket}"]
    command += ["--no-control-socket", "--graceful-timeout", "2", "--chdir", str(EXAMPLES)]
    command += ["demo_api:from_environment()"]
    with log.open("wb") as output:  # a file, not a pipe: a full pipe would block the workers
        process = subprocess.Popen(command, env=environment, stdout=output, stderr=subprocess.STDOUT)
    client = httpx.Client(
        transport=httpx.HTTPTransport(uds=str(socket)),
        base_url=RESOURCE,
        timeout=20,
        limits=httpx.Limits(max_connections=COPIES, max_keepalive_connections=0),
    )
    workers = Workers(client, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        # Start-up, not expiry: polled until every worker has booted and one answers, bounded.
        while not (workers.booted() >= WORKERS and _answers(client)):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)
        yield workers
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=15)
        shutil.rmtree(base, ignore_errors=True)


def _answers(client: httpx.Client) -> bool:
    try:
        return client.get("/.well-known/oauth-protected-resource").status_code == 200
    except httpx.TransportError:
        return False


def all_at_once(client: httpx.Client, headers: Mapping[str, str]) -> list[httpx.Response]:
    """The same request, ``COPIES`` times, released together from as many threads."""
    barrier = threading.Barrier(COPIES)

    def send(_: int) -> httpx.Response:
        barrier.wait()
        return client.get(PATH, headers=dict(headers))

    with ThreadPoolExecutor(COPIES) as pool:
        return list(pool.map(send, range(COPIES)))


def warm_up(workers: Workers) -> set[str]:
    """Bursts of concurrent requests until every worker has answered one (bounded): each worker
    has then loaded the app, so the replays below meet four ready workers."""
    seen: set[str] = set()
    deadline = time.monotonic() + 10
    while len(seen) < WORKERS and time.monotonic() < deadline:
        with ThreadPoolExecutor(16) as pool:
            answers = list(
                pool.map(lambda _: workers.client.get("/.well-known/oauth-protected-resource"), range(32))
            )
        seen |= {answer.headers["X-Demo-Worker"] for answer in answers}
    return seen


@dataclass(frozen=True)
class Outcome:
    """How ``COPIES`` copies of one credential fared, and which workers answered them."""

    statuses: Counter[int]
    errors: Counter[str]
    workers: frozenset[str]
    accepting: frozenset[str]

    @classmethod
    def of(cls, responses: list[httpx.Response]) -> Outcome:
        return cls(
            statuses=Counter(response.status_code for response in responses),
            errors=Counter(
                response.json().get("error", "") for response in responses if response.status_code != 200
            ),
            workers=frozenset(response.headers["X-Demo-Worker"] for response in responses),
            accepting=frozenset(r.headers["X-Demo-Worker"] for r in responses if r.status_code == 200),
        )


def dpop_replays(issuer: str, workers: Workers) -> Outcome:
    key = DPoPKey.generate("ES256")
    with httpx.Client(timeout=10) as http:
        token = fetch_token_client_credentials(
            issuer,
            client_id=SERVICE_CLIENT,
            client_secret=SERVICE_SECRET,
            scope="project:read",
            client=http,
            dpop_key=key,
        )
    assert token["token_type"] == "DPoP"
    access = token["access_token"]
    proof = key.proof("GET", RESOURCE + PATH, access_token=access)
    return Outcome.of(all_at_once(workers.client, {"Authorization": f"DPoP {access}", "DPoP": proof}))


def context_replays(gateway_key: bytes, workers: Workers) -> Outcome:
    signer = ViewerContextSigner(
        keys={"gw-1": gateway_key}, signing_kid="gw-1", issuer=GATEWAY_ISSUER, audience=RESOURCE
    )
    headers = signer.headers(user_id="user-admin", method="GET", path=PATH)  # as the gateway signs one
    return Outcome.of(all_at_once(workers.client, headers))


def report(cache: str, kind: str, outcome: Outcome) -> str:
    line = (
        f"{cache} replay cache, {WORKERS} gunicorn workers: one {kind} sent {COPIES} times at once,"
        f" accepted {outcome.statuses[200]} times, answered by {len(outcome.workers)} workers"
    )
    print(line)
    return line


def test_with_redis_each_credential_is_accepted_exactly_once(
    issuer: str, redis_url: str, record_property: pytest.RecordProperty
) -> None:
    gateway_key = secrets.token_bytes(32)
    env = {
        "DEMO_ISSUER": issuer,
        "DEMO_JWKS_URI": f"{issuer}/.well-known/jwks.json",  # each worker fetches the keys itself
        "DEMO_REDIS_URL": redis_url,
        "DEMO_GATEWAY_KEY": gateway_key.hex(),
    }
    with gunicorn_api(env) as workers:
        assert len(warm_up(workers)) >= 2, "the requests must reach several workers"
        dpop = dpop_replays(issuer, workers)
        context = context_replays(gateway_key, workers)
    for kind, outcome in (("DPoP proof", dpop), ("viewer context", context)):
        record_property(f"redis {kind}", report("Redis", kind, outcome))
        assert len(outcome.workers) >= 2, f"the copies of the {kind} reached one worker only"
    assert dpop.statuses == {200: 1, 401: COPIES - 1}
    assert dpop.errors == {"invalid_dpop_proof": COPIES - 1}
    assert context.statuses == {200: 1, 401: COPIES - 1}  # a context seen before is no credential


def test_with_memory_caches_each_worker_accepts_a_replay_once(
    issuer: str, record_property: pytest.RecordProperty
) -> None:
    """Why several workers need Redis. Which workers receive a copy is up to the kernel, so the
    count is recorded, not asserted; what holds whatever the count: one acceptance per worker
    that answered, the rest refused as replays."""
    gateway_key = secrets.token_bytes(32)
    with httpx.Client(timeout=10) as http:
        jwks = http.get(f"{issuer}/.well-known/jwks.json").json()
    env = {
        "DEMO_ISSUER": issuer,
        "DEMO_JWKS": json.dumps(jwks),  # the key set given, not fetched
        "DEMO_GATEWAY_KEY": gateway_key.hex(),
    }
    with gunicorn_api(env) as workers:
        warm_up(workers)
        dpop = dpop_replays(issuer, workers)
        context = context_replays(gateway_key, workers)
    for kind, outcome in (("DPoP proof", dpop), ("viewer context", context)):
        record_property(f"memory {kind}", report("memory", kind, outcome))
        assert 1 <= outcome.statuses[200] <= WORKERS
        assert outcome.accepting == outcome.workers  # each worker took the first copy it saw
        assert outcome.statuses[200] + outcome.statuses[401] == COPIES
    assert set(dpop.errors) <= {"invalid_dpop_proof"}
