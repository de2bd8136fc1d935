"""Throughput under uvicorn: the ASGI adapters against the bare framework, driven by ``wrk``.

uvicorn (one worker, the default event loop) serves ``asgi_apps:create()`` on loopback: a
trivial Starlette route bare and behind ``resource_server.asgi.BearerMiddleware``, a FastAPI
route bare and with ``Depends(rs.require(...))``, and an MCP ``tools/call`` bare, behind the MCP
SDK's bearer middleware (with ``McpTokenVerifier``) and behind ``protect_mcp``. Each of ours
three ways: a warm token (the same one again), a new ES256 token every request (cold), and a
warm DPoP-bound token with a new proof every request. Rounds are interleaved in an order
shuffled per round, each case's requests/second is divided by its bare reference's in the same
round, and the min/median/max of those ratios are printed. Target: protected warm at most 1.10x
the bare cost (a throughput ratio of at least 0.91). Cold tokens and DPoP proofs are minted
before each run, 6,000 per second of it; the benchmark prints how many requests repeated one.

Needs ``wrk`` (Debian/Ubuntu: ``apt-get install wrk``); without it the benchmark says so and
exits 0 having measured nothing.

    python benchmarks/bench_asgi.py            # 5 rounds of 5 s per case
    python benchmarks/bench_asgi.py --quick    # one short round, a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from apps import AUDIENCE, ISSUER
from bench_load import Load, Rate, fresh, proofs, report, token_file, wrk

from resource_server.client import DPoPKey
from tests.support import es256, jwks

ROOT = Path(__file__).resolve().parents[1]
PATH = "/orgs/acme/projects"
#: protect_mcp's resource (``asgi_apps``): its proofs name this origin, the others' the Host.
MCP_ORIGIN = AUDIENCE

#: case → (path, the bare case it is divided by, what it sends: "warm", "cold" or "dpop", the
#: target ÷ bare or None)
CASES = {
    "Starlette: bare route": ("/bare" + PATH, "Starlette: bare route", "warm", None),
    "Starlette: BearerMiddleware, warm": ("/mw" + PATH, "Starlette: bare route", "warm", 0.91),
    "Starlette: BearerMiddleware, cold ES256": ("/mw" + PATH, "Starlette: bare route", "cold", None),
    "Starlette: BearerMiddleware, DPoP": ("/mw-dpop" + PATH, "Starlette: bare route", "dpop", None),
    "FastAPI: bare route": ("/fastapi/bare" + PATH, "FastAPI: bare route", "warm", None),
    "FastAPI: a Depends that does nothing": ("/fastapi/trivial" + PATH, "FastAPI: bare route", "warm", None),
    "FastAPI: Depends(rs.require), warm": ("/fastapi/rs" + PATH, "FastAPI: bare route", "warm", 0.91),
    "FastAPI: Depends(rs.require), cold ES256": ("/fastapi/rs" + PATH, "FastAPI: bare route", "cold", None),
    "FastAPI: Depends(rs.require), DPoP": ("/fastapi/dpop" + PATH, "FastAPI: bare route", "dpop", None),
    "MCP tools/call: bare server": ("/mcp/bare/", "MCP tools/call: bare server", "warm", None),
    "MCP tools/call: SDK bearer auth + McpTokenVerifier": (
        "/mcp/sdk/",
        "MCP tools/call: bare server",
        "warm",
        None,
    ),
    "MCP tools/call: protect_mcp, warm": ("/mcp/rs/", "MCP tools/call: bare server", "warm", 0.91),
    "MCP tools/call: protect_mcp, cold ES256": ("/mcp/rs/", "MCP tools/call: bare server", "cold", None),
    "MCP tools/call: protect_mcp, DPoP": ("/mcp/dpop/", "MCP tools/call: bare server", "dpop", None),
}


@contextmanager
def uvicorn(keys: dict) -> Iterator[str]:
    """uvicorn, one worker, on a port the kernel picks; yields the base URL."""
    env = {**os.environ, "LOAD_JWKS": json.dumps(keys)}
    command = [sys.executable, "-m", "uvicorn", "--factory", "asgi_apps:create", "--port", "0"]
    command += ["--app-dir", str(ROOT / "benchmarks"), "--log-level", "info", "--no-access-log"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        port = None
        assert process.stderr is not None
        for line in process.stderr:
            if found := re.search(r"running on http://127\.0\.0\.1:(\d+)", line):
                port = int(found.group(1))
                break
        if port is None:
            raise RuntimeError("uvicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="one short round (smoke test)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("skipped: wrk is not installed (Debian/Ubuntu: apt-get install wrk); nothing was measured")
        return
    rounds, seconds = (1, 1.0) if args.quick else (args.rounds, args.seconds)
    threads, connections = 2, 8
    es = es256("load-es")
    key = DPoPKey.generate("ES256")
    bound = es.token(now=int(time.time()), iss=ISSUER, aud=AUDIENCE, cnf={"jkt": key.jkt})
    # New tokens (and proofs) per case and round: 6,000 a second, more than one uvicorn worker
    # serves even the bare route here, a multiple of the thread count.
    pool = int(6000 * seconds) // threads * threads
    with tempfile.TemporaryDirectory() as scratch, uvicorn(jwks(es)) as base:
        directory = Path(scratch)
        warm = token_file(directory, "warm", fresh(es, 1))

        def load(path: str, kind: str) -> Load:
            mcp = path.startswith("/mcp/")
            if kind == "cold":
                return Load(token_file(directory, "lines", fresh(es, pool)), mcp=mcp, distinct=True)
            if kind == "dpop":
                url = (MCP_ORIGIN if mcp else base) + path
                minted = proofs(key, url, bound, pool, method="POST" if mcp else "GET")
                return Load(token_file(directory, "lines", minted), bound, mcp=mcp, distinct=True)
            return Load(warm, mcp=mcp)

        for path, _, kind, _ in CASES.values():  # warm-up: first requests, the warm tokens' entries
            wrk(base + path, load(path, kind), seconds=1, threads=threads, connections=connections)
        rates: dict[str, list[Rate]] = {name: [] for name in CASES}
        for number in range(rounds):
            order = list(CASES)
            random.Random(number).shuffle(order)  # fixed seeds: every run shuffles alike
            for name in order:
                path, _, kind, _ = CASES[name]
                rate = wrk(
                    base + path, load(path, kind), seconds=seconds, threads=threads, connections=connections
                )
                rates[name].append(rate)
    header = (
        f"uvicorn, 1 worker; wrk -t{threads} -c{connections}, "
        f"{rounds} round(s) of {seconds:g} s per case, shuffled per round"
    )
    for line in report(
        header, {name: (bare, target) for name, (_, bare, _, target) in CASES.items()}, rates, pool
    ):
        print(line)


if __name__ == "__main__":
    main()
