"""Throughput under uvicorn: the ASGI adapters against the bare framework, driven by ``wrk``.

uvicorn (one worker, the default event loop) serves ``asgi_apps:create()`` on loopback: a
trivial Starlette route bare and behind ``resource_server.asgi.BearerMiddleware``, a FastAPI
route bare and with ``Depends(rs.require(...))``, and an MCP ``tools/call`` bare, behind the MCP
SDK's bearer middleware (with ``McpTokenVerifier``) and behind ``protect_mcp``; every case with
a warm token (the same one again). Rounds are interleaved in an order shuffled per round, each
case's requests/second is divided by its bare reference's in the same round, and the
min/median/max of those ratios are printed. Target: protected warm at most 1.10x the bare cost
(a throughput ratio of at least 0.91).

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
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import TOKENS_LUA, fresh, token_file, wrk

from tests.support import es256, jwks

ROOT = Path(__file__).resolve().parents[1]
PATH = "/orgs/acme/projects"

# A JSON-RPC tools/call per request (stateless MCP: no session), the token from the file.
MCP_LUA = """
function init(args)
  for line in io.lines(args[1]) do token = line end
  body = '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": '
    .. '{"name": "read_project", "arguments": {"name": "apollo"}}}'
end
function request()
  return wrk.format("POST", nil, {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Accept"] = "application/json, text/event-stream",
  }, body)
end
"""

#: case → (path, the bare case it is divided by)
CASES = {
    "Starlette: bare route": ("/bare" + PATH, "Starlette: bare route"),
    "Starlette: BearerMiddleware, warm": ("/mw" + PATH, "Starlette: bare route"),
    "FastAPI: bare route": ("/fastapi/bare" + PATH, "FastAPI: bare route"),
    "FastAPI: a Depends that does nothing": ("/fastapi/trivial" + PATH, "FastAPI: bare route"),
    "FastAPI: Depends(rs.require), warm": ("/fastapi/rs" + PATH, "FastAPI: bare route"),
    "MCP tools/call: bare server": ("/mcp/bare/", "MCP tools/call: bare server"),
    "MCP tools/call: SDK bearer auth + McpTokenVerifier": ("/mcp/sdk/", "MCP tools/call: bare server"),
    "MCP tools/call: protect_mcp, warm": ("/mcp/rs/", "MCP tools/call: bare server"),
}


def lua_for(path: str) -> str:
    return MCP_LUA if path.startswith("/mcp/") else TOKENS_LUA


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
    with tempfile.TemporaryDirectory() as scratch, uvicorn(jwks(es)) as base:
        warm = token_file(Path(scratch), "warm", fresh(es, 1))
        for path, _ in CASES.values():  # warm-up: first requests, the warm token's cache entry
            wrk(base + path, warm, seconds=1, threads=threads, connections=connections, lua=lua_for(path))
        rates: dict[str, list[float]] = {name: [] for name in CASES}
        for number in range(rounds):
            order = list(CASES)
            random.Random(number).shuffle(order)  # fixed seeds: every run shuffles alike
            for name in order:
                path = CASES[name][0]
                rate = wrk(
                    base + path,
                    warm,
                    seconds=seconds,
                    threads=threads,
                    connections=connections,
                    lua=lua_for(path),
                )
                rates[name].append(rate)
    print(f"uvicorn, 1 worker; wrk -t{threads} -c{connections}, {rounds} round(s) of {seconds:g} s per case")
    print(f"{'case':<40} {'req/s (median)':>15} {'÷ bare: min':>12} {'median':>8} {'max':>8}")
    for name, (_, bare) in CASES.items():
        ratios = [rate / reference for rate, reference in zip(rates[name], rates[bare], strict=True)]
        low, mid, high = min(ratios), statistics.median(ratios), max(ratios)
        print(f"{name:<40} {statistics.median(rates[name]):>15.0f} {low:>12.3f} {mid:>8.3f} {high:>8.3f}")


if __name__ == "__main__":
    main()
