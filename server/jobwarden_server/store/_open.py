"""open_store: a database URL (or a bare file path) to a ready SqlStore for its dialect."""

from __future__ import annotations

import dataclasses
from typing import Literal

import sqlalchemy as sa
from sqlalchemy import exc

from jobwarden_server.domain.errors import ConfigError
from jobwarden_server.store import _sqlite
from jobwarden_server.store._sql import SqlStore
from jobwarden_server.store._writes import BatchedTransactions, WriteThread

POSTGRES_NOT_INSTALLED = "PostgreSQL support is not installed: pip install 'jobwarden[postgres]'"


def require_postgres() -> None:
    """Make sure asyncpg can be imported; ConfigError naming the extra to install otherwise.

    asyncpg comes only with the `postgres` extra, and a server on SQLite must start without it. So
    nothing PostgreSQL-only (_postgres.py, _pg_notify.py, asyncpg itself) is imported at module level
    outside those modules: callers call this, then import `_postgres` where a postgresql:// URL is
    actually used.
    """
    try:
        import asyncpg  # noqa: F401 - only whether it imports matters here
    except ImportError as err:
        raise ConfigError(POSTGRES_NOT_INSTALLED) from err


@dataclasses.dataclass(frozen=True, slots=True)
class Database:
    """Where the data lives: the dialect, and the SQLite file path or the PostgreSQL asyncpg URL."""

    dialect: Literal["sqlite", "postgresql"]
    sqlite_path: str = ""
    postgres_url: sa.URL | None = None


def parse_database_url(url: str) -> Database:
    """Read `sqlite:///path`, a bare file path, or `postgresql://...`; raise ConfigError otherwise.

    In-memory SQLite is refused: the store uses separate read and write connections, which would each
    see a different empty database.
    """
    if "://" not in url:
        if not url or url == ":memory:":
            raise ConfigError("database: an in-memory SQLite database cannot be shared; give a file path")
        return Database(dialect="sqlite", sqlite_path=url)
    try:
        parsed = sa.make_url(url)
    except exc.ArgumentError as err:
        raise ConfigError(f"database: cannot parse URL {url!r}") from err
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername not in ("sqlite", "sqlite+aiosqlite"):
            raise ConfigError(f"database: driver {parsed.drivername!r} is not supported; use sqlite://")
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError("database: an in-memory SQLite database cannot be shared; give a file path")
        return Database(dialect="sqlite", sqlite_path=parsed.database)
    if backend in ("postgresql", "postgres"):
        if parsed.drivername not in ("postgresql", "postgres", "postgresql+asyncpg"):
            raise ConfigError(f"database: driver {parsed.drivername!r} is not supported; use postgresql://")
        return Database(dialect="postgresql", postgres_url=_asyncpg_url(parsed))
    raise ConfigError(
        f"database: unsupported URL scheme {parsed.drivername!r}; use sqlite:// or postgresql://"
    )


def _asyncpg_url(parsed: sa.URL) -> sa.URL:
    url = parsed.set(drivername="postgresql+asyncpg")
    if "sslmode" in url.query:
        # libpq's name (what most PostgreSQL URLs carry) for asyncpg's `ssl`, which takes the same
        # values (disable ... verify-full); asyncpg itself would fail on `sslmode` with a TypeError.
        if "ssl" in url.query:
            raise ConfigError("database: give ssl or sslmode in the URL, not both")
        mode = url.query["sslmode"]
        url = url.difference_update_query(["sslmode"]).update_query_dict({"ssl": mode})
    return url


def display_url(url: str) -> str:
    """The database URL for logs and messages, its password (if any) shown as ***."""
    if "://" not in url:
        return url
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<unparsable database URL>"


def open_store(
    url: str,
    *,
    pool_size: int = 5,
    busy_timeout_ms: int = _sqlite.DEFAULT_BUSY_TIMEOUT_MS,
    sqlite_synchronous: str = "NORMAL",
) -> SqlStore:
    """Open the store for a database URL. Connections are made on first use; nothing is migrated.

    Args:
        url: `sqlite:///relative.db`, `sqlite:////absolute.db`, a bare file path (SQLite), or
            `postgresql://user@host:port/dbname` (asyncpg).
        pool_size: connections for reads on SQLite (writes always use one); all connections on
            PostgreSQL.
        busy_timeout_ms: SQLite only: how long to wait for another process's lock before a call fails
            with StoreUnavailable.
        sqlite_synchronous: SQLite only: NORMAL (a commit survives a crash of the process) or FULL
            (it survives a power loss too; slower).

    Returns:
        A SqlStore, which implements the Store protocol; `await store.close()` releases it.

    Raises:
        ConfigError: the URL names no supported database, or PostgreSQL support is not installed.
    """
    database = parse_database_url(url)
    if database.dialect == "sqlite":
        thread_engine, writer, reader = _sqlite.create_engines(
            database.sqlite_path,
            read_pool_size=pool_size,
            busy_timeout_ms=busy_timeout_ms,
            synchronous=sqlite_synchronous,
        )
        return SqlStore(
            writes=WriteThread(thread_engine), writer=writer, reader=reader, dialect=_sqlite.DIALECT
        )
    assert database.postgres_url is not None
    require_postgres()
    from jobwarden_server.store import _postgres  # PostgreSQL-only: see require_postgres

    engine = _postgres.create_engine(database.postgres_url, pool_size=pool_size)
    # One lane: a replica's writes never wait on each other's row locks (no deadlock among them), and
    # under load a lane's batches grow instead of its transactions multiplying. Measured with
    # `scripts/bench --peers` against a transaction per unit: server CPU per job 1.70 -> 1.28 ms,
    # PostgreSQL's 0.84 -> 0.57 ms (docs/performance.md).
    writes = BatchedTransactions(engine, lanes=1)
    return SqlStore(writes=writes, writer=engine, reader=engine, dialect=_postgres.DIALECT)
