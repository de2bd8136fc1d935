"""The declared dependencies (PEP 621 ``[project]`` in pyproject.toml) match what the code imports
and what is installed: a module imported unconditionally must be declared itself, not reached
through another package's dependencies, and the installed versions meet the declared floors."""

from __future__ import annotations

import ast
import sys
import tomllib
from importlib.metadata import packages_distributions, version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

import resource_server

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
REQUIRED = [Requirement(line) for line in PROJECT["dependencies"]]
OPTIONAL = [Requirement(line) for lines in PROJECT["optional-dependencies"].values() for line in lines]
OUR_PACKAGES = {"policy", "resource_server", "__future__"}


def unconditional_imports(path: Path) -> set[str]:
    """Top-level names a module imports in its own body: what importing it needs. Imports inside
    ``try``, ``if`` or functions are optional or lazy by construction and are left out."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names - sys.stdlib_module_names - OUR_PACKAGES


def distributions_of(module: str) -> set[str]:
    return {canonicalize_name(name) for name in packages_distributions().get(module, [])}


MODULES = sorted(Path(resource_server.__file__).parent.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_unconditional_import_is_declared_directly(path: Path) -> None:
    declared = {canonicalize_name(r.name) for r in REQUIRED + OPTIONAL}
    for module in unconditional_imports(path):
        distributions = distributions_of(module)
        assert distributions, f"{module} (imported by {path.name}) is not installed"
        assert distributions & declared, (
            f"{path.name} imports {module}, which pyproject.toml does not declare"
        )


@pytest.mark.parametrize("requirement", REQUIRED, ids=str)
def test_the_installed_versions_meet_the_declared_floors(requirement: Requirement) -> None:
    assert requirement.specifier.contains(version(requirement.name), prereleases=True)


def test_pyjwt_is_recent_enough_for_the_protections_others_rely_on() -> None:
    """PyJWT 2.12 made ``crit`` checked (CVE-2026-32597) and 2.14 stopped ``PyJWKClient``
    following redirects (CVE-2026-102267). This package fetches keys itself
    (resource_server.tokens.http) and never calls ``jwt.decode``, but an application that uses
    PyJWT next to it should not be held on a vulnerable version by our floor."""
    (pyjwt,) = (r for r in REQUIRED if canonicalize_name(r.name) == "pyjwt")
    assert "crypto" in pyjwt.extras
    assert not pyjwt.specifier.contains("2.13.0") and pyjwt.specifier.contains("2.14.0")
