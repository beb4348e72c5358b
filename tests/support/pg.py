"""Throw-away PostgreSQL databases for tests, on the server JOBWARDEN_TEST_DATABASE_URL names.

Each database is created for one test and dropped WITH (FORCE) afterwards, so a server or a
connection a failed test left behind cannot keep it alive. Creating one costs ~0.1 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

URL_ENV = "JOBWARDEN_TEST_DATABASE_URL"


def server_url() -> str:
    """The PostgreSQL server for tests (only call from tests marked `postgres`)."""
    return os.environ[URL_ENV]


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database of the same server."""
    return sa.make_url(url).set(database=database).render_as_string(hide_password=False)


async def run(url: str, *statements: str) -> list[list[Any]]:
    """Run statements outside any transaction (CREATE/DROP DATABASE need that); each one's rows."""
    engine = create_async_engine(
        sa.make_url(url).set(drivername="postgresql+asyncpg"),
        isolation_level="AUTOCOMMIT",
        poolclass=NullPool,
    )
    out: list[list[Any]] = []
    try:
        async with engine.connect() as conn:
            for statement in statements:
                result = await conn.execute(sa.text(statement))
                out.append([tuple(row) for row in result] if result.returns_rows else [])
    finally:
        await engine.dispose()
    return out


@contextlib.asynccontextmanager
async def throwaway_database(prefix: str = "jobwarden_t") -> AsyncIterator[str]:
    """The URL of a new, empty database, dropped when the block ends."""
    base = server_url()
    name = f"{prefix}_{secrets.token_hex(4)}"
    await run(base, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(base, name)
    finally:
        await run(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def terminate_backends(url: str, application_name: str | None = None) -> int:
    """pg_terminate_backend every other session on `url`'s database (optionally only one
    application's); how many were terminated."""
    database = sa.make_url(url).database
    where = f"datname = '{database}' AND pid <> pg_backend_pid()"
    if application_name is not None:
        where += f" AND application_name = '{application_name}'"
    (rows,) = await run(url, f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE {where}")
    return int(rows[0][0])


async def until_rows(url: str, query: str, expected: list[tuple[Any, ...]], within_s: float = 30.0) -> None:
    """Return once `query` answers `expected`; TimeoutError after `within_s` seconds."""
    async with asyncio.timeout(within_s):
        while (await run(url, query))[0] != expected:  # noqa: ASYNC110 - a database has nothing to await
            await asyncio.sleep(0.05)
