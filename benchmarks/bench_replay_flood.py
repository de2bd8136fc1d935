"""One DPoP client floods the replay cache; does another client ever get a 503?

uvicorn (one worker) serves ``resource_server.asgi.BearerMiddleware`` with a ``DPoPVerifier``
over a trivial Starlette route, on loopback. For ``--seconds`` (60) of real time:

- the flooding client, one key and one valid bound token, sends fresh proofs (a new ``jti``
  each, never one twice) as fast as ``wrk`` can (``-t1 -c16``). Its proofs are signed before
  the run starts, ten seconds' worth per ten-second slot, each with an ``iat`` its slot accepts,
  so the flood costs the client nothing but sending;
- a second client, its own key and token, sends one request every 100 ms with a proof signed
  just then (the library's ``DPoPKey``), and counts its answers.

The replay cache is the verifier's default ``MemoryReplayCache`` (100,000 entries), then a
``RedisReplayCache`` on a ``redis-server`` this script starts on a Unix socket (no port). The
figure that matters is the second client's count of 503s: it must be 0. Printed as well: the
flood's rate and answers (200 until its key holds its share of the cache, then 503), and the
second client's latency (the server is saturated by the flood; these are not a latency target).

``--max-age 300 --max-proofs-per-key 100000`` runs the defaults from before the per-key bound
(a 300 s window, no share per key): the memory cache is then full, and every client refused,
once the flood has had 100,000 proofs accepted within 305 s.

Needs ``wrk`` and, for the Redis run, ``redis-server`` (Debian/Ubuntu: ``apt-get install wrk
redis-server``); without ``wrk`` it says so and exits 0 having measured nothing.

    python benchmarks/bench_replay_flood.py                   # memory, then Redis: about 3 minutes
    python benchmarks/bench_replay_flood.py --cache memory --seconds 10     # a smoke run
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ROOT = Path(__file__).resolve().parents[1]
ISSUER = "https://as.flood.test"
RESOURCE = "https://api.flood.test"  # the middleware's resource=: proofs name it, whatever the port
PATH = "/orgs/acme/projects"
SLOT = 10  # seconds of flood per batch of proofs sharing one iat
FLOOD_RATE_CAP = 4000  # proofs signed per second of flood: above what one uvicorn worker answers

# Each wrk thread takes every n-th proof of each slot and walks them in order, the slot chosen by
# the clock; wrk reports only 2xx or not, so the statuses are counted here, per thread.
FLOOD_LUA = """
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  local step, n = tonumber(args[2]), 0
  start, token, proofs, index = tonumber(args[3]), args[4], {}, {}
  for line in io.lines(args[1]) do
    if n % step == id then
      local tab = line:find("\\t")
      local slot = tonumber(line:sub(1, tab - 1))
      proofs[slot] = proofs[slot] or {}
      table.insert(proofs[slot], line:sub(tab + 1))
    end
    n = n + 1
  end
  s200, s503, other, reused = 0, 0, 0, 0
