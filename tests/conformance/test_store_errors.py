"""Driver failures reach the service as StoreUnavailable (cause chained), and URLs pick the dialect."""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable

import pytest
import sqlalchemy as sa
from sqlalchemy import exc

from jobwarden_server.domain import errors
from jobwarden_server.store import JobCreateParams, SqlStore, migrate, open_store


async def test_a_locked_sqlite_database_is_unavailable_and_nothing_is_written(
    sqlite_database: str, job_params: Callable[..., JobCreateParams]
) -> None:
    path = sa.make_url(sqlite_database).database
    assert path is not None
    opened = open_store(sqlite_database, busy_timeout_ms=1)
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        # Another process holding the write lock (a second server, a backup): our writer must give
        # up after busy_timeout with StoreUnavailable, not hang, and not leak a driver error.
        locker.execute("BEGIN EXCLUSIVE")
        params = job_params()
        with pytest.raises(errors.StoreUnavailable) as caught:
            await opened.job_create(params)
        assert isinstance(caught.value.__cause__, exc.OperationalError)
        assert "locked" in str(caught.value.__cause__)
        locker.execute("ROLLBACK")

        # The store's connection survives: once the lock is gone the same call succeeds.
        with pytest.raises(errors.NotFound):
            await opened.job_get(None, params.id)
        assert (await opened.job_create(params)).created
    finally:
        locker.close()
        await opened.close()


async def test_an_unreachable_postgres_server_is_unavailable() -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    opened = open_store("postgresql://postgres@127.0.0.1:1/jobwarden", pool_size=1)
    try:
        with pytest.raises(errors.StoreUnavailable) as caught:
            await opened.job_get(None, "any")
        assert isinstance(caught.value.__cause__, OSError)
    finally:
        await opened.close()
    with pytest.raises(errors.StoreUnavailable):
        await migrate("postgresql://postgres@127.0.0.1:1/jobwarden")


@pytest.mark.postgres
async def test_postgres_connections_killed_by_the_server_are_replaced(
    postgres_database: str,
    pg_admin: Callable[..., Awaitable[None]],
    job_params: Callable[..., JobCreateParams],
) -> None:
    """A server restart or failover kills pooled connections; the next call must still succeed."""
    opened = open_store(postgres_database, pool_size=1)
    try:
        first = await opened.job_create(job_params())
        name = sa.make_url(postgres_database).database
        await pg_admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
        )
        assert await opened.job_get(None, first.change.job.id) == first.change.job
    finally:
        await opened.close()


@pytest.mark.parametrize(
    ("url", "dialect", "driver"),
    [
        ("jobwarden.db", "sqlite", "aiosqlite"),
        ("/var/lib/jobwarden/jobs.sqlite3", "sqlite", "aiosqlite"),
        ("sqlite:///relative.db", "sqlite", "aiosqlite"),
        ("sqlite+aiosqlite:////absolute.db", "sqlite", "aiosqlite"),
        ("postgresql://user@db.example:5432/jobs", "postgresql", "asyncpg"),
        ("postgres://user@db.example/jobs", "postgresql", "asyncpg"),
        ("postgresql+asyncpg://user@db.example/jobs", "postgresql", "asyncpg"),
    ],
)
async def test_the_url_picks_the_dialect(url: str, dialect: str, driver: str) -> None:
    opened: SqlStore = open_store(url)
    try:
        assert (opened.write_engine.dialect.name, opened.write_engine.dialect.driver) == (dialect, driver)
    finally:
        await opened.close()


@pytest.mark.parametrize(
    "url", ["", ":memory:", "sqlite://", "sqlite:///:memory:", "mysql://x/y", "sqlite+pysqlite:///a.db"]
)
def test_unsupported_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(errors.ConfigError):
        open_store(url)


@pytest.mark.postgres
@pytest.mark.parametrize(
    "overrides",
    [{"labels": {"k": "a\x00b"}}, {"parameters": {"k": "a\x00b"}}, {"job_type": "a\x00b"}],
    ids=["text", "jsonb-value", "text-column"],
)
async def test_text_postgres_cannot_store_is_invalid_argument_and_nothing_is_written(
    postgres_database: str, job_params: Callable[..., JobCreateParams], overrides: dict[str, object]
) -> None:
    # The API refuses NULs first; the store's translation is the seam holding the line for any
    # other way in, so that a known failure never surfaces as INTERNAL.
    opened = open_store(postgres_database, pool_size=2)
    try:
        params = job_params(**overrides)
        with pytest.raises(errors.InvalidArgument) as caught:
            await opened.job_create(params)
        assert isinstance(caught.value.__cause__, exc.DBAPIError)
        with pytest.raises(errors.NotFound):
            await opened.job_get(None, params.id)
    finally:
        await opened.close()
