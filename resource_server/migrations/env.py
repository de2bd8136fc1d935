"""Alembic environment for the grants table; run through ``resource_server.grants.upgrade``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from resource_server.grants import metadata

config = context.config
target_metadata = metadata
# Our own version table, so these migrations can share a database with the application's.
VERSION_TABLE = "resource_server_alembic_version"


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # upgrade() was given an Engine and opened the connection
        context.configure(connection=connection, target_metadata=target_metadata, version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    if url is None:  # upgrade() sets it when it is not given a connection
        raise RuntimeError("no database URL: run these migrations through resource_server.grants.upgrade")
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
