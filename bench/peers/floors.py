"""The floors: the least a durable queue on each database can do, with no framework around it.

sqlite: one write transaction per job that claims and completes it (BEGIN IMMEDIATE; SELECT; UPDATE;
COMMIT), WAL and synchronous=NORMAL as jobwarden's defaults; SQLite has one writer, so each worker
process runs one loop (more would only queue on the lock). postgres: asyncpg, 16 connections per
worker process, each claiming 10 jobs with FOR UPDATE SKIP LOCKED in one statement and completing
them in a second. Both queue one job per transaction. Worker processes:
`python -m bench.peers.floors sqlite PATH` / `python -m bench.peers.floors postgres URL`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import time
from importlib import metadata
from pathlib import Path

import asyncpg

from bench.peers.drive import CONCURRENCY, Settings

BATCH = 10
IDLE_S = 0.01  # an empty queue before the end of the run: look again shortly (only at the very end)
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS floor_jobs (id {key}, status TEXT NOT NULL, payload TEXT NOT NULL, result TEXT)",
    "CREATE INDEX IF NOT EXISTS floor_jobs_queued ON floor_jobs (id) WHERE status = 'queued'",
)
_LEFT = "SELECT count(*) FROM floor_jobs WHERE status IN ('queued', 'running')"
_DONE = "SELECT count(*) FROM floor_jobs WHERE status = 'done'"


def _sqlite(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class SqliteFloor:
    """A jobs table in a SQLite file."""

    enqueue_mode = "per call (one INSERT transaction per job)"
    server_pid = None
    database = "sqlite, in the worker processes (counted as workers)"

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.path = s.workdir / "floor.db"
        self._conn: sqlite3.Connection | None = None

    async def setup(self) -> None:
        self._conn = _sqlite(self.path)
        for statement in _SCHEMA:
            self._conn.execute(statement.format(key="INTEGER PRIMARY KEY"))

    async def enqueue(self, n: int) -> None:
        assert self._conn is not None
        for _ in range(n):
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("INSERT INTO floor_jobs (status, payload) VALUES ('queued', '{}')")
            self._conn.execute("COMMIT")

    def worker_command(self, index: int) -> tuple[list[str], dict[str, str]]:
        return [sys.executable, "-m", "bench.peers.floors", "sqlite", str(self.path)], {}

    async def remaining(self) -> int:
        assert self._conn is not None
        return int(self._conn.execute(_LEFT).fetchone()[0])

    async def check(self, n: int) -> None:
        assert self._conn is not None
        if (done := int(self._conn.execute(_DONE).fetchone()[0])) != n:
            raise RuntimeError(f"{done} of {n} floor jobs done")

    def excluded_backends(self) -> list[int]:
        return []

    async def database_seconds(self) -> float | None:
        return None

    def versions(self) -> dict[str, str]:
        return {"sqlite": sqlite3.sqlite_version}

    async def close(self) -> None:
        if self._conn is not None:
            self._conn.close()


class PostgresFloor:
    """A jobs table in this run's PostgreSQL database."""

    enqueue_mode = "per call (one INSERT per job, autocommit)"
    server_pid = None
    database = "postgres"

    def __init__(self, s: Settings) -> None:
        assert s.postgres_url is not None
        self.s = s
        self.url = s.postgres_url
        self._conn: asyncpg.Connection | None = None

    async def setup(self) -> None:
        self._conn = await asyncpg.connect(self.url)
        for statement in _SCHEMA:
            await self._conn.execute(statement.format(key="BIGSERIAL PRIMARY KEY"))

    async def enqueue(self, n: int) -> None:
        assert self._conn is not None
        for _ in range(n):
            await self._conn.execute("INSERT INTO floor_jobs (status, payload) VALUES ('queued', '{}')")

    def worker_command(self, index: int) -> tuple[list[str], dict[str, str]]:
        return [sys.executable, "-m", "bench.peers.floors", "postgres", self.url], {}

    async def remaining(self) -> int:
        assert self._conn is not None
        return int(await self._conn.fetchval(_LEFT))

    async def check(self, n: int) -> None:
        assert self._conn is not None
        if (done := int(await self._conn.fetchval(_DONE))) != n:
            raise RuntimeError(f"{done} of {n} floor jobs done")

    def excluded_backends(self) -> list[int]:
        return [self._conn.get_server_pid()] if self._conn is not None else []

    async def database_seconds(self) -> float | None:
        return None

    def versions(self) -> dict[str, str]:
        return {"asyncpg": metadata.version("asyncpg")}

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


def make_sqlite(s: Settings) -> SqliteFloor:
    """Driver entry point (sys_floor_sqlite)."""
    return SqliteFloor(s)


def make_postgres(s: Settings) -> PostgresFloor:
    """Driver entry point (sys_floor_postgres)."""
    return PostgresFloor(s)


# --- the worker processes (killed by SIGTERM at the end: nothing of theirs needs a clean stop) -------


def sqlite_worker(path: str) -> None:
    conn = _sqlite(Path(path))
    while True:
        conn.execute("BEGIN IMMEDIATE")
        row = conn.execute("SELECT id FROM floor_jobs WHERE status = 'queued' ORDER BY id LIMIT 1").fetchone()
        if row is not None:
            conn.execute("UPDATE floor_jobs SET status = 'done', result = '{}' WHERE id = ?", row)
        conn.execute("COMMIT")
        if row is None:
            time.sleep(IDLE_S)


_CLAIM = (
    "UPDATE floor_jobs SET status = 'running' WHERE id IN (SELECT id FROM floor_jobs "
    "WHERE status = 'queued' ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED) RETURNING id"
)
_COMPLETE = "UPDATE floor_jobs SET status = 'done', result = '{}' WHERE id = ANY($1::bigint[])"


async def postgres_worker(url: str) -> None:
    async def lane() -> None:
        conn = await asyncpg.connect(url)
        while True:
            ids = [r[0] for r in await conn.fetch(_CLAIM, BATCH)]
            if ids:
                await conn.execute(_COMPLETE, ids)
            else:
                await asyncio.sleep(IDLE_S)

    await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))


if __name__ == "__main__":
    if sys.argv[1] == "sqlite":
        sqlite_worker(sys.argv[2])
    else:
        asyncio.run(postgres_worker(sys.argv[2]))
