"""Approval grants on SQLite (a file database) and on a real PostgreSQL server started here."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, event, func, inspect, select

from policy import InvalidScope
from resource_server.grants import MAX_TTL, Grant, GrantStore, grants_table, upgrade

KEY = {"org": "acme", "subject": "user-1", "session_id": "sess-1"}
PG_MISSING = "PostgreSQL server binaries not found; install them with: apt-get install postgresql"


class Clock:
    """An injectable clock: tests move time forward instead of sleeping."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def find_pg_ctl() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve()
    # Debian installs the server binaries off PATH, one directory per major version.
    candidates = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    candidates.sort(key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return Path(candidates[-1]) if candidates else None


#: The server listens on a Unix socket in its own fresh directory and on no TCP port at all, so
#: this port number only names the socket file: it can never be taken by another process.
PG_PORT = 5432


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A throwaway PostgreSQL server, superuser ``postgres`` with trust auth, reached through a Unix
    socket; yields the socket's directory (libpq's ``host`` for a socket).

    initdb and postgres refuse to run as root, so as root the server runs as the ``postgres``
    OS user (which the Debian package creates) through runuser.
    """
    pg_ctl = find_pg_ctl()
    if pg_ctl is None:
        if os.environ.get("CI"):  # CI must exercise PostgreSQL, never skip it silently
            pytest.fail(f"CI is set but {PG_MISSING}")
        pytest.skip(PG_MISSING)
    prefix: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="grants-pg-"))
    if os.geteuid() == 0:
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(base)
            pytest.fail("running as root needs a 'postgres' OS user to run the PostgreSQL server")
        os.chown(base, account.pw_uid, account.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data = base / "data"
    run = lambda *args: subprocess.run([*prefix, *map(str, args)], check=True, capture_output=True)  # noqa: E731
    run(pg_ctl.parent / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
    options = f"-p {PG_PORT} -k {base} -c listen_addresses='' -c fsync=off -c max_connections=200"
    run(pg_ctl, "start", "-w", "-D", data, "-l", base / "server.log", "-o", options)
    try:
        yield str(base)
    finally:
        run(pg_ctl, "stop", "-m", "fast", "-D", data)
        shutil.rmtree(base, ignore_errors=True)


_db_names = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database per test: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'grants.db'}"
        return
    from pytest_postgresql.janitor import DatabaseJanitor

    socket_dir = request.getfixturevalue("pg_server")
    dbname = f"grants_{os.getpid()}_{next(_db_names)}"
    with DatabaseJanitor(user="postgres", host=socket_dir, port=PG_PORT, dbname=dbname):
        yield f"postgresql+psycopg://postgres@/{dbname}?host={socket_dir}&port={PG_PORT}"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(db_url: str, clock: Clock) -> Iterator[GrantStore]:
    grants = GrantStore(db_url, clock=clock)
    grants.create_schema()
    yield grants
    grants.engine.dispose()  # the janitor cannot drop a database with open connections


def row_count(grants: GrantStore) -> int:
    with grants.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(grants_table)).scalar_one()


def test_approve_active_revoke_purge_round_trip(store: GrantStore, clock: Clock) -> None:
    grant = store.approve(**KEY, scopes={"docs:write", "docs:read"}, ttl=600)
    assert grant == Grant("acme", "user-1", "sess-1", frozenset({"docs:read", "docs:write"}), clock.now + 600)
    assert store.active_scopes(**KEY) == {"docs:read", "docs:write"}
    assert store.active_scopes(**{**KEY, "session_id": "other"}) == frozenset()
    assert store.revoke(**KEY) is True
    assert store.revoke(**KEY) is False
    assert store.active_scopes(**KEY) == frozenset()

    store.approve(**KEY, scopes=["a"], ttl=10)
    store.approve(**{**KEY, "session_id": "long"}, scopes=["b"], ttl=100)
    clock.now += 10  # expires_at == now: expired, and purged
    assert store.active_scopes(**KEY) == frozenset()
    assert store.purge_expired() == 1
    assert store.purge_expired() == 0
    assert store.active_scopes(**{**KEY, "session_id": "long"}) == {"b"}
    assert row_count(store) == 1


def test_scopes_are_stored_as_a_sorted_scope_string(store: GrantStore) -> None:
    store.approve(**KEY, scopes="z:write a:read m", ttl=60)  # a str is an RFC 6749 §3.3 scope string
    with store.engine.connect() as conn:
        assert conn.execute(select(grants_table.c.scopes)).scalar_one() == "a:read m z:write"


def test_re_approval_merges_scopes_and_keeps_the_later_expiry(store: GrantStore, clock: Clock) -> None:
    store.approve(**KEY, scopes=["read"], ttl=1000)
    clock.now += 100
    grant = store.approve(**KEY, scopes=["write"], ttl=60)  # a shorter ttl does not cut the grant short
    assert grant.scopes == {"read", "write"}
    assert grant.expires_at == clock.now - 100 + 1000
    grant = store.approve(**KEY, scopes=["admin"], ttl=5000)
    assert grant.expires_at == clock.now + 5000
    assert store.active_scopes(**KEY) == {"read", "write", "admin"}
    assert row_count(store) == 1


def test_expired_grant_is_replaced_not_merged(store: GrantStore, clock: Clock) -> None:
    store.approve(**KEY, scopes=["admin"], ttl=60)
    clock.now += 61
    assert store.active_scopes(**KEY) == frozenset()
    grant = store.approve(**KEY, scopes=["read"], ttl=60)
    assert grant.scopes == {"read"}  # the expired "admin" must not come back
    assert store.active_scopes(**KEY) == {"read"}
    assert grant.expires_at == clock.now + 60
    assert row_count(store) == 1


BAD_ARGUMENTS = [
    {"session_id": "s" * 129},
    {"session_id": ""},
    {"session_id": 7},
    {"org": ""},
    {"org": "o" * 256},
    {"subject": None},
    {"subject": "a\x00b"},
    {"scopes": []},
    {"scopes": ["ok", "not ok"]},
    {"scopes": ['quote"d']},
    {"scopes": "two  spaces"},
    {"scopes": [b"bytes"]},
    {"scopes": 42},
    {"ttl": 0},
    {"ttl": -5},
    {"ttl": MAX_TTL + 1},
    {"ttl": 1.5},
    {"ttl": True},
]


@pytest.mark.parametrize(
    "url", ["sqlite:////nonexistent-dir/no/grants.db", "postgresql+psycopg://nobody@127.0.0.1:1/none"]
)
@pytest.mark.parametrize(
    "bad", BAD_ARGUMENTS, ids=lambda bad: f"{next(iter(bad))}={next(iter(bad.values()))!r:.20}"
)
def test_validation_runs_before_any_database_access(url: str, bad: dict) -> None:
    # The database cannot be reached, so a ValueError (not a connection error) proves the order.
    engine = create_engine(url)
    connects: list[object] = []
    event.listen(engine, "connect", lambda *args: connects.append(args))
    grants = GrantStore(engine)
    with pytest.raises(ValueError):
        grants.approve(**{**KEY, "scopes": ["read"], "ttl": 60, **bad})
    assert connects == []


def test_a_valid_call_does_reach_the_unreachable_database(tmp_path: Path) -> None:
    # A directory that surely does not exist (SQLite creates no directories), whatever the machine.
    grants = GrantStore(f"sqlite:///{tmp_path / 'missing' / 'grants.db'}", clock=Clock())
    with pytest.raises(Exception) as caught:
        grants.approve(**KEY, scopes=["read"], ttl=60)
    assert not isinstance(caught.value, ValueError)


def test_invalid_scope_is_reported_as_invalid_scope(store: GrantStore) -> None:
    with pytest.raises(InvalidScope):
        store.approve(**KEY, scopes=["caf\u00e9"], ttl=60)


def test_unsupported_database_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        # A stand-in DBAPI module: the dialect is all GrantStore looks at, and pymysql is not installed.
        GrantStore(
            create_engine("mysql+pymysql://u@127.0.0.1/db", module=SimpleNamespace(paramstyle="format"))
        )


def test_concurrent_approvals_leave_one_row_with_the_union(store: GrantStore) -> None:
    threads_count = 100
    barrier = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    def approve(i: int) -> None:
        try:
            barrier.wait()
            store.approve(**KEY, scopes={f"scope:{i}", "common"}, ttl=600)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=approve, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert row_count(store) == 1
    assert store.active_scopes(**KEY) == {"common"} | {f"scope:{i}" for i in range(threads_count)}


def test_alembic_upgrade_creates_the_table_the_store_uses(db_url: str, clock: Clock) -> None:
    upgrade(db_url)
    upgrade(db_url)  # already at head: a no-op
    grants = GrantStore(db_url, clock=clock)
    try:
        inspector = inspect(grants.engine)
        columns = {c["name"] for c in inspector.get_columns("resource_server_grants")}
        assert columns == {c.name for c in grants_table.columns}
        assert "ix_resource_server_grants_expires_at" in {
            i["name"] for i in inspector.get_indexes("resource_server_grants")
        }
        assert [u["column_names"] for u in inspector.get_unique_constraints("resource_server_grants")] == [
            ["org", "subject", "session_id"]
        ]
        grants.approve(**KEY, scopes=["read"], ttl=60)
        grants.approve(**KEY, scopes=["write"], ttl=60)
        assert grants.active_scopes(**KEY) == {"read", "write"}
    finally:
        grants.engine.dispose()


def test_alembic_upgrade_accepts_an_engine(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'grants.db'}")
    upgrade(engine)
    assert "resource_server_grants" in inspect(engine).get_table_names()


SCOPES = st.frozensets(st.sampled_from(["read", "write", "admin", "docs:read", "docs:write"]), min_size=1)
STEPS = st.lists(st.tuples(SCOPES, st.integers(1, 100), st.integers(0, 120)), min_size=1, max_size=8)
_sessions = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
def test_active_scopes_are_the_union_of_approvals_still_within_their_ttl(
    store: GrantStore, clock: Clock, steps: list[tuple[frozenset[str], int, int]]
) -> None:
    key = {**KEY, "session_id": f"h-{next(_sessions)}"}  # the store is shared by every example
    expected: frozenset[str] = frozenset()
    expires_at = float("-inf")
    for scopes, ttl, elapsed in steps:
        clock.now += elapsed
        if expires_at <= clock.now:  # everything approved so far has lapsed
            expected = frozenset()
        expected |= scopes
        expires_at = max(expires_at, clock.now + ttl)
        store.approve(**key, scopes=scopes, ttl=ttl)
        assert store.active_scopes(**key) == expected
    clock.now = expires_at
    assert store.active_scopes(**key) == frozenset()
