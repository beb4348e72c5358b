"""Many workers racing ClaimJobs never get the same job twice."""

from __future__ import annotations

import asyncio
import collections
import contextlib

from support import flows, rpc

from jobwarden.v1 import job_service_pb2
from jobwarden_server import app

JOBS = 500
WORKERS = 32


async def test_32_workers_racing_over_500_jobs_claim_each_exactly_once(
    srv: app.RunningServer, stubs: rpc.Stubs
) -> None:
    for _ in range(JOBS):
        await stubs.jobs.CreateJob(job_service_pb2.CreateJobRequest(job_type="race"))
    claimed: list[tuple[str, str]] = []
    start = asyncio.Event()

    async def worker(n: int) -> None:
        # A channel per worker: the race is between connections, as with separate processes.
        async with rpc.stubs(srv.address) as own:
            await start.wait()
            while True:
                claims = await flows.claim(own, ("race",), max_jobs=3, worker_id=f"w{n}")
                if not claims:
                    return
                claimed.extend((c.job.id, f"w{n}") for c in claims)

    async with contextlib.AsyncExitStack():
        tasks = [asyncio.create_task(worker(n)) for n in range(WORKERS)]
        start.set()
        await asyncio.gather(*tasks)

    counts = collections.Counter(job_id for job_id, _ in claimed)
    assert len(counts) == JOBS
    assert max(counts.values()) == 1
    assert len({w for _, w in claimed}) > 1, "the race had only one participant"
