"""procrastinate as its users run it: `procrastinate ... worker --concurrency 16` processes, psycopg 3.

Jobs stay in procrastinate_jobs with a status; enqueue uses its batch API (batch_defer_async).
"""

from __future__ import annotations

import os
from importlib import metadata

import psycopg

from bench.peers.drive import CONCURRENCY, Settings

_LEFT = "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
_DONE = "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'"


class Procrastinate:
    """One throw-away database with procrastinate's schema."""

    enqueue_mode = "batch (batch_defer_async, one call)"
    server_pid = None
    database = "postgres"

    def __init__(self, s: Settings) -> None:
        assert s.postgres_url is not None
        self.s = s
        self.url = s.postgres_url
        self._conn: psycopg.AsyncConnection | None = None
        # The app module reads its connection string from the environment at import.
        os.environ["BENCH_POSTGRES_URL"] = self.url

    async def setup(self) -> None:
        from bench.peers.procrastinate_app import app

        async with app.open_async():
            await app.schema_manager.apply_schema_async()
        self._conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)

    async def enqueue(self, n: int) -> None:
        from bench.peers.procrastinate_app import app, noop

        async with app.open_async():
            await noop.batch_defer_async(*({} for _ in range(n)))

    def worker_command(self, index: int) -> tuple[list[str], dict[str, str]]:
        argv = [
            str(self.s.bin / "procrastinate"),
            "--app=bench.peers.procrastinate_app.app",
            "worker",
            "--concurrency",
            str(CONCURRENCY),
        ]
        return argv, {"BENCH_POSTGRES_URL": self.url}

    async def _count(self, query: str) -> int:
        assert self._conn is not None
        cursor = await self._conn.execute(query)
        row = await cursor.fetchone()
        assert row is not None
        return int(row[0])

    async def remaining(self) -> int:
        return await self._count(_LEFT)

    async def check(self, n: int) -> None:
        if (done := await self._count(_DONE)) != n:
            raise RuntimeError(f"{done} of {n} procrastinate jobs succeeded")

    def excluded_backends(self) -> list[int]:
        return [self._conn.info.backend_pid] if self._conn is not None else []

    async def database_seconds(self) -> float | None:
        return None

    def versions(self) -> dict[str, str]:
        return {p: metadata.version(p) for p in ("procrastinate", "psycopg")}

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


def make(s: Settings) -> Procrastinate:
    """The driver's entry point."""
    return Procrastinate(s)
