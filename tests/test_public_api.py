"""The public API, listed: every name in the ``__all__`` of every public module, against the
committed snapshot ``tests/api_snapshot.txt``, so that adding, removing or renaming a public name
is a deliberate change a reviewer sees in the snapshot's diff (docs/api-policy.md). After such a
change, regenerate the snapshot with the test extra installed and commit it with the change::

    UPDATE_API_SNAPSHOT=1 python -m pytest tests/test_public_api.py

The same modules must each have a reference page (``::: module`` in docs/reference/) and be named
in docs/api-policy.md, and the imports the README and docs/ teach must be public names.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
from pathlib import Path

import pytest

from tests.test_docs import BLOCKS

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = Path(__file__).with_name("api_snapshot.txt")
UPDATE = "UPDATE_API_SNAPSHOT"
REGENERATE = f"{UPDATE}=1 python -m pytest tests/test_public_api.py"

#: The modules an application imports (docs/api-policy.md): the packages, the adapters, and the
#: shared core that adapter authors build on. Every other module is internal.
PUBLIC_MODULES = (
    "policy",
    "resource_server",
    "resource_server.async_guard",
    "resource_server.asgi",
    "resource_server.bodies",
    "resource_server.capability",
    "resource_server.checks",
    "resource_server.client",
    "resource_server.credentials",
    "resource_server.denials",
    "resource_server.django",
    "resource_server.django.grants",
    "resource_server.django.middleware",
    "resource_server.django.rest_framework",
    "resource_server.django.urls",
    "resource_server.dpop",
    "resource_server.fastapi",
    "resource_server.flask",
    "resource_server.flask.agents",
    "resource_server.grants",
    "resource_server.guard",
    "resource_server.mcp",
    "resource_server.mcp.fastmcp",
    "resource_server.metadata",
    "resource_server.openapi",
    "resource_server.passthrough",
    "resource_server.resource_tokens",
    "resource_server.state",
    "resource_server.telemetry",
    "resource_server.testing",
    "resource_server.tokens",
    "resource_server.tokens.claims",
    "resource_server.tokens.introspection",
    "resource_server.viewer_context",
    "resource_server.wsgi",
)

_HEADER = f"""\
# The public API: every name in the __all__ of each public module, one "module: name" a line,
# sorted. tests/test_public_api.py compares it with the code. Regenerate it, after a deliberate
# change and with the test extra installed, with:
#   {REGENERATE}
"""


def exported(module_name: str) -> list[str]:
    return list(importlib.import_module(module_name).__all__)


def public_api() -> list[str]:
    entries = sorted((module, name) for module in PUBLIC_MODULES for name in exported(module))
    return [f"{module}: {name}" for module, name in entries]


def recorded_api() -> list[str]:
    lines = SNAPSHOT.read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def test_the_public_api_is_the_snapshot() -> None:
    current = public_api()
    if os.environ.get(UPDATE) == "1":
        if os.environ.get("CI"):
            pytest.fail(f"{UPDATE} is set under CI: regenerate the snapshot locally and commit it")
        SNAPSHOT.write_text(_HEADER + "".join(f"{line}\n" for line in current), encoding="utf-8")
        return
    recorded = recorded_api()
    added = sorted(set(current) - set(recorded))
    removed = sorted(set(recorded) - set(current))
    assert not added and not removed, (
        "The public API differs from tests/api_snapshot.txt.\n"
        + "".join(f"  + {line}\n" for line in added)
        + "".join(f"  - {line}\n" for line in removed)
        + "A removal or rename breaks users' imports: deprecate first (docs/api-policy.md). If the"
        + f" change is deliberate, regenerate the snapshot and commit it with the change:\n  {REGENERATE}"
    )
    assert recorded == sorted(recorded, key=lambda line: tuple(line.split(": "))), "keep the snapshot sorted"


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_exported_name_exists_once(module_name: str) -> None:
    module = importlib.import_module(module_name)
    names = exported(module_name)
    assert len(names) == len(set(names)), f"{module_name}.__all__ names something twice"
    assert [name for name in names if not hasattr(module, name)] == []


def test_every_public_module_has_a_reference_page() -> None:
    directive = re.compile(r"^::: ([\w.]+)$", re.MULTILINE)
    documented = {
        name
        for page in (ROOT / "docs" / "reference").glob("*.md")
        for name in directive.findall(page.read_text(encoding="utf-8"))
    }
    assert sorted(set(PUBLIC_MODULES) - documented) == [], "add a `::: module` to a page of docs/reference/"
    assert sorted(documented - set(PUBLIC_MODULES)) == [], "the reference documents only public modules"


def test_the_api_policy_lists_every_public_module() -> None:
    policy = (ROOT / "docs" / "api-policy.md").read_text(encoding="utf-8")
    assert [name for name in PUBLIC_MODULES if f"`{name}`" not in policy] == []


def documented_imports() -> list[tuple[str, str, str | None]]:
    """(where, module, name) for every import of ``policy`` or ``resource_server`` in the Python
    blocks of README.md and docs/*.md; name is None for ``import module``."""
    found: list[tuple[str, str, str | None]] = []
    for block in BLOCKS:
        for node in ast.walk(ast.parse(block.code)):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.extend((block.id, node.module, alias.name) for alias in node.names)
            elif isinstance(node, ast.Import):
                found.extend((block.id, alias.name, None) for alias in node.names)
    return [entry for entry in found if entry[1].split(".")[0] in {"policy", "resource_server"}]


def test_the_docs_import_only_public_names() -> None:
    """What the README and docs/ teach users to import is public: moving it is a breaking change."""
    imports = documented_imports()
    assert len(imports) > 50  # guards the extraction itself
    private = [
        f"{where}: {module}" + (f" import {name}" if name else "")
        for where, module, name in imports
        if module not in PUBLIC_MODULES or (name is not None and name not in exported(module))
    ]
    assert private == [], "the docs import what is not public: make it public or import it elsewhere"
