"""``pip install scoped-resource-server`` is the core: the policy engine, token verification, DPoP,
the guard and the WSGI middleware, with PyJWT, cryptography, urllib3 and Werkzeug. Frameworks,
stores and HTTP client libraries are extras, imported only by their adapters, and ``import
resource_server`` loads none of them, nor Werkzeug's server and test modules (the WSGI code
imports Werkzeug on first use), nor urllib3 until a verifier builds its HTTP client.

Checked three ways: in a fresh interpreter (what importing loads); statically (what each module
imports against what pyproject.toml declares for it); and for real, by installing the package
with no extras into a fresh virtual environment and running the WSGI middleware there.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import resource_server

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
DISTRIBUTION = canonicalize_name(PROJECT["name"])

#: What ``import resource_server`` must not load (issue 20): frameworks, stores, HTTP clients,
#: and the development server and test client Werkzeug's package imports.
FRAMEWORKS = (
    "flask",
    "werkzeug.serving",
    "werkzeug.test",
    "http.server",
    "sqlalchemy",
    "alembic",
    "starlette",
    "fastapi",
    "mcp",
    "fastmcp",
    "redis",
    "httpx",
    "httpx2",
    "requests",
)
#: Core dependencies loaded on first use, for the import time: Werkzeug by the first WSGI body
#: read or ``import resource_server.wsgi``, urllib3 by the first HTTP client a verifier builds,
#: importlib.metadata by the first read of ``__version__``.
ON_FIRST_USE = ("werkzeug", "urllib3", "importlib.metadata")

#: The adapters and the extra each needs; every other module is the core.
EXTRA_OF = {
    "resource_server.flask": "flask",
    "resource_server.asgi": "asgi",
    "resource_server.fastapi": "fastapi",
    "resource_server.mcp.fastmcp": "fastmcp",  # before the package's own: the longer prefix
    "resource_server.mcp": "mcp",
    "resource_server.grants": "grants",
    "resource_server.migrations": "grants",  # Alembic's scripts, run by resource_server.grants.upgrade
    "resource_server.django.spectacular": "spectacular",  # before the package's own: the longer prefix
    "resource_server.django": "django",
}
#: The distributions the pytest plugin (an entry point) needs: pytest loads it, so pytest is there
#: whenever it is imported.
PLUGIN_NEEDS = {"resource_server.testing": {"pytest"}}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(module_name(path) for path in (ROOT / "resource_server").rglob("*.py"))


def extra_of(module: str) -> str | None:
    for prefix, extra in EXTRA_OF.items():
        if module == prefix or module.startswith(prefix + "."):
            return extra
    return None


def python(code: str) -> str:
    """The standard output of ``code`` run in a fresh interpreter, in this tree."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def loaded_by(statement: str) -> set[str]:
    """The modules ``statement`` adds to those a fresh interpreter starts with."""
    code = "import sys; before = set(sys.modules)\n{}\nprint(*sorted(set(sys.modules) - before))"
    return set(python(code.format(statement)).split())


# -- what importing loads ------------------------------------------------------------------------


@pytest.mark.parametrize("statement", ["import resource_server", "from resource_server import JWTVerifier"])
def test_importing_the_core_loads_no_framework_store_or_client(statement: str) -> None:
    loaded = loaded_by(statement)
    assert "resource_server.tokens.jwt" in loaded  # the statement did import the core
    assert [name for name in FRAMEWORKS if name in loaded] == []
    assert [name for name in ON_FIRST_USE if name in loaded] == []


def test_the_version_is_the_installed_distributions() -> None:
    """One source of truth: the package metadata, which pyproject.toml's version becomes."""
    assert resource_server.__version__ == importlib.metadata.version(DISTRIBUTION)
    Version(resource_server.__version__)  # PEP 440
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        resource_server.nonexistent  # noqa: B018 (the module __getattr__ answers only __version__)


