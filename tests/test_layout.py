"""The architecture's one hard rule: ``policy`` is standard library only and does no I/O."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import policy

POLICY_DIR = Path(policy.__file__).parent
FORBIDDEN_CALLS = {"open", "input", "print", "exec", "eval"}
FORBIDDEN_MODULES = {
    "socket",
    "os",
    "io",
    "pathlib",
    "subprocess",
    "time",
    "datetime",
    "random",
    "urllib",
    "http",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_policy_imports_only_the_standard_library() -> None:
    for path in POLICY_DIR.glob("*.py"):
        outside = {
            m for m in imported_modules(path) if m not in sys.stdlib_module_names and m != "__future__"
        }
        assert not outside, f"{path.name} imports {outside}"


def test_policy_does_no_io_and_reads_no_clock() -> None:
    for path in POLICY_DIR.glob("*.py"):
        assert not imported_modules(path) & FORBIDDEN_MODULES, path.name
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = {
            n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        assert not calls & FORBIDDEN_CALLS, f"{path.name} calls {calls & FORBIDDEN_CALLS}"


def test_importing_policy_pulls_in_no_framework() -> None:
    code = (
        "import sys, policy; "
        "bad = [m for m in ('flask', 'werkzeug', 'jwt', 'authlib', 'requests', 'httpx', 'sqlalchemy') "
        "if m in sys.modules]; print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_is_exported() -> None:
    expected = {
        "parse_scope", "format_scope", "InvalidScope", "Roles", "ScopeHierarchy", "ScopeMap",
        "assemble_access", "Access", "AccessError", "OrgMismatch", "decide", "Decision",
        "Challenge", "ChallengeSyntaxError", "bearer_challenge", "parse_challenges",
    }  # fmt: skip
    assert expected <= set(policy.__all__)
    assert all(hasattr(policy, name) for name in policy.__all__)
    assert issubclass(policy.InvalidScope, ValueError)
    assert issubclass(policy.ChallengeSyntaxError, ValueError)
    assert issubclass(policy.OrgMismatch, policy.AccessError)


def test_public_callables_have_docstrings() -> None:
    for name in policy.__all__:
        assert getattr(policy, name).__doc__, name
