"""Throughput under a real server: gunicorn (2 sync workers) on loopback, driven by ``wrk``.

The same trivial view is served bare, after a bare ``cryptography`` check of each new token's
signature and nothing else (the floor: what any verifying library pays), under ``@rs.require`` (a warm token; a new ES256 token
every request; a warm DPoP-bound token with a new proof every request), behind
``BearerMiddleware`` (warm and cold) and under Authlib's ``ResourceProtector`` (which verifies
every request). Rounds are interleaved, each case's requests/second is divided by the bare view's
in the same round, and the min/median/max of those ratios are printed beside the targets (warm
≥ 0.97, cold ES256 ≥ 0.80, met or not on the median), then the floor case's own ratio (the most
a new token every request can leave of the bare view's throughput) and each cold case's ratio to
it. Every request carries an ``Authorization``
header, the bare ones included.

Cold and DPoP tokens and proofs are minted before each run, 6,000 per second of it (about twice
what the bare view serves here), each wrk thread walking its own share of them; the benchmark
prints how many requests repeated one (0: every request carried one the server had not seen).

Needs ``wrk`` (Debian/Ubuntu: ``apt-get install wrk``); without it the benchmark says so and
exits 0 having measured nothing.

    python benchmarks/bench_load.py            # 5 rounds of 5 s per case, about 6 minutes
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
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps import AUDIENCE, ISSUER
from bench_hot_path import strictness_tests

from resource_server.client import DPoPKey
from tests.support import Signer, es256, jwks

ROOT = Path(__file__).resolve().parents[1]
PATH = "/orgs/acme/projects"

# Each wrk thread walks its own stride of the lines file, so no line is sent twice in a run while
# the file holds enough (`done` prints how many each thread sent: the benchmark counts repeats).
# args: the lines file, the thread count, then "-" (each line a Bearer token) or a DPoP-bound
# token (each line a proof for it), then "mcp" for a JSON-RPC tools/call POST, else "get".
LINES_LUA = """
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  lines = {}
  for line in io.lines(args[1]) do lines[#lines + 1] = line end
  step = tonumber(args[2])
  bound = args[3]
  headers = {}
  if args[4] == "mcp" then
    method = "POST"
    body = '{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": '
      .. '{"name": "read_project", "arguments": {"name": "apollo"}}}'
    headers["Content-Type"] = "application/json"
    headers["Accept"] = "application/json, text/event-stream"
  end
  if bound ~= "-" then headers["Authorization"] = "DPoP " .. bound end
  index = id
  sent = 0
end
function request()
  index = index + step
  sent = sent + 1
  local line = lines[index % #lines + 1]
  if bound == "-" then headers["Authorization"] = "Bearer " .. line else headers["DPoP"] = line end
  return wrk.format(method, nil, headers, body)
end
function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do counts[#counts + 1] = tostring(thread:get("sent")) end
  io.write("sent per thread: " .. table.concat(counts, " ") .. "\\n")
end
"""


@dataclass(frozen=True)
class Load:
    """What one case sends: the lines file (Bearer tokens, or DPoP proofs for ``bound``), and
    whether each line must be new (cold and DPoP cases: repeats are counted)."""

    lines: Path
    bound: str = "-"
    mcp: bool = False
    distinct: bool = False


@dataclass(frozen=True)
class Rate:
    """requests/second, and how many requests reused a line another request of the run sent."""

    per_second: float
    repeats: int


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


def wrk(url: str, load: Load, *, seconds: float, threads: int, connections: int) -> Rate:
    """Requests per second; every response must be a 200."""
    script = load.lines.with_name("lines.lua")
    script.write_text(LINES_LUA, encoding="ascii")
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
            str(load.lines),
            str(threads),
            load.bound,
            "mcp" if load.mcp else "get",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    if "Non-2xx or 3xx responses" in result.stdout or "Socket errors" in result.stdout:
        raise RuntimeError(f"{url}: not every request succeeded\n{result.stdout}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    sent = re.search(r"sent per thread: ([\d ]+)", result.stdout)
    if found is None or sent is None:
        raise RuntimeError(f"wrk printed no rate:\n{result.stdout}{result.stderr}")
    # Thread i sends lines i+1, i+1+threads, ...: len/threads distinct ones, then it wraps.
    share = sum(1 for _ in load.lines.open(encoding="ascii")) // threads
    repeats = sum(max(0, int(n) - share) for n in sent.group(1).split()) if load.distinct else 0
    return Rate(float(found.group(1)), repeats)


def fresh(signer: Signer, count: int) -> list[str]:
    """New tokens for the load app, on the real clock (the app checks them against it)."""
    now = int(time.time())
    return [signer.token(now=now, iss=ISSUER, aud=AUDIENCE) for _ in range(count)]


def proofs(key: DPoPKey, url: str, token: str, count: int, *, method: str = "GET") -> list[str]:
    """New DPoP proofs (RFC 9449 §4.2) for ``token`` at ``url``, each with its own ``jti``; the
    apps accept them for an hour, so minting them first is fair."""
    return [key.proof(method, url, access_token=token) for _ in range(count)]


#: The same view after the ECDSA check of each new token's signature and nothing else: no
#: library that verifies a new ES256 token every request can serve more than this case does.
FLOOR = "floor: bare view + the token's ECDSA check only"

#: case → (path prefix, what it sends: "warm", "cold" or "dpop", its target ÷ bare or None)
CASES = {
    "bare view": ("/bare", "warm", None),
    FLOOR: ("/floor", "cold", None),
    "@rs.require, warm": ("/rs", "warm", 0.97),
    "@rs.require, cold ES256": ("/rs", "cold", 0.80),
    "@rs.require, DPoP: warm token, new proof": ("/dpop/rs", "dpop", None),
    "BearerMiddleware, warm": ("/mw", "warm", 0.97),
    "BearerMiddleware, cold ES256": ("/mw", "cold", 0.80),
    "Authlib ResourceProtector, ES256": ("/authlib", "warm", None),
}


def report(
    header: str, cases: dict[str, tuple[str, float | None]], rates: dict[str, list[Rate]], pool: int
) -> list[str]:
    """The table: each case's median req/s and the min/median/max of its per-round ratio to its
    bare case (``cases``: name → (bare case, target)), the target met or not on the median, and
    the repeats the cold and DPoP cases sent (0 when the pool outlasted every run)."""
    lines = [
        header,
        f"{'case':<50} {'req/s (median)':>15} {'÷ bare: min':>12} {'median':>8} {'max':>8}  target",
    ]
    repeats = 0
    for name, (bare, target) in cases.items():
        ratios = [r.per_second / b.per_second for r, b in zip(rates[name], rates[bare], strict=True)]
        low, mid, high = min(ratios), statistics.median(ratios), max(ratios)
        rate = statistics.median(r.per_second for r in rates[name])
        goal = "" if target is None else f"≥ {target:.2f} {'met' if mid >= target else 'NOT MET'}"
        lines.append(f"{name:<50} {rate:>15.0f} {low:>12.3f} {mid:>8.3f} {high:>8.3f}  {goal}")
        repeats += sum(r.repeats for r in rates[name])
    lines.append(
        f"cold and DPoP cases: {pool} new tokens or proofs per case and round, "
        f"{repeats} request(s) repeated one (a new one every request when 0)"
    )
    lines.append(f"{strictness_tests()} hostile-token, hostile-proof and cache tests hold the line")
    return lines


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
    # New tokens (and proofs) per case and round: 6,000 a second, about twice what the bare view
    # serves here, a multiple of the thread count (each thread walks its own share).
    pool = int(6000 * seconds) // threads * threads
    with tempfile.TemporaryDirectory() as scratch, gunicorn(jwks(es)) as base:
        directory = Path(scratch)
        warm = Load(token_file(directory, "warm", fresh(es, 1)))
        dpop_url = base + "/dpop/rs" + PATH

        def load(kind: str, name: str) -> Load:
            if kind == "cold":
                return Load(token_file(directory, name, fresh(es, pool)), distinct=True)
            if kind == "dpop":
                return Load(
                    token_file(directory, name, proofs(key, dpop_url, bound, pool)), bound, distinct=True
                )
            return warm

        for prefix, kind, _ in CASES.values():  # warm-up: first requests, the warm tokens in each worker
            first = load(kind, "warm-up") if kind == "dpop" else warm
            wrk(base + prefix + PATH, first, seconds=1, threads=threads, connections=connections)
        rates: dict[str, list[Rate]] = {name: [] for name in CASES}
        for _ in range(rounds):
            for name, (prefix, kind, _) in CASES.items():
                rates[name].append(
                    wrk(
                        base + prefix + PATH,
                        load(kind, "lines"),
                        seconds=seconds,
                        threads=threads,
                        connections=connections,
                    )
                )
    header = (
        f"gunicorn, 2 sync workers; wrk -t{threads} -c{connections}, "
        f"{rounds} round(s) of {seconds:g} s per case, interleaved"
    )
    for line in report(
        header, {name: ("bare view", target) for name, (_, _, target) in CASES.items()}, rates, pool
    ):
        print(line)
    for line in against_floor(rates, ("@rs.require, cold ES256", "BearerMiddleware, cold ES256")):
        print(line)


def against_floor(rates: dict[str, list[Rate]], cold: tuple[str, ...]) -> list[str]:
    """What the floor case says of the cold target: its own ratio to bare (the ceiling any
    verifying library has on this server and machine), and each cold case's requests/second
    over the floor case's in the same round (what our work around the signature leaves)."""

    def median_ratio(name: str, reference: str) -> float:
        pairs = zip(rates[name], rates[reference], strict=True)
        return statistics.median(r.per_second / b.per_second for r, b in pairs)

    ceiling = median_ratio(FLOOR, "bare view")
    lines = [
        f"the floor case ÷ bare: {ceiling:.3f} (median): the most a new ES256 token every request "
        "leaves of the bare view's throughput here, with no work but the signature check"
    ]
    lines += [f"{name} ÷ the floor case: {median_ratio(name, FLOOR):.3f} (median)" for name in cold]
    return lines


if __name__ == "__main__":
    main()