def test_a_tree_that_was_never_installed_has_no_version() -> None:
    """With no metadata to read (the distribution's directory no longer on ``sys.path``),
    ``__version__`` is an AttributeError saying why, so ``getattr(module, "__version__", None)``
    answers None rather than raising."""
    code = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        import resource_server
        sys.path[:] = [p for p in sys.path if not any(Path(p or ".").glob("scoped_resource_server[-.]*info"))]
        print(getattr(resource_server, "__version__", None))
        try:
            resource_server.__version__
        except AttributeError as exc:
            print(exc)
        """
    )
    none, message = python(code).splitlines()
    assert none == "None"
    assert message == (
        "module 'resource_server' has no attribute '__version__': "
        "the scoped-resource-server distribution is not installed"
    )


def included_extras(extra: str) -> set[str]:
    """The extras ``extra`` includes (``scoped-resource-server[other]`` among its requirements)."""
    found = set()
    for requirement in PROJECT["optional-dependencies"][extra]:
        name, _, rest = requirement.partition("[")
        if canonicalize_name(name) == "scoped-resource-server":
            found |= set(rest.rstrip("]").split(","))
    return found


def extra_distributions() -> set[str]:
    """The distributions an extra installs directly and the core does not."""
    extras = set().union(*(requirements(extra) for extra in PROJECT["optional-dependencies"]))
    return extras - requirements(None)


def extras_only() -> list[str]:
    """The top-level packages of :func:`extra_distributions` (the pytest plugin's own needs
    left out): what a plain install lacks."""
    extras = extra_distributions() - set().union(*PLUGIN_NEEDS.values())
    return sorted(
        package
        for package, names in importlib.metadata.packages_distributions().items()
        if {canonicalize_name(name) for name in names} & extras
    )


def test_every_module_imports_without_extras_or_names_the_extra_it_needs() -> None:
    """Each module, imported with no extra installed (``sys.modules[name] = None`` makes
    ``import name`` fail as it does when the package is missing): the core imports, and each
    adapter, every module of an adapter package included, names the extra to install."""
    importable = [module for module in MODULES if not module.startswith("resource_server.migrations")]
    code = textwrap.dedent(
        f"""
        import importlib, json, sys
        for name in {extras_only()!r}:
            sys.modules[name] = None
        said = {{}}
        for module in {importable!r}:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                said[module] = f"{{type(exc).__name__}}: {{exc}}"
            else:
                said[module] = "done"
        print(json.dumps(said))
        """
    )
    said = json.loads(python(code))
    for module in importable:
        extra = extra_of(module)
        if extra is None:
            assert said[module] == "done", f"{module} needs an extra to be imported: {said[module]}"
        else:
            assert said[module].startswith("ImportError: ")
            # The extra itself, or one it includes whose package the parent package imports first
            # (resource_server.django.spectacular, with Django missing too, names django).
            named = {extra, *included_extras(extra)}
            assert any(
                said[module].endswith(f", which is not installed: pip install 'scoped-resource-server[{name}]'")
                for name in named
            ), said[module]


# -- what each module imports, against what pyproject.toml declares -----------------------------


def requirements(extra: str | None) -> set[str]:
    """The distributions the core, plus ``extra`` when given, installs directly (the extra's
    references to this package's other extras followed)."""
    found = {canonicalize_name(Requirement(line).name) for line in PROJECT["dependencies"]}
    pending = [extra] if extra else []
    while pending:
        for line in PROJECT["optional-dependencies"][pending.pop()]:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == DISTRIBUTION:
                pending.extend(requirement.extras)
            else:
                found.add(canonicalize_name(requirement.name))
    return found


def imported_on_import(path: Path) -> set[str]:
    """Top-level packages a module needs to be imported: its module-level imports, and those in
    a module-level ``try`` whose handler raises :func:`~resource_server.checks.missing_extra`
    (the adapter's extra provides them). Imports in functions, under ``if`` (``TYPE_CHECKING``)
    or in a ``try`` that falls back to something else are lazy or optional by construction."""
    names: set[str] = set()
    statements = list(ast.parse(path.read_text(encoding="utf-8")).body)
    for node in statements:
        if isinstance(node, ast.Try) and any(
            isinstance(name, ast.Name) and name.id == "missing_extra"
            for handler in node.handlers
            for name in ast.walk(handler)
        ):
            statements.extend(node.body)
        elif isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names - sys.stdlib_module_names - {"__future__", "policy", "resource_server"}


def distributions_of(package: str) -> set[str]:
    return {canonicalize_name(name) for name in importlib.metadata.packages_distributions().get(package, [])}


@pytest.mark.parametrize("path", sorted((ROOT / "resource_server").rglob("*.py")), ids=module_name)
def test_each_module_imports_only_what_the_core_or_its_extra_installs(path: Path) -> None:
    module = module_name(path)
    installed = requirements(extra_of(module)) | PLUGIN_NEEDS.get(module, set())
    for package in sorted(imported_on_import(path)):
        assert distributions_of(package) & installed, (
            f"{module} imports {package} when imported, which "
            + (f"the {extra_of(module)!r} extra" if extra_of(module) else "the core")
            + " does not install: declare it there, or import it where it is used"
        )


# -- a plain install, for real --------------------------------------------------------------------

QUICK_START = """
import json
import sys

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

import resource_server
from policy import Roles
from resource_server import JWTVerifier
from resource_server.wsgi import BearerMiddleware

NOW = 1_900_000_000
key = ec.generate_private_key(ec.SECP256R1())
jwk = {**json.loads(ECAlgorithm.to_jwk(key.public_key())), "kid": "k1", "use": "sig", "alg": "ES256"}
verifier = JWTVerifier(
    issuer="https://login.example.com",
    audience="https://api.example.com",
    jwks={"keys": [jwk]},
    clock=lambda: NOW,
)
MEMBERS = {("user-1", "acme"): "member"}


def projects(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"projects of {environ['resource_server.access'].org}".encode()]


app = BearerMiddleware(
    projects,
    verifier=verifier,
    roles=Roles({"member": ["project:read"], "admin": ["project:read", "project:write"]}),
    membership=lambda subject, org: MEMBERS.get((subject, org)),
    routes={"/orgs/<org>/projects": {"GET": "project:read", "POST": "project:write"}},
)


def call(method, token=None):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": "/orgs/acme/projects", "SCRIPT_NAME": "",
               "SERVER_NAME": "api.example.com", "SERVER_PORT": "443", "HTTP_HOST": "api.example.com",
               "wsgi.url_scheme": "https"}
    if token:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    answer = {}
    body = b"".join(app(environ, lambda status, headers, exc_info=None: answer.update(status=status)))
    return answer["status"], body.decode()


claims = {"iss": "https://login.example.com", "aud": "https://api.example.com", "sub": "user-1",
          "client_id": "app", "iat": NOW, "exp": NOW + 300, "jti": "t1", "scope": "project:read"}
token = jwt.encode(claims, key, "ES256", headers={"kid": "k1", "typ": "at+jwt"})
print(call("GET")[0])
print(*call("GET", token))
print(call("POST", token)[0])
print(resource_server.__version__)
remote = JWTVerifier(issuer="https://login.example.com", audience="https://api.example.com",
                     jwks_uri="https://login.example.com/jwks.json")  # builds its client: urllib3
print(sorted(name for name in ("urllib3", "werkzeug") if name in sys.modules))
try:
    import resource_server.flask
except ImportError as exc:
    print(exc)
"""


def test_a_plain_install_runs_the_wsgi_middleware(tmp_path: Path) -> None:
    """pip installs the package with no extras (from this tree, through the configured index:
    about 10 s) into a fresh virtual environment; the middleware protects a WSGI app there, and
    none of the extras' distributions was installed."""
    # A copy of what the build reads: building in this tree would leave an .egg-info here,
    # which importlib.metadata would then find ahead of the installed distribution.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("policy", "resource_server"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    install = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", str(source)],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr

    # Run from tmp_path without PYTHONPATH: the installed copy is imported, not this tree.
    out = subprocess.run(
        [str(bin_dir / "python"), "-c", QUICK_START],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "401 Unauthorized",
        "200 OK projects of acme",
        "403 Forbidden",
        PROJECT["version"],
        "['urllib3', 'werkzeug']",
        "resource_server.flask needs flask, which is not installed: "
        "pip install 'scoped-resource-server[flask]'",
    ]

    listed = subprocess.run(
        [
            str(bin_dir / "python"),
            "-c",
            "import importlib.metadata as m; print(*(d.name for d in m.distributions()))",
        ],
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    installed = {canonicalize_name(name) for name in listed.stdout.split()}
    assert installed & extra_distributions() == set()
