"""Where a cold request's time goes, measured inside real requests: every microsecond of a new
ES256 (or RS256) token over (the bare request + the signature floor), through the Flask
extension (``@rs.require``), the WSGI ``BearerMiddleware`` and the ASGI ``BearerMiddleware``.

The instrumentation lives here, not in the library (which pays nothing for it): for the run, the
library's own functions on the cold path are replaced by wrappers that read ``perf_counter_ns``
on entry and exit and keep each stage's *exclusive* time (its own, without the stages it calls),
summed over many requests. A wrapper costs some 0.2 µs of its own, measured on a no-op
function and subtracted once per wrapped call; what no stage holds (the adapter's glue, the
Python calls between stages) is the *remainder*: the uninstrumented cold extra over bare, less
every stage. The same run times, interleaved round by round, the uninstrumented bare and cold
requests and the bare ``cryptography`` verification, so the table adds up to the measured extra.

A second pass counts allocations per stage: net memory blocks (``sys.getallocatedblocks``) and
net bytes (``tracemalloc``) each stage leaves behind per request, and the peak a request reaches.

    python benchmarks/bench_cold_attribution.py            # about a minute
    python benchmarks/bench_cold_attribution.py --quick    # a smoke run, numbers not meaningful
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import threading
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from types import FunctionType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_hot_path as hot
from apps import fresh_tokens, same_token

from tests.support import Signer, es256, rs256

_ns = time.perf_counter_ns


class Probe:
    """Exclusive time (or net memory) per stage, nested: a stage's children are subtracted from
    it. One stack per thread, so a stage run in a worker thread is charged to the stage that
    runs it there, and the thread hop to whatever waits for it."""

    def __init__(self, read: Callable[[], int] = _ns) -> None:
        self.read = read
        self.totals: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)
        self.children: dict[str, int] = defaultdict(int)  # direct wrapped children, for the overhead
        self._local = threading.local()

    def _stack(self) -> list[list[Any]]:
        stack: list[list[Any]] | None = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = [["(outside)", 0]]
        return stack

    def wrap(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        read, totals, calls, children = self.read, self.totals, self.calls, self.children
        stack_of = self._stack

        def timed(*args: Any, **kwargs: Any) -> Any:
            stack = stack_of()
            parent = stack[-1]
            children[parent[0]] += 1
            frame = [label, 0]
            stack.append(frame)
            start = read()
            try:
                return function(*args, **kwargs)
            finally:
                spent = read() - start
                stack.pop()
                totals[label] += spent - frame[1]
                calls[label] += 1
                parent[1] += spent

        return timed

    def reset(self) -> None:
        self.totals.clear()
        self.calls.clear()
        self.children.clear()


def patch(stack: ExitStack, owner: Any, name: str, probe: Probe, label: str) -> None:
    """Replace ``owner.name`` by its wrapped self for the life of ``stack``."""
    original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
    wrapped = probe.wrap(label, original)
    setattr(owner, name, wrapped)
    stack.callback(setattr, owner, name, original)


def instrument(stack: ExitStack, probe: Probe) -> None:
    """Wrap every stage of the cold path, by the library's own names."""
    from resource_server import guard, token_check
    from resource_server.expiring import ExpiringCache
    from resource_server.flask import guarded
    from resource_server.telemetry.observer import Observer
    from resource_server.tokens import jwk, jwt

    stages = [
        (guard.Guard, "authorize", "guard: pipeline glue (authorize, credential)"),
        (guard.Guard, "credential", "guard: pipeline glue (authorize, credential)"),
        (guard.Guard, "uncached", "guard: pipeline glue (authorize, credential)"),
        (guard.Guard, "grant", "guard: grant (assemble_access, Granted)"),
        (guard.Guard, "decision", "guard: decision (policy.decide)"),
        (Observer, "begin", "telemetry: observer begin/end"),
        (Observer, "end", "telemetry: observer begin/end"),
        (token_check.TokenCheck, "verified", "token check: binding, Credential"),
        (token_check, "access_token", "Authorization parsing (RFC 6750 §2.1)"),
        (token_check.TokenCheck, "_verify", "token check: span, error mapping, verify_uncached"),
        (token_check.TokenCheck, "_answer", "token check: span, error mapping, verify_uncached"),
        (ExpiringCache, "get", "caches: lookups"),
        (ExpiringCache, "put", "caches: insertions (guard + verifier)"),
        (jwt.JWTVerifier, "verify", "verifier: size, SHA-256 cache key"),
        (jwt.JWTVerifier, "_verify", "verifier: the three parts, signing input"),
        (jwt, "split_compact", "verifier: compact split"),
        (jwt.JWTVerifier, "_checked_header", "verifier: header (checked once), key lookup"),
        (jwt.JWTVerifier, "_key_for", "verifier: header (checked once), key lookup"),
        (jwt, "json_object", "verifier: payload base64url + strict JSON"),
        (jwt, "decoded_object", "verifier: payload strict JSON"),
        (jwt, "b64decode", "verifier: base64url (payload, signature)"),
        (jwt.JWTVerifier, "_claims", "claims: types, times, iss, aud, sub, org, scope"),
        (jwt, "VerifiedToken", "claims: VerifiedToken (cnf, act, acr, auth_time)"),
        (guarded.RequestGuard, "_outcome", "Flask adapter: request facts, grant kept"),
    ]
    for owner, name, label in stages:
        if name in vars(owner):  # a stage the library under test has (an older one may lack it)
            patch(stack, owner, name, probe, label)
    signature = "signature (see the split below)"
    if isinstance(vars(jwk.VerificationKey).get("verify"), FunctionType):  # an older library
        patch(stack, jwk.VerificationKey, "verify", probe, signature)
        return
    # Each key's check is a field, called directly: wrapped on every key that exists now.
    for key in (found for found in gc.get_objects() if type(found) is jwk.VerificationKey):
        original = key.verify
        object.__setattr__(key, "verify", probe.wrap(signature, original))
        stack.callback(object.__setattr__, key, "verify", original)


