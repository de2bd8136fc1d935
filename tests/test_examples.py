"""The README's demo and the benchmark script run, end to end, in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_policy_tour_prints_decisions_and_challenges() -> None:
    out = run("examples/policy_tour.py")
    assert 'WWW-Authenticate: Bearer realm="api", error="insufficient_scope", scope="project:write"' in out
    assert "-> 200" in out and "-> 403" in out and "-> 401 invalid_token" in out
    assert "a client parses it and asks for: project:admin" in out


def test_policy_benchmark_runs() -> None:
    out = run("benchmarks/bench_policy.py", "--quick")
    assert "PyJWT HS256 decode (the reference)" in out
    assert "decide, typical route, allowed" in out
