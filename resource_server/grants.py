"""User-approved write grants for agent sessions, on SQLAlchemy 2 Core.

A user approves scopes for one agent session, ``(org, subject, session_id)``, for a limited
time. Approving again for the same session merges the new scopes into the still-active ones
and extends the expiry; an expired approval is replaced, never merged, so an old approval
cannot come back to life. Scopes are stored as an RFC 6749 §3.3 scope string: scope tokens
sorted and joined by one space.

SQLite (a file database) is the default for development; PostgreSQL is the production
backend. :meth:`GrantStore.create_schema` is for tests and demos; production applies the
Alembic migrations with :func:`upgrade`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

try:
    from sqlalchemy import (
        Column,
        Engine,
        Float,
        Index,
        Integer,
        MetaData,
        String,
        Table,
        Text,
        UniqueConstraint,
        create_engine,
        delete,
        event,
        select,
        update,
    )
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout
except ModuleNotFoundError as exc:
    from .checks import missing_extra

    raise missing_extra("grants", "resource_server.grants", exc) from exc

from policy.scopes import format_scope, parse_scope

from .capability import MAX_SESSION_ID  # one limit for a session id, wherever it is checked
from .checks import missing_extra
from .grant_rules import MAX_NAME, MAX_TTL, Grant, check_key, check_scopes, check_ttl, merge
from .tokens.errors import VerificationUnavailable

if TYPE_CHECKING:
    import sqlite3

    from sqlalchemy import ColumnElement, Connection, Delete

__all__ = ["MAX_TTL", "Grant", "GrantStore", "metadata", "upgrade"]

# A writer waits this long for SQLite's write lock instead of failing with "database is locked".
SQLITE_BUSY_TIMEOUT_S = 30
MIGRATIONS_DIR = Path(__file__).with_name("migrations")

metadata = MetaData()
grants_table = Table(
    "resource_server_grants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("org", String(MAX_NAME), nullable=False),
    Column("subject", String(MAX_NAME), nullable=False),
    Column("session_id", String(MAX_SESSION_ID), nullable=False),
    Column("scopes", Text, nullable=False),  # RFC 6749 §3.3 scope string, tokens sorted
    Column("created_at", Float, nullable=False),  # Unix seconds
    Column("expires_at", Float, nullable=False),  # Unix seconds
    UniqueConstraint("org", "subject", "session_id", name="uq_resource_server_grants_key"),
    Index("ix_resource_server_grants_expires_at", "expires_at"),
)


# SQLite: pysqlite's own implicit BEGIN is deferred, so two writers can both read a row and then
# one fails on upgrade to the write lock. These listeners (the SQLAlchemy "Serializable
# isolation / Savepoints / Transactional DDL" recipe) switch that off and emit BEGIN ourselves:
# BEGIN IMMEDIATE for writes, so the write lock is taken before the row is read.
_WRITE = "resource_server_grants_write"


def _sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    dbapi_connection.isolation_level = None
    current = dbapi_connection.execute("PRAGMA busy_timeout").fetchone()[0]
    if current < SQLITE_BUSY_TIMEOUT_S * 1000:  # never shorten a longer wait the caller chose
        dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_S * 1000}")


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "BEGIN")


# A database that cannot answer now: down, unreachable, its file gone or unreadable, locked past
# the busy timeout, the pool exhausted. The store is unavailable; the request is not wrong.
_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


@contextmanager
def _reachable() -> Iterator[None]:
    """:class:`~resource_server.VerificationUnavailable` (503 with ``Retry-After``, the status
    table's "a shared store cannot be reached") for a database that cannot answer now."""
    try:
        yield
    except _UNAVAILABLE as exc:
        # Only the class: the message can quote the statement, its parameters and the URL.
        raise VerificationUnavailable(
            f"the grants database cannot be reached ({type(exc).__name__})"
        ) from None


def _where(org: str, subject: str, session_id: str) -> ColumnElement[bool]:
    t = grants_table.c
    return (t.org == org) & (t.subject == subject) & (t.session_id == session_id)


class GrantStore:
    """Approval grants in a SQLite or PostgreSQL database.

    ``url_or_engine`` is a SQLAlchemy URL (``"sqlite:///grants.db"``,
    ``"postgresql+psycopg://user@host/db"``) or an :class:`~sqlalchemy.Engine`. A SQLite engine
    passed in gets this module's connection listeners (BEGIN IMMEDIATE for writes, a busy
    timeout); they apply to connections it opens from then on. ``clock`` returns Unix time.
    Every call checks out its own connection, so one store is safe to share between threads.
    A database that cannot answer now (down, unreachable, locked past the busy timeout) is
    :class:`~resource_server.VerificationUnavailable`, which the agent endpoints answer ``503``
    with ``Retry-After``.
    """

    def __init__(self, url_or_engine: str | Engine, *, clock: Callable[[], float] | None = None) -> None:
        if isinstance(url_or_engine, Engine):
            engine = url_or_engine
        elif isinstance(url_or_engine, str):
            engine = create_engine(url_or_engine, pool_pre_ping=not url_or_engine.startswith("sqlite"))
        else:
            raise ValueError("url_or_engine must be a SQLAlchemy URL string or Engine")
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL")
        if engine.dialect.name == "sqlite":
            for name, listener in (("connect", _sqlite_on_connect), ("begin", _sqlite_on_begin)):
                if not event.contains(engine, name, listener):
                    event.listen(engine, name, listener)
        self.engine = engine
        self._clock = clock or time.time
        self._insert = (postgresql if engine.dialect.name == "postgresql" else sqlite).insert

    def create_schema(self) -> None:
        """Create the grants table if missing (tests and demos; production runs :func:`upgrade`)."""
        metadata.create_all(self.engine)

    def approve(
        self, *, org: str, subject: str, session_id: str, scopes: Iterable[str] | str, ttl: int
    ) -> Grant:
        """Record that the user approved ``scopes`` for this session for ``ttl`` seconds.

        ``scopes`` is a collection of scope tokens or an RFC 6749 §3.3 scope string. Every
        argument is validated before the database is touched; a violation raises ValueError.
        An active grant for the same session is merged (scope union, the later expiry wins);
        an expired one is replaced. The read-modify-write is atomic under concurrency.
        """
        org, subject, session_id = check_key(org, subject, session_id)
        new_scopes = check_scopes(scopes)
        ttl = check_ttl(ttl)
        now = float(self._clock())
        expires_at = int(now) + ttl  # whole seconds, rounded down: never longer than asked
        t = grants_table.c
        with _reachable(), self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                values = {
                    "org": org,
                    "subject": subject,
                    "session_id": session_id,
                    "scopes": format_scope(new_scopes),
                    "created_at": now,
                    "expires_at": expires_at,
                }
                # The insert either creates the row or (on conflict) waits for a concurrent
                # creator to commit; either way the row exists for the locking read below.
                stmt = self._insert(grants_table).values(**values)
                inserted = conn.execute(
                    stmt.on_conflict_do_nothing(index_elements=["org", "subject", "session_id"])
                ).rowcount
                if inserted == 1:
                    return Grant(org, subject, session_id, new_scopes, expires_at)
                # FOR UPDATE serialises merges on PostgreSQL; SQLite ignores it and is already
                # serialised by BEGIN IMMEDIATE.
                row = conn.execute(
                    select(t.scopes, t.expires_at).where(_where(org, subject, session_id)).with_for_update()
                ).one()
                merged = merge(row.scopes, row.expires_at, new_scopes, expires_at, now)
                changes = {"scopes": merged.scope_string, "expires_at": merged.expires_at}
                if merged.replaced:  # expired: start over, or an old approval would be revived
                    changes["created_at"] = now
                conn.execute(update(grants_table).where(_where(org, subject, session_id)).values(**changes))
        return Grant(org, subject, session_id, merged.scopes, merged.expires_at)

    def get(self, *, org: str, subject: str, session_id: str) -> Grant | None:
        """The active grant for this session, or None if there is none or it has expired."""
        org, subject, session_id = check_key(org, subject, session_id)
        t = grants_table.c
        with _reachable(), self.engine.connect() as conn:
            row = conn.execute(
                select(t.scopes, t.expires_at).where(_where(org, subject, session_id))
            ).one_or_none()
        if row is None or not row.expires_at > self._clock():
            return None
        return Grant(org, subject, session_id, parse_scope(row.scopes), int(row.expires_at))

    def active_scopes(self, *, org: str, subject: str, session_id: str) -> frozenset[str]:
        """The scopes approved for this session if the grant has not expired, else the empty set."""
        grant = self.get(org=org, subject=subject, session_id=session_id)
        return grant.scopes if grant else frozenset()

    def revoke(self, *, org: str, subject: str, session_id: str) -> bool:
        """Delete this session's grant; True if there was one (expired or not)."""
        org, subject, session_id = check_key(org, subject, session_id)
        return self._delete(delete(grants_table).where(_where(org, subject, session_id))) > 0

    def purge_expired(self) -> int:
        """Delete every expired grant; returns how many were deleted."""
        return self._delete(delete(grants_table).where(grants_table.c.expires_at <= self._clock()))

    def _delete(self, stmt: Delete) -> int:
        with _reachable(), self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                return conn.execute(stmt).rowcount


def upgrade(url: str | Engine, revision: str = "head") -> None:
    """Apply the grants migrations (``alembic upgrade head``) without an alembic.ini file."""
    try:
        from alembic import command
        from alembic.config import Config
    except ModuleNotFoundError as exc:
        raise missing_extra("grants", "resource_server.grants.upgrade", exc) from exc

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if isinstance(url, Engine):
        with url.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
        return
    # ConfigParser interpolation treats "%" as special; URL-encoded passwords contain it.
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, revision)
