"""pgqueuer as its users run it: `pgq run module:factory` worker processes over PostgreSQL.

Its queue table holds a job until it is finished (then the row moves to the log), so an empty queue
table is a drained queue. Enqueue uses its batch API (lists of entrypoints and payloads in one call).
"""

from __future__ import annotations

from importlib import metadata

import asyncpg
from pgqueuer.db import AsyncpgDriver
from pgqueuer.queries import Queries

from bench.peers.drive import CONCURRENCY, Settings

ENTRYPOINT = "bench"
# pgq refuses a --max-concurrent-tasks under twice the batch size: 16 tasks, so batches of 8.
BATCH = CONCURRENCY // 2
_FAILED = "SELECT count(*) FROM pgqueuer_log WHERE status IN ('exception', 'failed', 'canceled', 'deleted')"


class Pgqueuer:
    """One throw-away database with pgqueuer's schema (default durability: every table logged)."""

    enqueue_mode = "batch (Queries.enqueue with lists, one call)"
    server_pid = None
    database = "postgres"

    def __init__(self, s: Settings) -> None:
        assert s.postgres_url is not None
        self.s = s
        self._conn: asyncpg.Connection | None = None

    async def setup(self) -> None:
        self._conn = await asyncpg.connect(self.s.postgres_url)
        await Queries(AsyncpgDriver(self._conn)).install()

    async def enqueue(self, n: int) -> None:
        assert self._conn is not None
        await Queries(AsyncpgDriver(self._conn)).enqueue([ENTRYPOINT] * n, [None] * n, [0] * n)

    def worker_command(self, index: int) -> tuple[list[str], dict[str, str]]:
        argv = [
            str(self.s.bin / "pgq"),
            "run",
            "bench.peers.pgqueuer_app:factory",
            "--batch-size",
            str(BATCH),
            "--max-concurrent-tasks",
            str(CONCURRENCY),
        ]
        assert self.s.postgres_url is not None
        return argv, {"BENCH_POSTGRES_URL": self.s.postgres_url}

    async def remaining(self) -> int:
        assert self._conn is not None
        return int(await self._conn.fetchval("SELECT count(*) FROM pgqueuer"))

    async def check(self, n: int) -> None:
        assert self._conn is not None
        if failed := int(await self._conn.fetchval(_FAILED)):
            raise RuntimeError(f"pgqueuer logged {failed} jobs that did not succeed")

    def excluded_backends(self) -> list[int]:
        return [self._conn.get_server_pid()] if self._conn is not None else []

    async def database_seconds(self) -> float | None:
        return None

    def versions(self) -> dict[str, str]:
        return {p: metadata.version(p) for p in ("pgqueuer", "asyncpg")}

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()


def make(s: Settings) -> Pgqueuer:
    """The driver's entry point."""
    return Pgqueuer(s)
