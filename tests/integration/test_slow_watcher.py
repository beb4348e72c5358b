"""A watcher that stops reading is cut off with a resumable status instead of growing server memory.

The client's HTTP/2 receive window is kept small, so once it stops reading, the server's writes stall
and the job's events pile up in the watcher's bounded queue (4 here) until it overflows.
"""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import grpc.aio
import pytest
from support import flows, rpc, waiting

from jobwarden.client import Client, Job, JobEvent
from jobwarden.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc

QUEUE = 4
REPORTS = 200
BULKY = "x" * 4000  # each progress event carries ~4 KB, so a few fill the client's receive window
SMALL_WINDOW = (("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 16 * 1024))


async def _read_until_end(
    call: grpc.aio.UnaryStreamCall,
) -> tuple[list[job_pb2.JobEvent], rpc.RpcFailure | None]:
    events = []
    try:
        while (item := await call.read()) is not grpc.aio.EOF:
            events.append(item.event)
    except grpc.aio.AioRpcError as err:
        return events, rpc.failure(err)
    return events, None


async def test_a_watcher_that_stops_reading_is_cut_off_and_resumes_without_a_gap(tmp_path: Path) -> None:
    async with (
        rpc.server(tmp_path, subscriber_queue_size=QUEUE) as srv,
        rpc.stubs(srv.address) as s,
        grpc.aio.insecure_channel(srv.address, options=SMALL_WINDOW) as slow_channel,
    ):
        job = await flows.create(s)
        claim = await flows.claim_one(s)
        call = job_service_pb2_grpc.JobServiceStub(slow_channel).WatchJob(
            job_service_pb2.WatchJobRequest(job_id=job.id)
        )
        assert (await call.read()).HasField("job")  # the watch is open; now it stops reading

        for n in range(REPORTS):
            await flows.progress(s, claim, n / 2, message=BULKY)
        await flows.complete(s, claim)

        first, failure = await _read_until_end(call)
        assert failure is not None, "the watcher was never cut off"
        assert (failure.code, failure.reason) == (grpc.StatusCode.UNAVAILABLE, "WATCHER_TOO_SLOW")
        resume_after = int(failure.metadata["after_sequence"])
        assert [e.sequence for e in first] == list(range(1, resume_after + 1))
        assert len(first) < REPORTS, "the stream held everything: nothing was cut off"

        _, rest = await flows.watch(s, job.id, after=resume_after)
        assert first + rest == await flows.events(s, job.id)
        assert flows.kinds(rest)[-1] == "RUNNING->COMPLETED"
        assert srv.bus.subscriber_count() == 0  # the cut-off watch let go of its subscription


async def test_a_watcher_that_reads_along_is_never_cut_off(tmp_path: Path) -> None:
    async with rpc.server(tmp_path, subscriber_queue_size=QUEUE) as srv, rpc.stubs(srv.address) as s:
        job = await flows.create(s)
        claim = await flows.claim_one(s)
        call = s.jobs.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id), metadata=s.metadata)
        await call.read()  # the snapshot: the watch is open
        seen: list[job_pb2.JobEvent] = []

        async def read_through(sequence: int) -> None:
            while not seen or seen[-1].sequence < sequence:
                seen.append((await call.read()).event)  # fails on the cut-off's status

        # The watcher keeps within half its queue of the writes: it reads along, never stops.
        for n in range(REPORTS):
            await flows.progress(s, claim, n / 2)
            if n % (QUEUE // 2) == 0:
                await read_through((await flows.get(s, job.id)).last_sequence)
        done = await flows.complete(s, claim)
        await read_through(done.last_sequence)
        assert await call.read() is grpc.aio.EOF  # the job ended, and so did the watch
        assert seen == await flows.events(s, job.id)


async def test_the_sdk_watch_resumes_by_itself_after_a_cut_off(tmp_path: Path) -> None:
    async with (
        rpc.server(tmp_path, subscriber_queue_size=QUEUE) as srv,
        rpc.stubs(srv.address) as s,
        grpc.aio.insecure_channel(srv.address, options=SMALL_WINDOW) as slow_channel,
        Client(srv.address, channel=slow_channel) as client,
    ):
        job = await flows.create(s)
        claim = await flows.claim_one(s)
        stream = client.watch_job(job.id)
        snapshot = await anext(stream)  # the watch is open; the consumer pauses here
        for n in range(REPORTS):
            await flows.progress(s, claim, n / 2, message=BULKY)
        await flows.complete(s, claim)

        seen = [item async for item in stream]
        assert isinstance(snapshot, Job) and all(isinstance(e, JobEvent) for e in seen)
        assert srv.bus.watchers_cut_off >= 1, "the consumer was never cut off, so nothing was resumed"
        assert [e.sequence for e in seen] == list(range(1, len(await flows.events(s, job.id)) + 1))


async def test_a_watcher_that_goes_away_while_a_message_is_held_back_leaves_no_error_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        rpc.server(tmp_path, subscriber_queue_size=10 * REPORTS) as srv,  # never cut off: it stays blocked
        rpc.stubs(srv.address) as s,
        grpc.aio.insecure_channel(srv.address, options=SMALL_WINDOW) as slow_channel,
    ):
        job = await flows.create(s)
        claim = await flows.claim_one(s)
        call = job_service_pb2_grpc.JobServiceStub(slow_channel).WatchJob(
            job_service_pb2.WatchJobRequest(job_id=job.id)
        )
        assert (await call.read()).HasField("job")
        for n in range(REPORTS // 2):
            await flows.progress(s, claim, n / 2, message=BULKY)
        with caplog.at_level(logging.INFO):
            call.cancel()  # the client leaves while the server waits to send
            await waiting.until(lambda: srv.bus.subscriber_count() == 0)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
