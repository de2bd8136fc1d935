"""The Django test project, configured once for the session (Django's settings are process-global).

``DJANGO_SETTINGS_MODULE`` is this directory's settings module and ``django.setup()`` runs when
this directory is collected; the settings leave logging alone (``LOGGING_CONFIG = None``), so the
rest of the suite runs as it would without Django. The database is a SQLite file in a fresh
directory, migrated and seeded once; the servers the tests start (gunicorn in another process,
uvicorn in a thread) use the same file, key and settings through the environment.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_BASE = Path(tempfile.mkdtemp(prefix="rs-django-"))
os.environ["RS_TEST_DJANGO_DB"] = str(_BASE / "db.sqlite3")
# PostgreSQL (the grants store's concurrency test) listens on a Unix socket in this directory,
# once a test asks for it: short, as a socket path must be.
_PG_BASE = Path(tempfile.mkdtemp(prefix="rs-pg-"))
os.environ["RS_TEST_DJANGO_PG"] = str(_PG_BASE)
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.django.settings"
for _made in (_BASE, _PG_BASE):  # also when every test here is deselected
    atexit.register(shutil.rmtree, _made, ignore_errors=True)

import django  # noqa: E402

import tests.django.project.keys  # noqa: E402,F401  (the signing key, in the environment for servers)

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

PASSWORD = "correct horse battery staple"
USERS = ("user-1", "user-2", "user-3")
MEMBERS = {("user-1", "acme"): "admin", ("user-2", "acme"): "member", ("user-1", "globex"): "member"}


@pytest.fixture(scope="session", autouse=True)
def django_database() -> Iterator[None]:
    """The project's tables and its people: three users, their roles in acme and globex."""
    from tests.django.project.models import Membership

    call_command("migrate", verbosity=0)
    for name in USERS:
        get_user_model().objects.create_user(name, password=PASSWORD)
    for (subject, org), role in MEMBERS.items():
        Membership.objects.create(subject=subject, org=org, role=role)
    yield
    from django.db import connections

    connections.close_all()
    shutil.rmtree(_BASE, ignore_errors=True)
    shutil.rmtree(_PG_BASE, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_alias() -> Iterator[str]:
    """A throwaway PostgreSQL server behind the ``postgres`` database alias, migrated; skipped
    with an install hint where the server binaries are missing (a failure under ``CI``)."""
    from django.db import connections

    from tests.resource_server.test_grants import PG_MISSING, PG_PORT, find_pg_ctl

    pg_ctl = find_pg_ctl()
    if pg_ctl is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {PG_MISSING}")
        pytest.skip(PG_MISSING)
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        account = pwd.getpwnam("postgres")
        os.chown(_PG_BASE, account.pw_uid, account.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = _PG_BASE / "data"

    def run(*args: object) -> None:
        subprocess.run([*prefix, *map(str, args)], check=True, capture_output=True)

    run(pg_ctl.parent / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    options = f"-p {PG_PORT} -k {_PG_BASE} -c listen_addresses='' -c fsync=off -c max_connections=200"
    run(pg_ctl, "start", "-w", "-D", data, "-l", _PG_BASE / "server.log", "-o", options)
    try:
        run(pg_ctl.parent / "createdb", "-h", _PG_BASE, "-p", PG_PORT, "-U", "postgres", "grants")
        call_command("migrate", database="postgres", verbosity=0)
        yield "postgres"
    finally:
        connections.close_all()
        run(pg_ctl, "stop", "-m", "fast", "-D", data)
        shutil.rmtree(_PG_BASE, ignore_errors=True)
