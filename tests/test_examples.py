"""The README's demo and the benchmark script run, end to end, in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def test_import_benchmark_runs() -> None:
    out = run("benchmarks/bench_import.py", "--quick")
    for row in (
        "PyJWT + cryptography (the reference)",
        "import resource_server",
        "resource_server.__version__",
    ):
        assert row in out


def test_flask_benchmark_runs() -> None:
    out = run("benchmarks/bench_flask.py", "--quick")
    for row in ("bare view", "@rs.require, warm", "@rs.require, cold ES256", "Authlib ResourceProtector"):
        assert row in out


def test_demo_runs_the_whole_story_over_real_http() -> None:
    """README command 1: five servers on loopback and the scripted client, which exits 0 only
    when it saw read 200, write 403, step-up 201, other org 401, capped 403, demoted 403, and
    then an opaque token through introspection and globex's own issuer, DPoP, MCP, an agent
    acting for a person, and step-up authentication at the API and on an MCP tool."""
    out = run("examples/demo.py")
    assert "statuses: [200, 403, 201, 401, 403, 403, 200, 403, 403, 201, 200, 201, 200, 401, 401]" in out
    assert '"X-Request-Id":"req-42"' in out  # passthrough through the gateway
    assert "approvals need a first-party session" in out  # the agent cannot approve itself
    assert 'error="insufficient_scope", scope="project:write"' in out
    assert 'error="invalid_token"' in out
    assert '{"error": "forbidden"' in out  # the demoted member: no challenge
    assert "opaque tokens and the second tenant: [200, 401, 201, 401]" in out
    assert "DPoP-bound tokens: [200, 401, 401, 401, 403, 201]" in out
    assert "MCP through the SDK's own client: [401, 200, 200, 403, 200], 2 authorizations" in out
    assert "tools/call create_project -> 403" in out
    assert "an agent acting for a person: [200, 403]" in out
    assert '"actor":"agent-assistant"' in out
    assert "step-up authentication: [201, 401, 200]" in out
    assert "step-up authentication on an MCP tool: [200, 200, 401, 200]" in out
    assert 'error="insufficient_user_authentication"' in out and 'acr_values="mfa", max_age="300"' in out
    # The operator's summary, read back from /metrics and the audit trail (checked step by step
    # against the story in tests/examples/test_demo_summary.py).
    assert (
        "refusals by status and error (metrics): 401 insufficient_user_authentication x2,"
        " 401 invalid_dpop_proof x1, 401 invalid_token x5, 401 unauthorized x3, 403 forbidden x3,"
        " 403 insufficient_scope x4; 18 in all, 18 refusal events in the audit log"
    ) in out
    assert "503s by cause (metrics): none" in out and "key rotations (metrics): 0" in out
    assert "org-binding violations (audit): 2 with a token of globex on acme's URL" in out
    assert "agent-assistant for user-admin: 1 allowed, 1 refused" in out
    assert "session:agent-session-1 for user-admin: 2 allowed, 1 refused" in out


def test_hot_path_benchmark_runs() -> None:
    out = run("benchmarks/bench_hot_path.py", "--quick")
    for row in (
        "Flask: @rs.require, warm",
        "WSGI: BearerMiddleware, cold ES256",
        "floor: RSA-2048 verification",
        "DPoP app: @rs.require, warm token, new proof",
        "Introspection app: @rs.require, warm",
        "Introspection app: @rs.require, cold (one call)",
        "the whole proof check (new jti each)",
        "Flask: @rs.require, delegated, warm",
        "Flask: @rs.require, delegated, cold ES256",
        "Flask: @rs.require, acr/max_age, warm",
        "delegated, warm ÷ the warm bearer case",
        "acr/max_age, warm ÷ the warm bearer case",
        "Flask: @rs.require, cold EdDSA",
        "memory per cached token",
        "warm extra, Flask ≤ middleware + 1 µs",
        "WSGI BearerMiddleware, cold ES256: bare",
        "ASGI BearerMiddleware, cold RS256: bare",
        "signature: the cryptography floor",
        "remainder: adapter glue, calls between stages, noise",
        "introspection, new opaque token: extra ÷ one loopback POST ≤ 1.25",
        "µs over the POST's",
        "the bare ECDSA check of each new token, inside the view",
        "Flask: BearerMiddleware in front, cold ES256",
        "the middleware in front of Flask",
        "Introspection app: one POST inside the view",
        "the async adapters, direct ASGI calls",
        "protect_mcp: DPoP, warm token, new proof: extra ÷ ECDSA floor ≤ 1.5",
    ):
        assert row in out
    assert "hostile-token, hostile-proof and cache tests hold the line" in out


def test_asgi_hot_path_benchmark_runs() -> None:
    out = run("benchmarks/bench_asgi_hot_path.py", "--quick")
    for framework in ("ASGI middleware", "FastAPI dependency", "protect_mcp"):
        for case in ("bare", "warm", "cold ES256", "DPoP, warm token, new proof"):
            assert f"{framework}: {case}" in out


def test_load_benchmark_runs() -> None:
    """gunicorn and wrk on loopback. Locally without wrk it skips with the install hint; in CI
    (which installs it) a missing wrk fails instead of passing having measured nothing."""
    out = run("benchmarks/bench_load.py", "--quick")
    if out.startswith("skipped"):
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the load benchmark did not run: {out.strip()}")
        pytest.skip(out.strip())
    for row in (
        "bare view",
        "@rs.require, cold ES256",
        "@rs.require, DPoP: warm token, new proof",
        "BearerMiddleware, warm",
        "BearerMiddleware, cold ES256",
        "Authlib ResourceProtector",
        "floor: bare view + the token's ECDSA check only",
        "the floor case ÷ bare",
        "@rs.require, cold ES256 ÷ the floor case",
        "≥ 0.80",
        "new tokens or proofs per case and round",
        "hostile-token, hostile-proof and cache tests hold the line",
    ):
        assert row in out


def test_asgi_benchmark_runs() -> None:
    """uvicorn and wrk on loopback: the ASGI middleware, FastAPI and MCP rows, warm, cold and
    DPoP. Skips without wrk locally, fails without it in CI."""
    out = run("benchmarks/bench_asgi.py", "--quick")
    if out.startswith("skipped"):
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but the ASGI benchmark did not run: {out.strip()}")
        pytest.skip(out.strip())
    for row in (
        "MCP tools/call: SDK bearer auth + McpTokenVerifier",
        "new tokens or proofs per case and round",
        "hostile-token, hostile-proof and cache tests hold the line",
    ):
        assert row in out
    for adapter in (
        "Starlette: BearerMiddleware",
        "FastAPI: Depends(rs.require)",
        "MCP tools/call: protect_mcp",
    ):
        for case in ("warm", "cold ES256", "DPoP"):
            assert f"{adapter}, {case}" in out


def test_django_benchmark_runs() -> None:
    """The DRF rows, django-oauth-toolkit's next to ours, and the floor, in a process of its own
    (the benchmark configures Django for itself)."""
    out = run("benchmarks/bench_django.py", "--quick")
    for row in (
        "DRF: bare APIView (the reference)",
        "DRF: BearerTokenAuthentication + ScopeMapPermission, warm",
        "DRF: BearerTokenAuthentication + ScopeMapPermission, cold ES256",
        "DRF: DOT OAuth2Authentication + TokenMatchesOASRequirements",
        "floor: ECDSA P-256 verification",
        "DOT ÷ ours (warm)",
    ):
        assert row in out
