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


# -- no import circles ------------------------------------------------------------------------------

ROOT = POLICY_DIR.parent
#: The packages whose modules must not import each other in a circle.
LAYERED = ("policy", "resource_server")


def module_files(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name → file, for every module of ``packages`` under ``root``."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def running_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that runs: at module level, in ``try`` and ``if`` blocks, and
    deferred into functions (it runs, only later); not those under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append(child)
            elif _is_type_checking(child):
                pending.extend(child.orelse)  # type: ignore[attr-defined]
            else:
                pending.append(child)
    return found


def imported_by(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The modules of ``modules`` that module ``name`` imports. ``from package import x`` is an
    import of ``package.x`` when that is a module, else of ``package``; an import of a module
    that is not ours stops at the nearest enclosing module that is (none: not counted)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in running_imports(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            source = (node.module or "") if node.level == 0 else ".".join(filter(None, (base, node.module)))
            candidates = [
                f"{source}.{alias.name}" if f"{source}.{alias.name}" in modules else source
                for alias in node.names
            ]
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


def import_circles(modules: dict[str, Path]) -> list[list[str]]:
    """The circles of the import graph: each strongly connected set of two or more modules
    (Tarjan's algorithm), sorted."""
    graph = {name: sorted(imported_by(name, path, modules)) for name, path in modules.items()}
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = lowest[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                lowest[module] = min(lowest[module], lowest[target])
            elif target in on_stack:
                lowest[module] = min(lowest[module], index[target])
        if lowest[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return sorted(circles)


def test_no_module_of_the_library_imports_itself_in_a_circle() -> None:
    """DESIGN.md: no import circles. Counted: every import that runs, a deferred one inside a
    function too (deferring an import is how a circle hides). Not counted: imports under
    ``if TYPE_CHECKING:``, which never run (annotations are strings here); they let a helper
    module name the type of the object that calls it (``flask/routes.py`` names the
    ``ResourceServer`` of the package that imports it), and mypy follows such circles."""
    modules = module_files(ROOT, LAYERED)
    assert {"policy.decision", "resource_server.guard", "resource_server.flask"} <= set(modules)
    assert import_circles(modules) == []


def test_the_circle_finder_sees_deferred_and_relative_imports_not_type_checking_ones(
    tmp_path: Path,
) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .a import A\n",
        "a.py": "A = 1\ndef later():\n    from .sub import b\n",
        "sub/__init__.py": "",
        "sub/b.py": "from .. import a\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .c import C\n",
        "sub/c.py": "import pkg.sub.b\n",
        "d.py": "try:\n    import pkg.e\nexcept ImportError:\n    pass\n",
        "e.py": "from pkg import d\n",
    }
    for name, text in files.items():
        (package / name).write_text(text, encoding="utf-8")
    modules = module_files(tmp_path, ("pkg",))
    assert imported_by("pkg.sub.b", modules["pkg.sub.b"], modules) == {"pkg.a"}
    assert import_circles(modules) == [["pkg.a", "pkg.sub.b"], ["pkg.d", "pkg.e"]]