def asgi_app(signers: tuple[Signer, ...]) -> Any:
    from resource_server.asgi import BearerMiddleware

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b'{"projects": []}'
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    protected = BearerMiddleware(
        app,
        verifier=hot.verifier(signers),
        roles=hot.ROLES,
        membership=hot.membership,
        routes={"/orgs/{org}/projects": hot.SCOPES},
    )
    return app, protected


def asgi_caller(loop: asyncio.AbstractEventLoop, app: Any, tokens: Iterator[str]) -> Callable[[], None]:
    """One GET as an ASGI server makes it, driven to completion on ``loop``."""

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    def one() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": hot.PATH,
            "raw_path": hot.PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"localhost"), (b"authorization", f"Bearer {next(tokens)}".encode())],
            "server": ("localhost", 80),
        }
        loop.run_until_complete(app(scope, receive, send))
        if statuses.pop() != 200:
            raise RuntimeError("ASGI: refused")

    return one


def adapters(signer: Signer, needed: int, loop: asyncio.AbstractEventLoop) -> dict[str, tuple[Any, Any]]:
    """Per adapter: (bare request, cold request) callers, each a new token every call."""
    signers = (signer,)
    flask = hot.flask_app(signers).wsgi_app
    wrapped = hot.middleware(signers)
    bare_asgi, protected_asgi = asgi_app(signers)
    return {
        "Flask @rs.require": (
            hot.caller(flask, "/bare" + hot.PATH, same_token(signer)),
            hot.caller(flask, "/rs" + hot.PATH, fresh_tokens(signer, needed)),
        ),
        "WSGI BearerMiddleware": (
            hot.caller(hot.plain_app, hot.PATH, same_token(signer)),
            hot.caller(wrapped, hot.PATH, fresh_tokens(signer, needed)),
        ),
        "ASGI BearerMiddleware": (
            asgi_caller(loop, bare_asgi, same_token(signer)),
            asgi_caller(loop, protected_asgi, fresh_tokens(signer, needed)),
        ),
    }


def wrapper_cost(number: int = 20000) -> float:
    """Nanoseconds one wrapped call adds over the bare call (the probe's own cost)."""
    probe = Probe()

    def noop() -> None:
        return None

    wrapped = probe.wrap("calibration", noop)
    best = float("inf")
    for _ in range(7):
        start = _ns()
        for _ in range(number):
            noop()
        plain = _ns() - start
        start = _ns()
        for _ in range(number):
            wrapped()
        best = min(best, (_ns() - start - plain) / number)
    return best


