"""The step-up clients never answer ``use_dpop_nonce`` with the nonce the server has just refused
(RFC 9449 §9), even on a later request whose retry budget is untouched: the nonce learnt on the
first request is sent on the second; refused again with that same nonce (or with none), the
second request's ``401`` goes back to the caller, for every adapter (httpx and httpx2, sync and
async; requests), over real HTTP to a loopback server."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import httpx
import httpx2
import jwt
import pytest
import requests

from policy import Challenge, format_challenge
from resource_server.client import DPoPKey, RequestsStepUpAuth, StepUpAuth
from tests.support import serve_wsgi

CLIENTS = ["httpx", "httpx-async", "httpx2", "httpx2-async", "requests"]
HTTPX = {"httpx": httpx, "httpx2": httpx2}
NEEDS_NONCE = format_challenge(Challenge("DPoP", {"algs": "ES256", "error": "use_dpop_nonce"}))


class ScriptedAPI:
    """Answers the n-th request with ``script[n]``: ``(200, nonce)`` or ``(401, nonce)``, the
    401 a ``use_dpop_nonce`` challenge, ``nonce`` the ``DPoP-Nonce`` header (None: none).
    Records the nonce each request's proof carried."""

    def __init__(self, script: list[tuple[int, str | None]]) -> None:
        self.script = script
        self.sent: list[str | None] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        claims = jwt.decode(environ["HTTP_DPOP"], options={"verify_signature": False})
        with self._lock:
            self.sent.append(claims.get("nonce"))
            status, nonce = self.script[len(self.sent) - 1]
        headers = [("Content-Type", "application/json"), ("Content-Length", "2")]
        if status == 401:
            headers.append(("WWW-Authenticate", NEEDS_NONCE))
        if nonce is not None:
            headers.append(("DPoP-Nonce", nonce))
        start_response("200 OK" if status == 200 else "401 Unauthorized", headers)
        return [b"{}"]


def get_twice(client: str, url: str) -> list[int]:
    """Two GETs of ``url`` through one client whose auth holds one DPoP key; the final statuses."""
    auth: Any
    if client == "requests":
        auth = RequestsStepUpAuth(lambda scopes: "tok", dpop_key=DPoPKey.generate(), max_retries=3)
        with requests.Session() as session:
            session.auth = auth
            return [session.get(url, timeout=10).status_code for _ in range(2)]
    auth = StepUpAuth(lambda scopes: "tok", dpop_key=DPoPKey.generate(), max_retries=3)
    library, _, mode = client.partition("-")
    if not mode:
        with HTTPX[library].Client(auth=auth, timeout=10) as http:
            return [http.get(url).status_code for _ in range(2)]

    async def run() -> list[int]:
        async with HTTPX[library].AsyncClient(auth=auth, timeout=10) as http:
            return [(await http.get(url)).status_code for _ in range(2)]

    return asyncio.run(run())


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(
    ("then", "sent", "statuses"),
    [
        ((401, "nonce-1"), [None, "nonce-1", "nonce-1"], [200, 401]),  # the nonce it just refused
        ((401, None), [None, "nonce-1", "nonce-1"], [200, 401]),  # no new nonce to try
        ((401, "nonce-2"), [None, "nonce-1", "nonce-1", "nonce-2"], [200, 200]),  # a new one: retried
    ],
    ids=["same nonce", "no nonce", "new nonce"],
)
def test_a_later_request_refused_with_its_own_nonce_is_not_retried(
    client: str, then: tuple[int, str | None], sent: list[str | None], statuses: list[int]
) -> None:
    api = ScriptedAPI([(401, "nonce-1"), (200, None), then, (200, None)])
    with serve_wsgi(api) as base:
        assert get_twice(client, f"{base}/p") == statuses
    assert api.sent == sent


HOSTILE_NONCES = {
    "a space": "nonce 1",
    "a quote": 'nonce"1',
    "a backslash": "nonce\\1",
    "a tab": "nonce\t1",
    "DEL": "nonce\x7f",
    "non-ASCII": "nonc\u00e9",
    "1025 characters": "n" * 1025,
}


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("name", HOSTILE_NONCES)
def test_a_nonce_outside_rfc_9449_is_ignored(client: str, name: str) -> None:
    """RFC 9449 §8.1: ``nonce = 1*NQCHAR``. A ``DPoP-Nonce`` of anything else (or longer than
    1024 characters) is not kept: no retry with it, no later proof carrying it."""
    api = ScriptedAPI([(401, HOSTILE_NONCES[name]), (200, None)])
    with serve_wsgi(api) as base:
        assert get_twice(client, f"{base}/p") == [401, 200]
    assert api.sent == [None, None]


@pytest.mark.parametrize("client", CLIENTS)
def test_a_nonce_of_1024_characters_is_kept(client: str) -> None:
    nonce = "!#[]~" + "n" * 1019
    api = ScriptedAPI([(401, nonce), (200, None), (200, None)])
    with serve_wsgi(api) as base:
        assert get_twice(client, f"{base}/p") == [200, 200]
    assert api.sent == [None, nonce, nonce]
