"""The documentation site builds, strictly, and documents every public name.

``mkdocs build --strict`` (mkdocs.yml) fails on a broken link or anchor, a page missing from the
navigation, a README section the home page includes that is gone, a cross-reference that does
not resolve, and a ``::: module`` the reference cannot render. Without the ``docs`` extra this
skips with the command that installs it; under ``CI`` it fails instead, because CI installs the
``test`` extra, which includes ``docs``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = Path(__file__).with_name("api_snapshot.txt")
BUILDERS = (
    "mkdocs",
    "material",
    "mkdocstrings",
    "mkdocstrings_handlers.python",
    "mkdocs_include_markdown_plugin",
)
INSTALL = "pip install -e '.[docs]'"
_EXTRAS = re.compile(r"(?:scoped-resource-server|'\.)\[([a-z0-9_, -]+)\]")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [name for name in BUILDERS if not _installed(name)]
    if missing:
        reason = f"the docs extra is not installed ({', '.join(missing)} missing): {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}")
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},  # Material's banner about MkDocs 2
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


def test_the_site_builds_strictly(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "reference" / "flask" / "index.html").is_file()


def test_the_reference_documents_every_public_name(site: Path) -> None:
    """Each ``module: name`` of the API snapshot has its entry (an anchor ``module.name``) on a
    page of the reference: a name a reader cannot find is not really public."""
    pages = "".join(page.read_text(encoding="utf-8") for page in (site / "reference").rglob("*.html"))
    entries = [line for line in SNAPSHOT.read_text(encoding="utf-8").splitlines() if line[:1].isalpha()]
    assert len(entries) > 100
    anchors = {entry: 'id="{}.{}"'.format(*entry.split(": ")) for entry in entries}
    assert [entry for entry, anchor in anchors.items() if anchor not in pages] == []


def test_the_home_page_includes_the_readme(site: Path) -> None:
    """The quick start and the status table come from README.md, not from a copy that drifts."""
    home = (site / "index.html").read_text(encoding="utf-8")
    assert 'id="quick-start"' in home and 'id="status-and-header-contract"' in home
    assert "MEMBERS" in home and "insufficient_scope" in home  # the quick start's code, the table


def test_the_extras_the_docs_name_exist() -> None:
    """Every extra that the README and docs/ tell users to install
    (``scoped-resource-server[extra]``, ``'.[extra]'``) is one of pyproject.toml."""
    extras = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
            "optional-dependencies"
        ]
    )
    named = {
        extra.strip()
        for page in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
        for listed in _EXTRAS.findall(page.read_text(encoding="utf-8"))
        for extra in listed.split(",")
    }
    assert {"docs", "test", "flask"} <= named  # guards the extraction itself
    assert sorted(named - extras) == []
