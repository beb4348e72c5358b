"""Per-owner caps on long-lived calls: over the cap is RESOURCE_EXHAUSTED, and slots come back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from support import flows, rpc, waiting

from jobwarden.v1 import job_service_pb2


async def test_watch_streams_and_long_polls_are_capped_per_owner(tmp_path: Path) -> None:
    async with rpc.server(tmp_path, max_streams_per_owner=2) as srv, rpc.stubs(srv.address) as s:
        job = await flows.create(s)
        first = s.jobs.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id))
        assert (await first.read()).HasField("job")
        poll = asyncio.create_task(flows.claim(s, ("nothing-here",), wait_s=30))
        await waiting.until(lambda: srv.bus.claimers_waiting > 0)  # until the long poll holds its slot

        failure = await rpc.fails(flows.watch(s, job.id))
        assert (failure.code, failure.reason) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED")
        failure = await rpc.fails(flows.claim(s, ("nothing-here",), wait_s=1))
        assert failure.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await flows.claim(s, ("demo",)) != []  # a claim without wait is not long-lived: not capped

        first.cancel()
        async with asyncio.timeout(10):
            while True:  # the cancelled stream gives its slot back (once the server sees the cancel)
                again = s.jobs.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id))
                try:
                    assert (await again.read()).HasField("job")
                    break
                except grpc.aio.AioRpcError as err:
                    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                    await asyncio.sleep(0.01)
        again.cancel()
        poll.cancel()
