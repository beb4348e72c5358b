"""The server's database connections are killed (pg_terminate_backend) while it is under load.

Calls in flight may fail, but only with UNAVAILABLE; a client that retries with the same request_id
ends up with exactly one job per request, every acknowledged job is there, and the server goes on
serving (pool, reaper and listener all recover) without being restarted.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
from support import flows, pg, proc, rpc

from jobwarden.v1 import job_service_pb2

pytestmark = pytest.mark.postgres

CREATORS = 8
PER_CREATOR = 50
KILL_AFTER = (80, 160, 240, 320)
"""Acknowledged creations after which every connection of the server is terminated."""


async def _create_retrying(s: rpc.Stubs, request_id: str, outages: list[str]) -> str:
    """CreateJob, retried with the same request_id for as long as the answer is UNAVAILABLE."""
    request = job_service_pb2.CreateJobRequest(job_type="steady", request_id=request_id)
    async with asyncio.timeout(30):
        while True:
            try:
                return (await s.jobs.CreateJob(request, timeout=10)).job.id
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                outages.append(rpc.failure(err).reason)
            await asyncio.sleep(0.05)  # a client's retry backoff


async def test_killed_connections_mid_load_lose_and_duplicate_nothing_and_service_resumes(
    database: str, serve_config: Path
) -> None:
    acked: dict[str, str] = {}
    outages: list[str] = []
    progress = asyncio.Condition()
    with proc.serving(database, "--config", str(serve_config), "--log-level", "ERROR") as (server, address):

        async def creator(n: int) -> None:
            async with rpc.stubs(address) as own:
                for i in range(PER_CREATOR):
                    request_id = f"req-{n}-{i}"
                    acked[request_id] = await _create_retrying(own, request_id, outages)
                    async with progress:
                        progress.notify_all()

        async def killer() -> None:
            for threshold in KILL_AFTER:
                async with progress:
                    await progress.wait_for(lambda: len(acked) >= threshold)  # noqa: B023
                await pg.terminate_backends(database)

        await asyncio.gather(killer(), *(creator(n) for n in range(CREATORS)))

        # Still serving, on fresh connections: the whole life of a job, watched to its end.
        async with rpc.stubs(address) as s:
            job = await flows.create(s, "after")
            watch = flows.start_watch(s, job.id)
            await flows.complete(s, await flows.claim_one(s, "after"))
            _, seen = await asyncio.wait_for(watch, 10)
        assert server.poll() is None, "the server must not have exited"

    assert len(acked) == CREATORS * PER_CREATOR
    stored = await pg.run(database, "SELECT request_id, id FROM jobs WHERE job_type = 'steady'")
    assert dict(stored[0]) == acked, "an acknowledged job is missing, or a request made two jobs"
    (events,) = await pg.run(
        database,
        "SELECT count(*) FROM job_events e JOIN jobs j ON j.id = e.job_id WHERE j.job_type = 'steady'",
    )
    assert events == [(len(acked),)]
    assert outages, "the kills should have hit calls in flight (8 creators on 4 connections)"
    assert set(outages) == {"STORE_UNAVAILABLE"}, outages
    assert [e.sequence for e in seen] == [1, 2, 3]
