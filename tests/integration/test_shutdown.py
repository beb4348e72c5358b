"""Graceful shutdown: watches end with a retryable status, long polls return, unary calls finish."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
from support import flows, rpc, waiting

from jobwarden.v1 import job_service_pb2


async def test_stop_ends_watches_as_retryable_and_releases_long_polls(tmp_path: Path) -> None:
    async with rpc.server(tmp_path) as srv, rpc.stubs(srv.address) as s:
        job = await flows.create(s)
        call = s.jobs.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id))
        first = await call.read()
        assert first.HasField("job")
        assert (await call.read()).event.sequence == 1  # the watch is now live, waiting
        poll = asyncio.create_task(flows.claim(s, ("nothing-here",), wait_s=50))
        await waiting.until(lambda: srv.bus.claimers_waiting > 0)  # until the long poll is inside the server

        await srv.stop(grace=30)  # would take 30 s if the stream or the poll held on

        try:
            while True:
                item = await call.read()
                assert item is not grpc.aio.EOF, "the stream ended without a status"
        except grpc.aio.AioRpcError as err:
            failure = rpc.failure(err)
        assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, "SHUTTING_DOWN")
        assert await poll == []
