"""How long does ``import resource_server`` take, next to importing PyJWT with ``cryptography``?

Every application that verifies tokens pays for PyJWT and ``cryptography`` (``from jwt import
PyJWK`` loads ``jwt.algorithms`` and with it ``cryptography``'s backends); what this package adds
on top is what it costs at start-up (a serverless cold start, every CLI run). Each case runs in
a fresh interpreter that times its import statement alone; the cases take turns, round after
round, so that a busy machine slows them alike; the median of the rounds is printed, and its
ratio to the reference. Bytecode is cached first (an untimed round, with ``PYTHONPYCACHEPREFIX``
in a temporary directory, whatever ``PYTHONDONTWRITEBYTECODE`` says), as it is for an installed
package: otherwise this repository's modules would be compiled on every run and PyJWT's not.

    python benchmarks/bench_import.py            # 31 rounds, about 30 s
    python benchmarks/bench_import.py --quick    # a smoke run, numbers not meaningful
    python -X importtime -c "import resource_server"   # where the time goes, module by module
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

REFERENCE = "import jwt, jwt.algorithms"
CASES = (
    ("PyJWT + cryptography (the reference)", REFERENCE),
    ("import policy", "import policy"),
    ("import resource_server", "import resource_server"),
    ("from resource_server import JWTVerifier", "from resource_server import JWTVerifier"),
    ("resource_server.__version__", "import resource_server; resource_server.__version__"),
    ("import resource_server.wsgi (with Werkzeug)", "import resource_server.wsgi"),
)

# The child imports nothing but time before the clock starts: the statement pays for the rest.
CHILD = """\
import time
start = time.perf_counter()
{statement}
print(time.perf_counter() - start)
"""


def import_time(statement: str, env: dict[str, str]) -> float:
    """Seconds ``statement`` takes in a fresh interpreter started in the repository."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD.format(statement=statement)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return float(result.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run with few rounds")
    parser.add_argument("--rounds", type=int, default=31, help="rounds of every case (default 31)")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else args.rounds

    times: dict[str, list[float]] = {name: [] for name, _ in CASES}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "PYTHONPYCACHEPREFIX": cache}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        for _, statement in CASES:  # the untimed round that caches the bytecode
            import_time(statement, env)
        for turn in range(rounds):
            # Each round starts with a different case, so no case always runs right after another.
            for name, statement in CASES[turn % len(CASES) :] + CASES[: turn % len(CASES)]:
                times[name].append(import_time(statement, env))

    medians = {name: statistics.median(values) for name, values in times.items()}
    reference = medians[CASES[0][0]]
    print(f"python {sys.version.split()[0]}; median of {rounds} rounds, each case in a fresh interpreter")
    print(f"{'case':<46} {'ms':>8} {'÷ reference':>12}")
    for name, _ in CASES:
        print(f"{name:<46} {medians[name] * 1e3:>8.1f} {medians[name] / reference:>12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
