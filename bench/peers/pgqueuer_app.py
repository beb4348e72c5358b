"""The pgqueuer worker's factory, as its documentation shows one: `pgq run bench.peers.pgqueuer_app:factory`."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from pgqueuer import PgQueuer
from pgqueuer.models import Job

from bench.peers.sys_pgqueuer import ENTRYPOINT


@asynccontextmanager
async def factory() -> AsyncIterator[PgQueuer]:
    """A PgQueuer app over one asyncpg connection with the no-op entrypoint."""
    conn = await asyncpg.connect(os.environ["BENCH_POSTGRES_URL"])
    pgq = PgQueuer.from_asyncpg_connection(conn)

    @pgq.entrypoint(ENTRYPOINT)
    async def noop(_job: Job) -> None:
        """The job: nothing."""

    try:
        yield pgq
    finally:
        await conn.close()
