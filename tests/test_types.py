"""The packages type-check, for us and for the applications that use them.

* ``mypy`` (pinned in the ``test`` extra) checks ``policy`` and ``resource_server`` with the
  ``[tool.mypy]`` settings of pyproject.toml: ``strict``. Any error fails the suite, so CI fails
  on a type error. Each ``type: ignore`` left in them names its error code and says why on its
  own line.
* A user's ``mypy --strict`` passes over the Python blocks of README.md and docs/*.md, every one
  that runs (tests/test_docs.py extracts them; ``skip`` blocks, partial on purpose, are left
  out). They are checked as an application's own code is: plain ``--strict``, nothing relaxed.
  So the library's types must let idiomatic code through (a protected view keeps its signature,
  ``current_access`` is a ``policy.Access``, ``membership`` may be a coroutine function where
  an adapter awaits it), and the examples carry the annotations strict mode asks of any code:
  typed functions, typed empty containers.
* A wheel built from the tree carries ``py.typed`` in both packages (PEP 561): without it, a
  user's type checker sees every name imported from them as ``Any``.

mypy's checks change between releases, and so do the stubs it reads Django's and DRF's types
from (django-stubs and djangorestframework-stubs, without their plugins: those set Django up
from a settings module, which a library has none of), so a mypy or stubs other than the pinned
ones skip these tests (and fail them under CI, which installs the pins). Its cache lives in
pytest's cache directory: a first run takes about 15 s on a 2-core machine, a run after it
checks only what changed.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.test_docs import BLOCKS

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("policy", "resource_server")
# Each ``# type: ignore`` names its codes and is followed by a reason: ``# type: ignore[code]  # why``.
_IGNORE = re.compile(r"#\s*type:\s*ignore")
_EXPLAINED_IGNORE = re.compile(r"#\s*type:\s*ignore\[[a-z-]+(?:,\s*[a-z-]+)*\]  # \S")


#: What the checks' outcome depends on, each pinned exactly in the test extra: mypy, and the
#: stubs it reads Django's and DRF's types from (a new release of either brings new errors).
PINNED = ("mypy", "django-stubs", "djangorestframework-stubs")


def _pins() -> dict[str, str]:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = [req.partition("==") for req in extras["optional-dependencies"]["test"]]
    found = {name: version for name, equals, version in pins if equals and name in PINNED}
    assert sorted(found) == sorted(PINNED), f"the test extra pins each of {PINNED} exactly (name==X.Y.Z)"
    return found


def _unusable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def mypy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The command that runs the pinned mypy, with its cache kept between runs."""
    for name, pinned in _pins().items():
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            installed = None
        if installed != pinned:
            found = "is not installed" if installed is None else f"{installed} is installed"
            _unusable(
                f"{name} {pinned} is pinned but {found}: pip install -e '.[test]' (or {name}=={pinned})"
            )
    cache = getattr(request.config, "cache", None)  # None with -p no:cacheprovider
    directory = cache.mkdir("mypy") if cache is not None else tmp_path_factory.mktemp("mypy-cache")
    return [sys.executable, "-m", "mypy", "--cache-dir", str(directory)]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    # MYPYPATH: this tree's packages, whatever else is installed (an editable install elsewhere).
    env = {**os.environ, "MYPYPATH": str(ROOT)}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_the_packages_pass_mypy_strict(mypy: list[str]) -> None:
    result = _run(mypy)  # what to check, and how strictly: [tool.mypy] in pyproject.toml
    assert result.returncode == 0, f"mypy found errors:\n{result.stdout}{result.stderr}"
    assert result.stdout.startswith("Success: no issues found")


def test_mypy_is_configured_strict_on_both_packages() -> None:
    """The suite's check is as strict as the issue says: no option turned off behind its back."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mypy"]
    assert config["strict"] is True
    assert tuple(config["packages"]) == PACKAGES
    relaxed = {k: v for k, v in config.items() if k.startswith(("allow_", "ignore_")) or v is False}
    assert relaxed == {}
    assert "overrides" not in config  # every library the packages import ships its types
    assert "plugins" not in config  # the stubs alone: the django-stubs plugin sets Django up


def test_every_type_ignore_names_its_code_and_says_why() -> None:
    unexplained = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if _IGNORE.search(line) and not _EXPLAINED_IGNORE.search(line)
    ]
    assert unexplained == []


def test_the_documented_examples_pass_a_users_mypy_strict(mypy: list[str], tmp_path: Path) -> None:
    checked = [block for block in BLOCKS if block.mode != "skip"]
    assert len(checked) >= 30  # the README's quick start and every runnable docs/ example
    files = {}
    for block in checked:
        name = re.sub(r"\W", "_", block.id) + ".py"
        # Line numbers in mypy's messages are the document's, as in tests/test_docs.py.
        (tmp_path / name).write_text("\n" * block.line + block.code, encoding="utf-8")
        files[name] = str(block.path.relative_to(ROOT))
    # An application's own configuration, as strict as it gets; not this project's.
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nstrict = True\npython_version = 3.11\n", encoding="utf-8")
    result = _run([*mypy, "--config-file", str(config), *(str(tmp_path / name) for name in files)])
    output = result.stdout + result.stderr
    for name, document in files.items():
        output = output.replace(f"{tmp_path / name}:", f"{document}:")
    assert result.returncode == 0, f"a user's mypy --strict fails on the documented examples:\n{output}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built by pip (in an isolated build environment, as a user's build is) from a copy
    of what the build reads, so that the tree gets no build/ or egg-info of its own."""
    if importlib.util.find_spec("pip") is None:
        _unusable("pip is not installed: it builds the wheel")
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}{result.stderr}"
    (built,) = out.glob("scoped_resource_server-*.whl")
    return built


def test_the_wheel_ships_py_typed_in_both_packages(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"{package}/py.typed" for package in PACKAGES} <= names