def attribute(
    name: str,
    bare: Callable[[], None],
    cold: Callable[[], None],
    floor: Callable[[], None],
    number: int,
    rounds: int,
) -> tuple[dict[str, float], float, float, float]:
    """(µs per request per stage, bare µs, cold µs, floor µs): uninstrumented bare, cold and
    floor interleaved with instrumented cold rounds, medians over rounds."""
    probe = Probe()
    cost = wrapper_cost()
    times: dict[str, list[float]] = {"bare": [], "cold": [], "floor": []}
    stage_rounds: list[dict[str, float]] = []
    for round_number in range(rounds):
        order = ["bare", "cold", "floor", "instrumented"]
        order = order[round_number % 4 :] + order[: round_number % 4]
        for case in order:
            if case == "instrumented":
                probe.reset()
                with ExitStack() as stack:
                    instrument(stack, probe)
                    for _ in range(number):
                        cold()
                per_stage = {}
                for label, total in probe.totals.items():
                    # Each wrapped child's own cost lands in its parent's exclusive time.
                    own = total - cost * probe.children.get(label, 0)
                    per_stage[label] = own / number / 1000
                stage_rounds.append(per_stage)
                continue
            one = {"bare": bare, "cold": cold, "floor": floor}[case]
            start = _ns()
            for _ in range(number):
                one()
            times[case].append((_ns() - start) / number / 1000)
    labels = {label for stages in stage_rounds for label in stages}
    stages = {label: statistics.median(r.get(label, 0.0) for r in stage_rounds) for label in labels}
    return stages, *(statistics.median(times[c]) for c in ("bare", "cold", "floor"))  # type: ignore[return-value]


def allocations(cold: Callable[[], None], number: int) -> tuple[dict[str, tuple[float, float]], float]:
    """Per stage: (net blocks, net bytes) left per request; and a request's peak bytes."""
    blocks, memory = Probe(sys.getallocatedblocks), Probe(lambda: tracemalloc.get_traced_memory()[0])
    with ExitStack() as stack:
        instrument(stack, blocks)
        for _ in range(number):
            cold()
    tracemalloc.start()
    try:
        with ExitStack() as stack:
            instrument(stack, memory)
            for _ in range(number):
                cold()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        cold()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    labels = set(blocks.totals) | set(memory.totals)
    return {
        label: (blocks.totals.get(label, 0) / number, memory.totals.get(label, 0) / number)
        for label in labels
    }, peak


def report(signer: Signer, number: int, rounds: int, loop: asyncio.AbstractEventLoop) -> list[str]:
    lines = []
    floor = hot.verification_floor(signer)
    needed = number * rounds * 3 + 2 * max(number // 4, 50) + 10
    for name, (bare, cold) in adapters(signer, needed, loop).items():
        bare(), cold()  # first-request set-up
        stages, bare_us, cold_us, floor_us = attribute(name, bare, cold, floor, number, rounds)
        extra = cold_us - bare_us
        signature = stages.pop("signature (see the split below)", 0.0)
        stages["signature: the cryptography floor"] = floor_us
        stages["signature: our call over the floor (DER, ints)"] = signature - floor_us
        adapter = [k for k in stages if k.startswith("(outside)")]
        for key in adapter:
            stages.pop(key)
        remainder = extra - sum(stages.values())
        stages["remainder: adapter glue, calls between stages, noise"] = remainder
        counts, peak = allocations(cold, max(number // 4, 50))
        lines.append(
            f"{name}, cold {signer.algorithm}: bare {bare_us:.1f} µs, cold {cold_us:.1f} µs, "
            f"extra {extra:.1f} µs = {extra / floor_us:.2f}x the floor ({floor_us:.1f} µs); "
            f"non-signature work {extra - floor_us:.1f} µs = {(extra - floor_us) / floor_us:.2f}x the floor"
        )
        lines.append(f"  {'stage':<56} {'µs':>7} {'blocks':>7} {'bytes':>7}")
        for label, spent in sorted(stages.items(), key=lambda item: -item[1]):
            blocks, size = counts.get(label, (0.0, 0.0))
            lines.append(f"  {label:<56} {spent:>7.2f} {blocks:>7.1f} {size:>7.0f}")
        kept = sum(size for _, size in counts.values())
        lines.append(f"  {'(sum: the extra over bare)':<56} {extra:>7.2f}")
        lines.append(
            f"  allocations: net {kept:.0f} B kept per request by the stages, peak {peak} B in one request"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a few calls only (smoke test)")
    parser.add_argument("--algorithm", choices=("ES256", "RS256", "both"), default="both")
    args = parser.parse_args()
    number, rounds = (20, 2) if args.quick else (200, 15)
    loop = asyncio.new_event_loop()
    try:
        signers = {"ES256": [es256()], "RS256": [rs256()], "both": [es256(), rs256()]}[args.algorithm]
        print(f"in-request attribution: medians of {rounds} rounds of {number} requests (µs per request)")
        for signer in signers:
            for line in report(signer, number, rounds, loop):
                print(line)
    finally:
        loop.close()


if __name__ == "__main__":
    main()
