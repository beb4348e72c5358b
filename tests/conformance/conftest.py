"""Fixtures of the store conformance suite: one suite, run against every database under test.

SQLite always runs, on a file in tmp_path (never :memory:, so locking behaves as in production).
PostgreSQL runs when JOBWARDEN_TEST_DATABASE_URL names a server (for example
postgresql://postgres@127.0.0.1:5432/postgres): the session creates and migrates a throw-away
database once and drops it at the end; each test starts from emptied tables (TRUNCATE costs a few
milliseconds where cloning a database per test costs ~0.3 s, on two cores that is most of the run).
Tests that need a database of their own (migrations) get a fresh one. Without the variable the
postgres parameter is never generated, so nothing shows up as skipped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime as dt
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store import JobCreateParams, SqlStore, migrate, open_store

PG_URL_ENV = "JOBWARDEN_TEST_DATABASE_URL"
T = TypeVar("T")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that takes `backend` once per database under test."""
    if "backend" in metafunc.fixturenames:
        backends: list[Any] = ["sqlite"]
        if os.environ.get(PG_URL_ENV):
            backends.append(pytest.param("postgres", marks=pytest.mark.postgres))
        metafunc.parametrize("backend", backends)


def _run_isolated(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on its own loop in its own thread, for session-scoped setup and teardown.

    Session fixtures outlive pytest-asyncio's per-test loops, and asyncio.run() on the main thread
    would replace the loop pytest-asyncio has installed.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _pg_url(base: str, database: str) -> str:
    return sa.make_url(base).set(database=database).render_as_string(hide_password=False)


async def _pg_admin(url: str, *statements: str) -> None:
    # AUTOCOMMIT: CREATE/DROP DATABASE refuse to run inside a transaction.
    async_url = sa.make_url(url).set(drivername="postgresql+asyncpg")
    engine = create_async_engine(async_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_session_database() -> Iterator[tuple[str, str]]:
    """(server URL, name of a migrated database) shared by the session's tests, dropped at the end."""
    base = os.environ[PG_URL_ENV]
    name = f"jobwarden_test_{secrets.token_hex(4)}"
    _run_isolated(_pg_admin(base, f'CREATE DATABASE "{name}"'))
    try:
        _run_isolated(migrate(_pg_url(base, name)))
        yield base, name
    finally:
        # FORCE: a failed test may have left a connection behind; it must not leak the database.
        _run_isolated(_pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def postgres_database(pg_session_database: tuple[str, str]) -> str:
    """The session's migrated PostgreSQL database, with every table emptied for this test."""
    base, name = pg_session_database
    url = _pg_url(base, name)
    await _pg_admin(
        url,
        # A connection left by an earlier failed test could hold locks that TRUNCATE would wait on.
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}' "
        "AND pid <> pg_backend_pid()",
        "TRUNCATE jobs, job_events, assets, callback_outbox, job_deletions",
    )
    return url


@pytest.fixture
async def postgres_empty_database(pg_session_database: tuple[str, str]) -> AsyncIterator[str]:
    """An empty (unmigrated) PostgreSQL database of this test's own."""
    base, session_name = pg_session_database
    name = f"{session_name}_empty_{secrets.token_hex(4)}"
    await _pg_admin(base, f'CREATE DATABASE "{name}"')
    try:
        yield _pg_url(base, name)
    finally:
        await _pg_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_admin() -> Callable[..., Awaitable[None]]:
    """Run statements on the PostgreSQL server's admin database (outside any transaction)."""

    async def run(*statements: str) -> None:
        await _pg_admin(os.environ[PG_URL_ENV], *statements)

    return run


@pytest.fixture
def sqlite_empty_database(tmp_path: Any) -> str:
    """The URL of a SQLite file that does not exist yet."""
    return f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture
def empty_database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """The URL of an empty, unmigrated database of the parametrized backend."""
    url: str = request.getfixturevalue(f"{backend}_empty_database")
    return url


@pytest.fixture
async def sqlite_database(tmp_path: Any) -> str:
    """A migrated SQLite database file in tmp_path."""
    url = f"sqlite:///{tmp_path / 'jobwarden.db'}"
    await migrate(url)
    return url


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest) -> str:
    """The URL of a migrated, empty database of the parametrized backend."""
    url: str = request.getfixturevalue(f"{backend}_database")
    return url


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    """The store under test, on a migrated, empty database."""
    opened = open_store(database_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def open_stores(database_url: str) -> AsyncIterator[Callable[..., SqlStore]]:
    """Open further stores (own engines, own connections) on the same database; closed at teardown."""
    opened: list[SqlStore] = []

    def open_one(**kwargs: Any) -> SqlStore:
        opened.append(open_store(database_url, **kwargs))
        return opened[-1]

    yield open_one
    await asyncio.gather(*(s.close() for s in opened))


@dataclasses.dataclass
class Clock:
    """Test time: every tick is one second later than the last, so creation order is explicit."""

    now: dt.datetime = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)

    def tick(self, seconds: float = 1.0) -> dt.datetime:
        """Advance and return the new time."""
        self.now += dt.timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> Clock:
    """A fresh test clock."""
    return Clock()


@pytest.fixture
def job_params(clock: Clock) -> Callable[..., JobCreateParams]:
    """Build JobCreateParams with defaults (owner alice, type render, QUEUED, created at the next tick)."""
    counter = iter(range(1_000_000))

    def build(**overrides: Any) -> JobCreateParams:
        values: dict[str, Any] = {
            "id": overrides.pop("job_id", None) or f"job-{next(counter):06d}-{secrets.token_hex(3)}",
            "owner": "alice",
            "job_type": "render",
            "lifecycle": "standard",
            "status": JobStatus.QUEUED,
            "parameters": {"frames": 10, "nested": {"ok": True}},
            "priority": 0,
            "labels": {},
            "max_attempts": 3,
            "run_after": None,
            "deadline": None,
            "callback_url": "",
            "request_id": "",
            "request_fingerprint": "",
            "actor": "client:alice",
        }
        values.update(overrides)
        if values.get("now") is None:
            values["now"] = clock.tick()
        return JobCreateParams(**values)

    return build


@pytest.fixture
def create_job(store: SqlStore, job_params: Callable[..., JobCreateParams]) -> Callable[..., Awaitable[Job]]:
    """Create a job with `job_params` defaults and return it."""

    async def create(**overrides: Any) -> Job:
        result = await store.job_create(job_params(**overrides))
        assert result.created
        return result.change.job

    return create


@pytest.fixture
def count_rows(store: SqlStore) -> Callable[[str], Awaitable[int]]:
    """Count the rows of a table straight from the database, bypassing the store's queries."""

    async def count(table: str) -> int:
        async with store.write_engine.connect() as conn:
            return int((await conn.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one())

    return count
