"""Identifiers a DPoP request carries (a proof's ``ath``, ``nonce``, ``jti``, ``htm``, ``htu``,
a token's ``cnf.jkt``), hostile in type or characters, over real servers (uvicorn, and gunicorn
with a sync worker) with the replay cache in a real Redis: each is refused with a 401 before it
is compared or stored, never a 500 (``hmac.compare_digest`` raises ``TypeError`` on a non-ASCII
``str``; redis-py raises ``UnicodeEncodeError`` on a lone surrogate).

The servers live at ``NOW`` on a clock that does not move (``dpop_apps``), so the tokens,
proofs and nonces minted here hold for as long as the tests run, whatever the date."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from resource_server.dpop import DPoPNonces
from tests.adversarial.dpop_apps import NONCE_SECRET, PATH, RESOURCE, asgi
from tests.support import NOW, ProofSigner, Signer, dpop_key, es256, jwks

ROOT = Path(__file__).resolve().parents[2]
URL = RESOURCE + PATH
NONCE = DPoPNonces(NONCE_SECRET, ttl=60).current(NOW)
TIMEOUT = 20.0


@pytest.fixture(scope="module")
def issuer() -> Signer:
    return es256()


@pytest.fixture(scope="module")
def key() -> ProofSigner:
    return dpop_key("ES256")


@contextmanager
def under_uvicorn(issuer: Signer, redis_url: str) -> Iterator[str]:
    config = uvicorn.Config(
        asgi(jwks(issuer), redis_url), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT
    while not server.started:  # start-up, not expiry: polled until it listens, bounded
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(TIMEOUT)


@contextmanager
def under_gunicorn(issuer: Signer, redis_url: str) -> Iterator[str]:
    """``gunicorn -w 1`` on a port the kernel picks; yields its base URL once it listens."""
    env = {**os.environ, "DPOP_APPS_JWKS": json.dumps(jwks(issuer)), "DPOP_APPS_REDIS": redis_url}
    command = [sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0", "--workers", "1"]
    command += ["--no-control-socket", "--chdir", str(ROOT), "tests.adversarial.dpop_apps:wsgi()"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        port = None
        assert process.stderr is not None
        for line in process.stderr:
            if found := re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line):
                port = int(found.group(1))
            if "Booting worker" in line:
                break
        assert port is not None, "gunicorn did not start"
        # The rest of its log is read, so that a full pipe never blocks the worker.
        threading.Thread(target=process.stderr.read, daemon=True).start()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=TIMEOUT)


SERVERS: dict[str, Callable[[Signer, str], Any]] = {"uvicorn": under_uvicorn, "gunicorn": under_gunicorn}


@pytest.fixture(scope="module", params=list(SERVERS))
def server(request: pytest.FixtureRequest, issuer: Signer, redis_url: str) -> Iterator[str]:
    with SERVERS[request.param](issuer, redis_url) as base:
        yield base


def bound(issuer: Signer, jkt: str) -> str:
    return issuer.token(cnf={"jkt": jkt}, scope="project:read")


def send(base: str, token: str, proof: str) -> httpx.Response:
    return httpx.get(base + PATH, headers={"Authorization": f"DPoP {token}", "DPoP": proof}, timeout=TIMEOUT)


#: case → (the token's cnf.jkt, or None for the key's own; the proof's claims; the error expected)
HOSTILE: dict[str, tuple[str | None, dict[str, Any], str]] = {
    "ath not ASCII": (None, {"ath": "é" * 43}, "invalid_dpop_proof"),
    "ath a lone surrogate": (None, {"ath": "\ud800" * 43}, "invalid_dpop_proof"),
    "nonce not ASCII": (None, {"nonce": "é" * 32}, "invalid_dpop_proof"),
    "nonce a lone surrogate": (None, {"nonce": "\udfff" * 32}, "invalid_dpop_proof"),
    "jti a lone surrogate": (None, {"jti": "\ud800x"}, "invalid_dpop_proof"),
    "jti with a control character": (None, {"jti": "a\nb"}, "invalid_dpop_proof"),
    "htm not ASCII": (None, {"htm": "GÉT"}, "invalid_dpop_proof"),
    "htu not ASCII": (None, {"htu": "https://api.tést/orgs/acme/projects"}, "invalid_dpop_proof"),
    "cnf.jkt not ASCII": ("é" * 43, {}, "invalid_token"),
    "cnf.jkt a lone surrogate": ("\ud800" * 43, {}, "invalid_token"),
}


def test_a_good_proof_is_accepted(server: str, issuer: Signer, key: ProofSigner) -> None:
    """The control: the same server accepts a sound request, so each refusal below is the
    hostile value's, not the set-up's."""
    token = bound(issuer, key.jkt)
    response = send(server, token, key.proof("GET", URL, access_token=token, nonce=NONCE))
    assert response.status_code == 200, response.text
    # Another script in a jti is a string RFC 7519 §4.1.7 allows: accepted.
    other = key.proof("GET", URL, access_token=token, nonce=NONCE, jti="jti-ünïcödé-" + "x" * 20)
    assert send(server, token, other).status_code == 200


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_identifiers_are_refused_with_401(
    case: str, server: str, issuer: Signer, key: ProofSigner
) -> None:
    jkt, claims, error = HOSTILE[case]
    token = bound(issuer, jkt or key.jkt)
    proof = key.proof("GET", URL, access_token=token, **{"nonce": NONCE, **claims})
    response = send(server, token, proof)
    assert response.status_code == 401, response.text
    assert response.json()["error"] == error
    assert token not in response.text and "Traceback" not in response.text