end
function request()
  local slot = math.floor((os.time() - start) / SLOT_SECONDS) + 1
  local list = proofs[slot] or proofs[#proofs]
  local i = (index[slot] or 0) + 1
  if i > #list then i, reused = 1, reused + 1 end
  index[slot] = i
  return wrk.format("GET", nil, {Authorization = "DPoP " .. token, DPoP = list[i]})
end
function response(status, headers, body)
  if status == 200 then s200 = s200 + 1 elseif status == 503 then s503 = s503 + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local a, b, c, r = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a, b, c, r = a + t:get("s200"), b + t:get("s503"), c + t:get("other"), r + t:get("reused")
  end
  io.write(string.format("FLOOD %d %d %d %d\\n", a, b, c, r))
end
""".replace("SLOT_SECONDS", str(SLOT))


# -- the server --------------------------------------------------------------------------------


def create() -> Any:
    """The app uvicorn serves (``--factory bench_replay_flood:create``), configured by the
    ``FLOOD_*`` environment variables; the real clock."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from policy import Roles
    from resource_server import JWTVerifier
    from resource_server.asgi import BearerMiddleware
    from resource_server.dpop import DPoPVerifier
    from resource_server.state import RedisReplayCache

    async def projects(request: Any) -> JSONResponse:
        return JSONResponse({"org": request.path_params["org"]})

    redis_url = os.environ.get("FLOOD_REDIS")
    per_key = os.environ.get("FLOOD_PER_KEY")
    dpop = DPoPVerifier(
        max_age=int(os.environ.get("FLOOD_MAX_AGE", "60")),
        replay_cache=RedisReplayCache(redis_url) if redis_url else None,
        max_proofs_per_key=int(per_key) if per_key else None,
    )
    return BearerMiddleware(
        Starlette(routes=[Route("/orgs/{org}/projects", projects)]),
        verifier=JWTVerifier(issuer=ISSUER, audience=RESOURCE, jwks=json.loads(os.environ["FLOOD_JWKS"])),
        roles=Roles({"member": ["project:read"]}),
        membership=lambda subject, org: "member",
        routes={"/orgs/{org}/projects": {"GET": "project:read"}},
        dpop=dpop,
        resource=RESOURCE,
    )


@contextmanager
def uvicorn(env: dict[str, str], log: Path) -> Iterator[str]:
    """uvicorn, one worker, on a port the kernel picks; its log (the library's too) in ``log``."""
    command = [sys.executable, "-m", "uvicorn", "--factory", "bench_replay_flood:create", "--port", "0"]
    command += ["--app-dir", str(ROOT / "benchmarks"), "--log-level", "info", "--no-access-log"]
    with log.open("w") as output:
        process = subprocess.Popen(command, stderr=output, env={**os.environ, **env})
    try:
        deadline = time.monotonic() + 30
        while not (found := re.search(r"running on http://127\.0\.0\.1:(\d+)", log.read_text())):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"uvicorn did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        process.terminate()
        process.wait(timeout=30)


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A throwaway redis-server on a Unix socket (no TCP port); yields its URL."""
    import redis

    socket = directory / "redis.sock"
    command = ["redis-server", "--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700"]
    command += ["--save", "", "--appendonly", "no", "--dir", str(directory)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"unix://{socket}"
    try:
        client = redis.Redis.from_url(url, socket_timeout=1)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except (redis.RedisError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- the clients -------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_slot(job: tuple[bytes, str, int, int, int]) -> list[str]:
    """``count`` proofs with ``iat``, each with a new jti (in a worker process: signing is the
    slow part). ``job`` is (the key's PEM, the access token, iat, count, slot)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    pem, token, iat, count, slot = job
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    numbers = key.public_key().public_numbers()
    jwk = {"kty": "EC", "crv": "P-256", "x": b64url(numbers.x.to_bytes(32, "big"))}
    jwk["y"] = b64url(numbers.y.to_bytes(32, "big"))
    header = b64url(json.dumps({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk}).encode())
    ath = b64url(hashlib.sha256(token.encode("ascii")).digest())
    lines = []
    for _ in range(count):
        claims = {
            "jti": secrets.token_urlsafe(18),
            "htm": "GET",
            "htu": RESOURCE + PATH,
            "iat": iat,
            "ath": ath,
        }
        signing_input = f"{header}.{b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        lines.append(f"{slot}\t{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}")
    return lines


@dataclass
class Second:
    """What the second client saw: one status and one latency (ms) per request."""

    statuses: Counter[int]
    latencies: list[float]


def second_client(base: str, token: str, key: Any, seconds: float, out: list[Second]) -> None:
    """One request every 100 ms, each with a proof signed just before it."""
    import httpx

    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    start = time.monotonic()
    with httpx.Client(base_url=base, timeout=30) as client:
        for number in range(int(seconds * 10)):
            delay = start + number / 10 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            proof = key.proof("GET", RESOURCE + PATH, access_token=token)
            began = time.perf_counter()
            try:
                status = client.get(
                    PATH, headers={"Authorization": f"DPoP {token}", "DPoP": proof}
                ).status_code
            except httpx.TransportError:
                status = 0  # no answer at all: counted apart from every status
            latencies.append((time.perf_counter() - began) * 1000)
            statuses[status] += 1
    out.append(Second(statuses, latencies))


def access_token(issuer_key: Any, jkt: str) -> str:
    import jwt

    now = int(time.time())
    claims = {"iss": ISSUER, "aud": RESOURCE, "sub": "user-1", "iat": now, "exp": now + 3600}
    claims.update(scope="project:read", org_id="acme", cnf={"jkt": jkt})
    return jwt.encode(claims, issuer_key, algorithm="ES256", headers={"typ": "at+jwt", "kid": "as-1"})


# -- one run -----------------------------------------------------------------------------------


def run(name: str, env: dict[str, str], seconds: float, directory: Path) -> str:
    import httpx
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from resource_server.client import DPoPKey

    issuer_key = ec.generate_private_key(ec.SECP256R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(issuer_key.public_key()))
    env = {**env, "FLOOD_JWKS": json.dumps({"keys": [{**public, "kid": "as-1", "alg": "ES256"}]})}
    flooder_key = ec.generate_private_key(ec.SECP256R1())
    pem = flooder_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    flooder = DPoPKey(flooder_key)
    flood_token = access_token(issuer_key, flooder.jkt)
    other = DPoPKey.generate("ES256")
    other_token = access_token(issuer_key, other.jkt)

    # Sign the flood's proofs first; it starts once they are ready, each slot's iat 5 s ahead
    # of the slot's start (accepted from then, RFC 9449 leeway, until max_age after it).
    slots = math.ceil(seconds / SLOT)
    per_slot = FLOOD_RATE_CAP * SLOT
    began = time.monotonic()
    sign_slot((pem, flood_token, int(time.time()), 200, 0))  # a probe: how long one proof takes
    estimate = (time.monotonic() - began) / 200 * per_slot * slots / max(1, (os.cpu_count() or 1))
    start = int(time.time() + estimate * 1.5 + 5)
    jobs = [(pem, flood_token, start + SLOT * slot + 5, per_slot, slot + 1) for slot in range(slots)]
    proofs = directory / "proofs.txt"
    with ProcessPoolExecutor() as pool, proofs.open("w") as out:
        for lines in pool.map(sign_slot, jobs):
            out.write("\n".join(lines) + "\n")
    script = directory / "flood.lua"
    script.write_text(FLOOD_LUA)
    log = directory / f"server-{name}.log"
    with uvicorn(env, log) as base:
        for token, key in ((flood_token, flooder), (other_token, other)):  # both tokens verified once
            proof = key.proof("GET", RESOURCE + PATH, access_token=token)
            answer = httpx.get(base + PATH, headers={"Authorization": f"DPoP {token}", "DPoP": proof})
            if answer.status_code != 200:
                raise RuntimeError(f"the set-up is wrong: {answer.status_code} {answer.text}")
        while time.time() < start:
            time.sleep(0.01)
        seen: list[Second] = []
        watcher = threading.Thread(target=second_client, args=(base, other_token, other, seconds, seen))
        watcher.start()
        command = ["wrk", "-t1", "-c16", f"-d{round(seconds)}s", "-s", str(script), base + PATH]
        command += ["--", str(proofs), "1", str(start), flood_token]
        result = subprocess.run(command, capture_output=True, text=True, check=True)
        watcher.join()
    found = re.search(r"FLOOD (\d+) (\d+) (\d+) (\d+)", result.stdout)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    if found is None or rate is None:
        raise RuntimeError(f"wrk printed no counts:\n{result.stdout}{result.stderr}")
    ok, unavailable, other_status, reused = (int(group) for group in found.groups())
    second = seen[0]
    latencies = sorted(second.latencies)
    p99 = latencies[min(len(latencies) - 1, math.ceil(len(latencies) * 0.99) - 1)]
    return "\n".join(
        [
            f"{name}:",
            f"  flooding client: {ok + unavailable + other_status} requests in {seconds:g} s"
            f" ({float(rate.group(1)):.0f}/s): {ok} x 200, {unavailable} x 503, {other_status} other"
            + (f" ({reused} proofs sent twice: the signed supply ran out)" if reused else ""),
            f"  second client: {sum(second.statuses.values())} requests, one every 100 ms: "
            + ", ".join(
                f"{count} x {status or 'no answer'}" for status, count in sorted(second.statuses.items())
            )
            + f"; 503s: {second.statuses[503]}; latency median {statistics.median(latencies):.0f} ms,"
            f" p99 {p99:.0f} ms",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cache", choices=["memory", "redis", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-age", type=int, default=60, help="DPoPVerifier(max_age=...)")
    parser.add_argument("--max-proofs-per-key", type=int, help="DPoPVerifier(max_proofs_per_key=...)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("skipped: wrk is not installed (Debian/Ubuntu: apt-get install wrk); nothing was measured")
        return
    env = {"FLOOD_MAX_AGE": str(args.max_age)}
    if args.max_proofs_per_key:
        env["FLOOD_PER_KEY"] = str(args.max_proofs_per_key)
    settings = f"max_age={args.max_age}, max_proofs_per_key={args.max_proofs_per_key or 'default'}"
    print(f"uvicorn, 1 worker; flood: wrk -t1 -c16 for {args.seconds:g} s; DPoPVerifier({settings})")
    with tempfile.TemporaryDirectory(prefix="flood-") as scratch:
        directory = Path(scratch)
        if args.cache in ("memory", "both"):
            print(run("MemoryReplayCache (100,000 entries)", env, args.seconds, directory), flush=True)
        if args.cache in ("redis", "both"):
            if shutil.which("redis-server") is None:
                print("Redis: skipped, redis-server is not installed")
                return
            with redis_server(directory) as url:
                print(run("RedisReplayCache", {**env, "FLOOD_REDIS": url}, args.seconds, directory))


if __name__ == "__main__":
    main()
