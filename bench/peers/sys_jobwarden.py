"""jobwarden as its users run it: the real `jobwarden serve`, SDK Worker processes, the SDK Client."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from importlib import metadata

import asyncpg

from bench.peers.drive import CONCURRENCY, Settings, callgrind_command
from bench.server import Server, serving
from jobwarden.client import Client, Job, NewJob

JOB_TYPE = "bench.peers"
BATCH = 1000
"""Jobs per CreateJobs call: its limit. Users queueing many jobs at once use the batch call, as the
peers' batch APIs are used for them."""
# Read straight from the store, not through the server: the polling then costs the server nothing.
_LEFT = "SELECT count(*) FROM jobs WHERE status IN ('QUEUED', 'RUNNING')"
_DONE = "SELECT count(*) FROM jobs WHERE status = 'COMPLETED'"


class Jobwarden:
    """One server over SQLite (a fresh file) or over this run's PostgreSQL database."""

    enqueue_mode = "batch (CreateJobs, 1,000 jobs per call)"

    def __init__(self, s: Settings) -> None:
        self.s = s
        self.database = "postgres" if s.postgres_url else "sqlite, in the server process (counted as server)"
        self._stack = contextlib.AsyncExitStack()
        self._server: Server | None = None
        self._pg: asyncpg.Connection | None = None
        self._client: Client | None = None

    @property
    def server_pid(self) -> int | None:
        return self._server.pid if self._server else None

    async def setup(self) -> None:
        database = self.s.postgres_url or str(self.s.workdir / "jobwarden.db")
        # The server's own default log level, as users run it (INFO: failures, retries, rescues; a claim or a completion is DEBUG).
        wrapper = callgrind_command(self.s.callgrind) if self.s.callgrind else ()
        self._server = await self._stack.enter_async_context(
            serving(database, self.s.workdir, "INFO", wrapper=wrapper)
        )
        self._client = Client(self._server.address)
        if self.s.postgres_url:
            self._pg = await asyncpg.connect(self.s.postgres_url)

    async def enqueue(self, n: int) -> None:
        assert self._client is not None
        for start in range(0, n, BATCH):
            created = await self._client.create_jobs(
                NewJob(JOB_TYPE, {}) for _ in range(min(BATCH, n - start))
            )
            if refused := [outcome for outcome in created if not isinstance(outcome, Job)]:
                raise RuntimeError(f"CreateJobs refused {len(refused)} jobs: {refused[0]}")

    def worker_command(self, index: int) -> tuple[list[str], dict[str, str]]:
        assert self._server is not None
        argv = [sys.executable, "-m", "bench.peers.jobwarden_worker", self._server.address, self.s.variant]
        return argv, {"BENCH_CONCURRENCY": str(CONCURRENCY)}

    async def _count(self, query: str) -> int:
        if self._pg is not None:
            return int(await self._pg.fetchval(query))
        conn = sqlite3.connect(f"file:{self.s.workdir / 'jobwarden.db'}?mode=ro", uri=True, timeout=30)
        try:
            return int(conn.execute(query).fetchone()[0])
        finally:
            conn.close()

    async def remaining(self) -> int:
        return await self._count(_LEFT)

    async def check(self, n: int) -> None:
        if (done := await self._count(_DONE)) != n:
            raise RuntimeError(f"{done} of {n} jobs COMPLETED")

    def excluded_backends(self) -> list[int]:
        return [self._pg.get_server_pid()] if self._pg is not None else []

    async def database_seconds(self) -> float | None:
        return None

    def versions(self) -> dict[str, str]:
        return {p: metadata.version(p) for p in ("jobwarden", "grpcio", "sqlalchemy", "aiosqlite", "asyncpg")}

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._pg is not None:
            await self._pg.close()
        await self._stack.aclose()


def make(s: Settings) -> Jobwarden:
    """The driver's entry point."""
    return Jobwarden(s)
