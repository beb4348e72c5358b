"""Schema migrations driven from code: `migrate` upgrades a database to the newest revision.

Alembic is configured here rather than by an alembic.ini, so `jobwarden serve` can migrate its own
database from an installed wheel (pyproject force-includes the migrations directory).
"""

from __future__ import annotations

import os
import pathlib

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from jobwarden_server.store import _sqlite
from jobwarden_server.store._errors import translated
from jobwarden_server.store._open import Database, parse_database_url, require_postgres
from jobwarden_server.store._startup import explained

MIGRATIONS_DIR = pathlib.Path(__file__).resolve().parent / "migrations"


def alembic_config() -> Config:
    """An Alembic Config for the package's migrations; pass a connection in `attributes["connection"]`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revisions() -> frozenset[str]:
    """The newest revision(s) the migrations define."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def migration_engine(database: Database) -> AsyncEngine:
    """An engine for running migrations on `database` (one connection, released afterwards)."""
    if database.dialect == "sqlite":
        return _sqlite.create_migration_engine(database.sqlite_path)
    assert database.postgres_url is not None
    require_postgres()
    return create_async_engine(database.postgres_url, poolclass=NullPool)


def _upgrade(connection: sa.Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(url: str) -> None:
    """Upgrade the database at `url` to the newest schema; a no-op when it is already there.

    Safe to run from several processes at once: on PostgreSQL they queue on an advisory lock, on
    SQLite on the database's write lock (the migration transaction begins IMMEDIATE). The whole
    upgrade is one transaction on both, so a failed migration leaves the schema as it was.

    Raises:
        ConfigError: the URL names no supported database, PostgreSQL support is not installed, or the
            database cannot be opened as configured (no such database or role, login or TLS refused,
            an unusable SQLite path); one line saying which and what to do.
        StoreUnavailable: the database does not answer (connection refused, no answer in time), stayed
            locked, or went away during the migration.
    """
    database = parse_database_url(url)
    engine = migration_engine(database)
    try:
        # The first connection of `serve` and `migrate`: a database that cannot be opened is explained
        # in one line (_startup.py); anything else goes on to the usual translation.
        with translated(), explained(database):
            async with engine.begin() as conn:
                if database.dialect == "postgresql":
                    from jobwarden_server.store import _postgres  # PostgreSQL-only: see require_postgres

                    # Transaction-scoped: released by the commit or rollback, even if we crash.
                    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_postgres.MIGRATION_LOCK_KEY)))
                await conn.run_sync(_upgrade)
    finally:
        await engine.dispose()


def _current_heads(connection: sa.Connection) -> frozenset[str]:
    return frozenset(MigrationContext.configure(connection).get_current_heads())


def _missing_sqlite_file(database: Database) -> bool:
    # Connecting would create the file; a missing database is simply not migrated. (One local stat:
    # not worth a thread hop.)
    return database.dialect == "sqlite" and not os.path.exists(database.sqlite_path)


async def is_migrated(url: str) -> bool:
    """Whether the database at `url` is at the newest schema (False for a missing SQLite file).

    Raises:
        ConfigError: the URL names no supported database.
        StoreUnavailable: the database cannot be reached.
    """
    database = parse_database_url(url)
    if _missing_sqlite_file(database):
        return False
    engine = migration_engine(database)
    try:
        with translated():
            async with engine.connect() as conn:
                current = await conn.run_sync(_current_heads)
    finally:
        await engine.dispose()
    return current == head_revisions()
