"""Each adapter imported without its optional dependencies says which extra to install, checked in
a fresh interpreter where the dependency is blocked (``sys.modules[name] = None`` makes ``import``
fail as it does when the package is not installed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Werkzeug is left out: the core reads WSGI bodies with it (resource_server.bodies).
OPTIONAL = (
    "flask",
    "click",
    "starlette",
    "fastapi",
    "mcp",
    "fastmcp",
    "sqlalchemy",
    "alembic",
    "redis",
    "httpx",
    "httpx2",
)


def attempt(blocked: tuple[str, ...], statement: str) -> str:
    """What ``statement`` raises (its type and message), or "done", with ``blocked`` missing."""
    code = "\n".join(
        [
            "import sys",
            *(f"sys.modules[{name!r}] = None" for name in blocked),
            "try:",
            f"    {statement}",
            "except ImportError as exc:",
            "    print(f'{type(exc).__name__}: {exc}')",
            "else:",
            "    print('done')",
        ]
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("blocked", "statement", "message"),
    [
        (("flask",), "import resource_server.flask", "resource_server.flask needs flask"),
        (("starlette",), "import resource_server.asgi", "resource_server.asgi needs starlette"),
        (("fastapi",), "import resource_server.fastapi", "resource_server.fastapi needs fastapi"),
        (("mcp",), "import resource_server.mcp", "resource_server.mcp needs mcp"),
        (("fastmcp",), "import resource_server.mcp.fastmcp", "resource_server.mcp.fastmcp needs fastmcp"),
        (("sqlalchemy",), "import resource_server.grants", "resource_server.grants needs sqlalchemy"),
        (
            ("alembic",),
            "from resource_server.grants import upgrade; upgrade('sqlite://')",
            "resource_server.grants.upgrade needs alembic",
        ),
        (
            ("redis",),
            "from resource_server.state import RedisReplayCache; RedisReplayCache('redis://127.0.0.1:9')",
            "RedisReplayCache needs redis",
        ),
    ],
    ids=lambda value: value[0] if isinstance(value, tuple) else None,
)
def test_an_adapter_without_its_extra_names_the_extra(
    blocked: tuple[str, ...], statement: str, message: str
) -> None:
    extra = {
        "flask": "flask",
        "starlette": "asgi",
        "fastapi": "fastapi",
        "mcp": "mcp",
        "fastmcp": "fastmcp",
        "sqlalchemy": "grants",
        "alembic": "grants",
        "redis": "redis",
    }[blocked[0]]
    assert attempt(blocked, statement) == (
        f"ImportError: {message}, which is not installed: pip install 'scoped-resource-server[{extra}]'"
    )


@pytest.mark.parametrize(
    ("blocked", "name", "library"),
    [
        (("httpx", "httpx2"), "StepUpAuth", "httpx2 or httpx, neither is installed"),
        (("requests",), "RequestsStepUpAuth", "requests, which is not installed"),
    ],
)
def test_a_client_adapter_without_its_library_names_the_client_extra(
    blocked: tuple[str, ...], name: str, library: str
) -> None:
    said = attempt(blocked, f"from resource_server.client import {name}")
    assert said.startswith(f"ImportError: {name} needs {library}: ")
    assert "pip install 'scoped-resource-server[client]'" in said


def test_the_core_and_its_start_up_checks_need_no_extra() -> None:
    statement = (
        "import resource_server, resource_server.checks, resource_server.openapi, resource_server.guard,"
        " resource_server.wsgi"
    )
    assert attempt(OPTIONAL, statement) == "done"
