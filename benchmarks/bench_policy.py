"""How much does the decision engine cost next to the token check every request already pays?

Prints, in one run, the time of ``policy.decide`` in several shapes next to one PyJWT HS256
decode (the cheapest real token verification), as ratios: machines are noisy, ratios less so.

    python benchmarks/bench_policy.py            # about 20 s
    python benchmarks/bench_policy.py --quick    # a smoke run, numbers not meaningful
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from collections.abc import Callable

import jwt

from policy import ScopeMap, assemble_access, decide

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "QUERY")


def best_time(func: Callable[[], object], *, number: int, repeat: int) -> float:
    """Seconds per call: the best of ``repeat`` runs of ``number`` calls (timeit's own advice)."""
    return min(timeit.repeat(func, number=number, repeat=repeat)) / number


def scopes(n: int, prefix: str = "s") -> frozenset[str]:
    return frozenset(f"{prefix}{i}:read" for i in range(n))


def cases() -> list[tuple[str, Callable[[], object]]]:
    secret = "k" * 32
    now = int(time.time())  # PyJWT checks iat and exp against the wall clock: valid on any day
    token = jwt.encode(
        {"sub": "user-1", "exp": now + 3600, "iat": now, "scope": "project:read team:read"},
        secret,
        algorithm="HS256",
    )

    typical = ScopeMap({"GET": ["project:read", "project:write"], "POST": [["project:write", "team:write"]]})
    role = frozenset({"project:read", "project:write", "team:read", "team:write", "org:read"})
    access = assemble_access(subject="u", role_scopes=role, token_scopes={"project:read", "team:read"})

    # 10 methods x 10 alternatives of 2 scopes each; the request is allowed by the last one.
    wide = ScopeMap({m: [[f"x{i}:read", f"y{i}:read"] for i in range(10)] for m in METHODS})
    narrow = ScopeMap({m: [["x9:read", "y9:read"]] for m in METHODS})
    last = frozenset({"x9:read", "y9:read"})
    wide_access = assemble_access(subject="u", role_scopes=last | scopes(8), token_scopes=last)

    big_role, big_token = scopes(1000) | {"project:read"}, scopes(1000) | {"project:read"}
    small_role, small_token = scopes(9) | {"project:read"}, scopes(9) | {"project:read"}
    big = assemble_access(subject="u", role_scopes=big_role, token_scopes=big_token)
    small = assemble_access(subject="u", role_scopes=small_role, token_scopes=small_token)

    # 1,000 routes exist; the request's route is one of them. decide() never sees the others.
    routes = [ScopeMap({"GET": [f"r{i}:read"], "POST": [f"r{i}:write"]}) for i in range(1000)]
    route_access = assemble_access(subject="u", role_scopes={"r999:read"}, token_scopes={"r999:read"})

    return [
        ("PyJWT HS256 decode (the reference)", lambda: jwt.decode(token, secret, algorithms=["HS256"])),
        ("decide, typical route, allowed", lambda: decide(access, typical, "GET")),
        ("decide, typical route, 403 + challenge", lambda: decide(access, typical, "POST", realm="api")),
        ("decide, 10 methods x 10 alternatives (last matches)", lambda: decide(wide_access, wide, "PATCH")),
        ("decide, 10 methods x 1 alternative", lambda: decide(wide_access, narrow, "PATCH")),
        ("decide, role and token of 10 scopes", lambda: decide(small, typical, "GET")),
        ("decide, role and token of 1,000 scopes", lambda: decide(big, typical, "GET")),
        ("decide, route 1,000 of 1,000 routes", lambda: decide(route_access, routes[-1], "GET")),
        (
            "assemble_access, 10 scopes (role ∩ token)",
            lambda: assemble_access(subject="u", role_scopes=small_role, token_scopes=small_token),
        ),
        (
            "assemble_access, 1,000 scopes (role ∩ token)",
            lambda: assemble_access(subject="u", role_scopes=big_role, token_scopes=big_token),
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with few iterations")
    args = parser.parse_args(argv)
    number, repeat = (200, 2) if args.quick else (20_000, 7)

    results = [(name, best_time(func, number=number, repeat=repeat)) for name, func in cases()]
    reference = results[0][1]
    print(f"python {sys.version.split()[0]}, PyJWT {jwt.__version__}; best of {repeat} x {number} calls")
    print(f"{'case':<52} {'µs/call':>9} {'÷ HS256 decode':>15}")
    for name, seconds in results:
        print(f"{name:<52} {seconds * 1e6:>9.3f} {seconds / reference:>15.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
