"""Throughput under a real server: gunicorn (2 sync workers) on loopback, driven by ``wrk``.

The same trivial view is served bare, under ``@rs.require`` (a warm token; a new ES256 token
every request), behind ``BearerMiddleware`` (the same two) and under Authlib's
``ResourceProtector`` (which verifies every request). Rounds are interleaved, each case's
requests/second is divided by the bare view's in the same round, and the min/median/max of those
ratios are printed. Every request carries an ``Authorization`` header, the bare ones included.

Needs ``wrk`` (Debian/Ubuntu: ``apt-get install wrk``); without it the benchmark says so and
exits 0 having measured nothing.

    python benchmarks/bench_load.py            # 5 rounds of 5 s per case, about 4 minutes
    python benchmarks/bench_load.py --quick    # one short round, a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps import AUDIENCE, ISSUER

from tests.support import Signer, es256, jwks

ROOT = Path(__file__).resolve().parents[1]
PATH = "/orgs/acme/projects"

# Each wrk thread walks its own stride of the token file, so no token is sent twice in a run.
TOKENS_LUA = """
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  tokens = {}
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  step = tonumber(args[2])
  index = id
  sent = 0
end
function request()
  index = index + step
  sent = sent + 1
  return wrk.format(nil, nil, {Authorization = "Bearer " .. tokens[index % #tokens + 1]})
end
"""


@contextmanager
def gunicorn(keys: dict) -> Iterator[str]:
    """gunicorn with 2 sync workers on a port the kernel picks; yields the base URL."""
    env = {**os.environ, "LOAD_JWKS": json.dumps(keys)}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            "2",
            "--bind",
            "127.0.0.1:0",
            "--no-control-socket",
            "--chdir",
            str(ROOT / "benchmarks"),
            "apps:create()",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        port, booted = None, 0
        assert process.stderr is not None
        for line in process.stderr:
            if found := re.search(r"Listening at: http://127\.0\.0\.1:(\d+)", line):
                port = int(found.group(1))
            booted += "Booting worker" in line
            if booted == 2:
                break
        if port is None:
            raise RuntimeError("gunicorn did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def token_file(directory: Path, name: str, tokens: list[str]) -> Path:
    path = directory / f"{name}.txt"
    path.write_text("\n".join(tokens) + "\n", encoding="ascii")
    return path


def wrk(
    url: str, tokens: Path, *, seconds: float, threads: int, connections: int, lua: str = TOKENS_LUA
) -> float:
    """Requests per second; every response must be a 200. ``lua`` builds each request."""
    script = tokens.with_name(f"{tokens.stem}-{abs(hash(lua)) % 10**8}.lua")
    script.write_text(lua, encoding="ascii")
    result = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "-s",
            str(script),
            url,
            "--",
            str(tokens),
            str(threads),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    if "Non-2xx or 3xx responses" in result.stdout or "Socket errors" in result.stdout:
        raise RuntimeError(f"{url}: not every request succeeded\n{result.stdout}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if found is None:
        raise RuntimeError(f"wrk printed no rate:\n{result.stdout}{result.stderr}")
    return float(found.group(1))


def fresh(signer: Signer, count: int) -> list[str]:
    """New tokens for the load app, on the real clock (the app checks them against it)."""
    now = int(time.time())
    return [signer.token(now=now, iss=ISSUER, aud=AUDIENCE) for _ in range(count)]


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
    warm = fresh(es, 1)
    # A generous supply of new tokens per cold run: more than 2 workers can verify in that time.
    per_run = int(6000 * seconds)
    with tempfile.TemporaryDirectory() as scratch, gunicorn(jwks(es)) as base:
        directory = Path(scratch)
        warm_file = token_file(directory, "warm", warm)
        cases = {
            "bare view": ("/bare", None),
            "@rs.require, warm": ("/rs", None),
            "@rs.require, cold ES256": ("/rs", "cold"),
            "BearerMiddleware, warm": ("/mw", None),
            "BearerMiddleware, cold ES256": ("/mw", "cold"),
            "Authlib ResourceProtector, ES256": ("/authlib", None),
        }
        for prefix, _ in cases.values():  # warm-up: first requests, the warm token in each worker
            wrk(base + prefix + PATH, warm_file, seconds=1, threads=threads, connections=connections)
        ratios: dict[str, list[float]] = {name: [] for name in cases}
        rates: dict[str, list[float]] = {name: [] for name in cases}
        for number in range(rounds):
            for name, (prefix, kind) in cases.items():
                tokens = (
                    token_file(directory, f"cold-{number}-{prefix[1:]}", fresh(es, per_run))
                    if kind
                    else warm_file
                )
                rates[name].append(
                    wrk(
                        base + prefix + PATH,
                        tokens,
                        seconds=seconds,
                        threads=threads,
                        connections=connections,
                    )
                )
            for name in cases:
                ratios[name].append(rates[name][-1] / rates["bare view"][-1])
    print(
        f"gunicorn, 2 sync workers; wrk -t{threads} -c{connections}, {rounds} round(s) of {seconds:g} s per case"
    )
    print(f"{'case':<36} {'req/s (median)':>15} {'÷ bare: min':>12} {'median':>8} {'max':>8}")
    for name in cases:
        low, mid, high = min(ratios[name]), statistics.median(ratios[name]), max(ratios[name])
        print(f"{name:<36} {statistics.median(rates[name]):>15.0f} {low:>12.3f} {mid:>8.3f} {high:>8.3f}")


if __name__ == "__main__":
    main()
