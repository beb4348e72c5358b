"""Network faults between a client and a real `jobwarden serve`: lost replies, resets, latency.

Every call here goes through a TCP proxy (support/tcp_proxy.py) that can lose the server's replies
after the server has acted on the request, reset connections and slow every chunk down. Those are
the faults that make an outcome ambiguous; the checks are what the README promises about them:

- a retry with the same request_id (the SDK channel's own retry after UNAVAILABLE, or the caller's
  after DEADLINE_EXCEEDED) is answered with the first outcome, and the change is recorded once;
- a different request_id is a different request (so it is the request_id doing the work);
- a watch cut mid-stream and resumed from the last sequence seen misses nothing and repeats nothing;
- a slow link changes nothing about lifecycles.

What the server did is always read on a direct connection, never through the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
import grpc.aio
import pytest
from google.protobuf import duration_pb2
from support import faultproc, flows, history, waiting
from support.rpc import Stubs
from support.tcp_proxy import TcpProxy

from jobwarden.client import Client, JobContext, Worker, _channel
from jobwarden.v1 import (
    job_pb2,
    job_service_pb2,
    job_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
)

T = TypeVar("T")
WAIT_S = 15.0
"""Bound on any single wait; a healthy run needs a fraction of it."""
SHORT_DEADLINE_S = 2.0
"""The deadline of a call whose reply is held: long enough for the server to commit, on a busy machine."""
LATENCY_S = 0.05
LATENCY_JOBS = 20
CONFIG = {"reaper_interval_seconds": 1, "cancel_grace_seconds": 60}
# A retryable failure re-queues the job with a backoff long enough that nothing claims it meanwhile.
RETRY = {"default_max_attempts": 3, "initial_backoff_seconds": 60, "max_backoff_seconds": 60}
LONG_LEASE = duration_pb2.Duration(seconds=120)


@contextlib.asynccontextmanager
async def _rig(tmp_path: Path) -> AsyncIterator[tuple[Stubs, TcpProxy]]:
    """A server, a direct connection to it (the observer), and a proxy in front of it."""
    config = faultproc.write_config(tmp_path / "server.toml", settings=CONFIG, retry=RETRY)
    server = faultproc.ServerProcess(tmp_path, config)
    with faultproc.cleanup(server):
        await server.start()
        async with faultproc.stubs(server.address) as direct, TcpProxy(server.address) as proxy:
            yield direct, proxy
        server.stop()


@contextlib.asynccontextmanager
async def _sdk_stubs(address: str) -> AsyncIterator[Stubs]:
    """Raw stubs on a channel made exactly like the SDK's (its retry policy included), reconnecting fast."""
    channel = _channel.create_channel(address, options=faultproc.RECONNECT_OPTIONS)
    try:
        yield Stubs(
            channel=channel,
            jobs=job_service_pb2_grpc.JobServiceStub(channel),
            workers=worker_service_pb2_grpc.WorkerServiceStub(channel),
        )
    finally:
        await channel.close()


async def _until(check: Callable[[], Awaitable[bool]], within_s: float = WAIT_S) -> None:
    """Return once the server, asked directly, says `check`; TimeoutError after `within_s`."""
    async with asyncio.timeout(within_s):
        while not await check():  # noqa: ASYNC110 - the server's state offers nothing to await here
            await asyncio.sleep(0.02)


async def _jobs(direct: Stubs, job_type: str) -> list[job_pb2.Job]:
    return await history.all_jobs(direct, [job_type])


async def _lose_reply(
    proxy: TcpProxy,
    how: str,
    call: Callable[[float], Awaitable[T]],
    landed: Callable[[], Awaitable[bool]],
    meanwhile: Callable[[], Awaitable[None]] | None = None,
) -> tuple[T, dict[str, Any]]:
    """Make `call` (given its timeout) so that the server acts on it but its reply never arrives, then
    get the call's answer by a retry with the same request:

    - "transport": replies are dropped, the connection is reset once the server acted, and the SDK
      channel's retry policy re-sends the same serialized request (UNAVAILABLE is retryable);
    - "deadline": replies are held, the call fails with DEADLINE_EXCEEDED, the connection is reset and
      the caller sends the same request again.

    `meanwhile` runs after the server acted and before the retry is sent. Returns the retry's answer
    and what was seen on the way.
    """
    seen: dict[str, Any] = {"connections_before": proxy.connections}
    if how == "transport":
        dropped = proxy.bytes_dropped
        proxy.drop_replies()
        first = asyncio.ensure_future(call(WAIT_S))
        await _until(landed)
        await waiting.until(lambda: proxy.bytes_dropped > dropped, within_s=WAIT_S)  # answered, and lost
        seen["answered_before_reset"] = first.done()
        seen["bytes_dropped"] = proxy.bytes_dropped - dropped
        if meanwhile is not None:
            await meanwhile()
        proxy.reset()
        answer = await first
    else:
        proxy.hold_replies()
        first = asyncio.ensure_future(call(SHORT_DEADLINE_S))
        await _until(landed)
        await waiting.until(lambda: proxy.bytes_held > 0, within_s=WAIT_S)  # answered, and held
        try:
            await asyncio.wait_for(first, WAIT_S)
            seen["first"], seen["answered_before_reset"] = "OK", True
        except grpc.aio.AioRpcError as err:
            seen["first"], seen["answered_before_reset"] = err.code().name, False
        seen["bytes_held"] = proxy.bytes_held
        if meanwhile is not None:
            await meanwhile()
        proxy.reset()
        answer = await call(WAIT_S)
    seen["connections_after"] = proxy.connections
    return answer, seen


def _transitions(events: list[job_pb2.JobEvent], to: job_pb2.JobStatus.ValueType) -> int:
    return sum(e.HasField("transition") and e.transition.to_status == to for e in events)


async def _table(direct: Stubs, job_type: str) -> history.Table:
    reply = await direct.jobs.GetLifecycle(job_service_pb2.GetLifecycleRequest(job_type=job_type))
    return history.Table.from_pb(reply.lifecycle)


# --- CreateJob -------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
async def test_create_whose_reply_is_lost_is_retried_by_the_sdk_channel_and_creates_one_job(
    tmp_path: Path,
) -> None:
    job_type = "net.create.transport"
    async with _rig(tmp_path) as (direct, proxy), Client(proxy.address, timeout=WAIT_S) as client:
        await client.list_jobs(job_types=[job_type])  # the connection is up: what is lost is the reply
        assert proxy.connections == 1
        proxy.drop_replies()
        # No request_id given: the one the SDK generates is what makes its channel's retry safe.
        call = asyncio.ensure_future(client.create_job(job_type, {"n": 1}))
        await _until(lambda: _exists(direct, job_type))
        await waiting.until(lambda: proxy.bytes_dropped > 0, within_s=WAIT_S)  # answered, and lost
        answered_before_reset = call.done()
        dropped = proxy.bytes_dropped
        proxy.reset()
        job = await asyncio.wait_for(call, WAIT_S)
        jobs = await _jobs(direct, job_type)
        events = await history.all_events(direct, job.id)

    print(f"\n[create/transport] connections={proxy.connections} dropped={dropped}B jobs={len(jobs)}")
    assert not answered_before_reset and dropped > 0, "the reply was not lost: nothing was tested"
    assert proxy.connections >= 2, "no second connection: the call was not retried"
    assert [j.id for j in jobs] == [job.id], "the retry created another job, or answered with another one"
    assert flows.kinds(events).count("created") == 1, flows.kinds(events)
    assert events[0].WhichOneof("kind") == "created"


async def _exists(direct: Stubs, job_type: str, n: int = 1) -> bool:
    return len(await _jobs(direct, job_type)) >= n


@pytest.mark.timeout(60)
async def test_create_past_its_deadline_retried_with_the_same_request_id_returns_the_first_job(
    tmp_path: Path,
) -> None:
    job_type = "net.create.deadline"
    request = job_service_pb2.CreateJobRequest(
        job_type=job_type, parameters=flows.struct(n=1), request_id=f"create-{uuid.uuid4()}"
    )
    async with _rig(tmp_path) as (direct, proxy), faultproc.stubs(proxy.address) as s:
        await s.jobs.ListJobs(job_service_pb2.ListJobsRequest(job_types=[job_type]), timeout=WAIT_S)
        # A held reply is only late: released, it arrives (so what the hold below loses, the reset loses).
        proxy.hold_replies()
        listing = asyncio.ensure_future(
            s.jobs.ListJobs(job_service_pb2.ListJobsRequest(job_types=[job_type]), timeout=WAIT_S)
        )
        await waiting.until(lambda: proxy.bytes_held > 0, within_s=WAIT_S)
        assert not listing.done()
        proxy.release()
        assert list((await asyncio.wait_for(listing, WAIT_S)).jobs) == []

        proxy.hold_replies()
        first = asyncio.ensure_future(s.jobs.CreateJob(request, timeout=SHORT_DEADLINE_S))
        await _until(lambda: _exists(direct, job_type))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(first, WAIT_S)
        held = proxy.bytes_held
        proxy.reset()
        [created] = await _jobs(direct, job_type)

        retry = await s.jobs.CreateJob(request, timeout=WAIT_S)
        after_retry = await _jobs(direct, job_type)
        other = job_service_pb2.CreateJobRequest()
        other.CopyFrom(request)
        other.request_id = f"create-{uuid.uuid4()}"
        second = await s.jobs.CreateJob(other, timeout=WAIT_S)
        after_other = await _jobs(direct, job_type)
        events = await history.all_events(direct, created.id)

    print(f"\n[create/deadline] held={held}B connections={proxy.connections} jobs={len(after_other)}")
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert held > 0, "the server's reply never reached the proxy"
    assert retry.job.id == created.id, "the retry with the same request_id made another job"
    assert [j.id for j in after_retry] == [created.id]
    assert flows.kinds(events).count("created") == 1
    # The contrast: the same request under another request_id is another job.
    assert second.job.id != created.id
    assert sorted(j.id for j in after_other) == sorted([created.id, second.job.id])


# --- worker calls ----------------------------------------------------------------------------------


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", ["transport", "deadline"])
async def test_worker_calls_whose_replies_are_lost_are_answered_with_the_first_outcome_and_recorded_once(
    tmp_path: Path, how: str
) -> None:
    job_type = f"net.worker.{how}"
    async with _rig(tmp_path) as (direct, proxy), _sdk_stubs(proxy.address) as s:
        for n in (1, 2):
            await flows.create(direct, job_type, parameters=flows.struct(n=n), max_attempts=3)
        reply = await s.workers.ClaimJobs(
            worker_service_pb2.ClaimJobsRequest(
                worker_id="w-net", job_types=[job_type], max_jobs=2, lease_duration=LONG_LEASE
            ),
            timeout=WAIT_S,
        )
        assert len(reply.claims) == 2
        done, failed = reply.claims
        seen: dict[str, dict[str, Any]] = {}

        async def job(job_id: str) -> job_pb2.Job:
            return await flows.get(direct, job_id)

        progress = worker_service_pb2.ReportProgressRequest(
            job_id=done.job.id,
            lease_token=done.lease_token,
            progress=job_pb2.Progress(percent=50, message="halfway"),
            request_id=f"progress-{uuid.uuid4()}",
        )

        async def progress_landed() -> bool:
            return (await job(done.job.id)).progress.percent == 50

        progress_reply, seen["ReportProgress"] = await _lose_reply(
            proxy, how, lambda t: s.workers.ReportProgress(progress, timeout=t), progress_landed
        )

        add = worker_service_pb2.AddAssetRequest(
            job_id=done.job.id,
            lease_token=done.lease_token,
            asset=job_pb2.Asset(asset_type="image", uri="s3://bucket/net.png", size_bytes=3),
            request_id=f"asset-{uuid.uuid4()}",
        )

        async def asset_landed() -> bool:
            return len(await _assets(direct, done.job.id)) >= 1

        asset_reply, seen["AddAsset"] = await _lose_reply(
            proxy, how, lambda t: s.workers.AddAsset(add, timeout=t), asset_landed
        )

        complete = worker_service_pb2.CompleteJobRequest(
            job_id=done.job.id,
            lease_token=done.lease_token,
            result=flows.struct(ok=True),
            request_id=f"complete-{uuid.uuid4()}",
        )

        async def complete_landed() -> bool:
            return (await job(done.job.id)).status == job_pb2.JOB_STATUS_COMPLETED

        complete_reply, seen["CompleteJob"] = await _lose_reply(
            proxy, how, lambda t: s.workers.CompleteJob(complete, timeout=t), complete_landed
        )

        fail = worker_service_pb2.FailJobRequest(
            job_id=failed.job.id,
            lease_token=failed.lease_token,
            error=job_pb2.JobError(message="flaky", retryable=True),
            request_id=f"fail-{uuid.uuid4()}",
        )

        async def fail_landed() -> bool:
            return (await job(failed.job.id)).status == job_pb2.JOB_STATUS_QUEUED

        fail_reply, seen["FailJob"] = await _lose_reply(
            proxy, how, lambda t: s.workers.FailJob(fail, timeout=t), fail_landed
        )

        final_done, final_failed = await job(done.job.id), await job(failed.job.id)
        assets = await _assets(direct, done.job.id)
        done_events = await history.all_events(direct, done.job.id)
        failed_events = await history.all_events(direct, failed.job.id)
        table = await _table(direct, job_type)

    lost = {rpc: f.get("bytes_dropped", f.get("bytes_held")) for rpc, f in seen.items()}
    print(f"\n[worker/{how}] reply bytes lost per call {lost}, connections {proxy.connections}")
    for rpc, figures in seen.items():
        assert not figures["answered_before_reset"], f"{rpc}: the reply was not lost: nothing was tested"
        assert figures["connections_after"] > figures["connections_before"], f"{rpc}: no new connection"
        if how == "transport":
            assert figures["bytes_dropped"] > 0, rpc
        else:
            assert figures["first"] == "DEADLINE_EXCEEDED", (rpc, figures)
            assert figures["bytes_held"] > 0, rpc

    # ReportProgress: the retry is OK (not LEASE_LOST), and the progress is one event, not two.
    assert progress_reply.lease_expire_time.seconds > 0 and not progress_reply.cancel_requested
    progress_events = [e for e in done_events if e.HasField("progress")]
    assert [e.progress.percent for e in progress_events] == [50], flows.kinds(done_events)
    # AddAsset: the retry answers with the asset the first call stored; there is one, not two.
    assert [a.id for a in assets] == [asset_reply.asset.id]
    assert asset_reply.asset == assets[0]
    assert flows.kinds(done_events).count("asset_added") == 1
    # CompleteJob: the retry answers COMPLETED (not INVALID_TRANSITION / LEASE_LOST), recorded once.
    assert complete_reply.job.status == job_pb2.JOB_STATUS_COMPLETED
    assert complete_reply.job.etag == final_done.etag and complete_reply.job.id == done.job.id
    assert _transitions(done_events, job_pb2.JOB_STATUS_COMPLETED) == 1
    assert flows.kinds(done_events) == [
        "created",
        "QUEUED->RUNNING",
        "progress",
        "asset_added",
        "RUNNING->COMPLETED",
    ]
    # FailJob (retryable): the retry answers QUEUED, and the failure counted once.
    assert fail_reply.job.status == job_pb2.JOB_STATUS_QUEUED and fail_reply.job.etag == final_failed.etag
    assert final_failed.status == job_pb2.JOB_STATUS_QUEUED and final_failed.attempt == 1
    assert flows.kinds(failed_events) == ["created", "QUEUED->RUNNING", "RUNNING->QUEUED"]
    for final, events in ((final_done, done_events), (final_failed, failed_events)):
        assert history.path_problems(final, events, table) == []


@pytest.mark.timeout(60)
async def test_fail_job_retried_after_another_worker_claimed_the_job_is_answered_with_the_first_outcome(
    tmp_path: Path,
) -> None:
    """The retry of a FailJob whose reply was lost can arrive after the re-queued job was claimed
    again (the SDK's finishing retries back off up to seconds; a job's backoff can be zero). It must
    still be answered with what that FailJob did (QUEUED, attempt 1), and leave the new attempt alone:
    not with the job as it is now (RUNNING, attempt 2, the other worker's), which FailJobResponse does
    not even allow (FAILED, CANCELLED or QUEUED)."""
    job_type = "net.worker.reclaimed"
    no_backoff = job_pb2.RetryPolicy(
        initial_backoff=duration_pb2.Duration(), max_backoff=duration_pb2.Duration()
    )
    async with _rig(tmp_path) as (direct, proxy), _sdk_stubs(proxy.address) as s:
        job = await flows.create(direct, job_type, max_attempts=3, retry_policy=no_backoff)
        reply = await s.workers.ClaimJobs(
            worker_service_pb2.ClaimJobsRequest(
                worker_id="w-first", job_types=[job_type], lease_duration=LONG_LEASE
            ),
            timeout=WAIT_S,
        )
        [first] = reply.claims
        fail = worker_service_pb2.FailJobRequest(
            job_id=job.id,
            lease_token=first.lease_token,
            error=job_pb2.JobError(message="flaky", retryable=True),
            request_id=f"fail-{uuid.uuid4()}",
        )
        second: list[worker_service_pb2.JobClaim] = []

        async def requeued() -> bool:
            return (await flows.get(direct, job.id)).status == job_pb2.JOB_STATUS_QUEUED

        async def claimed_again() -> None:
            second.extend(await flows.claim(direct, (job_type,), worker_id="w-second", wait_s=5))

        answer, seen = await _lose_reply(
            proxy, "transport", lambda t: s.workers.FailJob(fail, timeout=t), requeued, claimed_again
        )
        [c2] = second
        await flows.progress(direct, c2, 10, "the second attempt's lease still holds")
        now = await flows.get(direct, job.id)
        events = await history.all_events(direct, job.id)

    name = job_pb2.JobStatus.Name
    print(f"\n[worker/reclaimed] retry answered {name(answer.job.status)} attempt {answer.job.attempt}")
    assert not seen["answered_before_reset"] and seen["connections_after"] > seen["connections_before"]
    # Recorded once, and the second attempt untouched.
    assert flows.kinds(events) == [
        "created",
        "QUEUED->RUNNING",
        "RUNNING->QUEUED",
        "QUEUED->RUNNING",
        "progress",
    ]
    assert (now.status, now.attempt, now.worker_id) == (job_pb2.JOB_STATUS_RUNNING, 2, "w-second")
    # The first outcome, not the job as it is now.
    assert (name(answer.job.status), answer.job.attempt) == ("JOB_STATUS_QUEUED", 1), (
        f"the retried FailJob was answered {name(answer.job.status)} attempt {answer.job.attempt} "
        f"(worker {answer.job.worker_id!r}): the job as it is now, not what the FailJob did"
    )


@pytest.mark.timeout(60)
async def test_a_claim_whose_reply_is_lost_is_answered_by_the_retry_with_the_same_leases(
    tmp_path: Path,
) -> None:
    """Without this, the retry would find nothing to claim and the job would sit RUNNING under a lease
    nobody holds until it expired, spending an attempt (with max_attempts 1: FAILED, never run)."""
    job_type = "net.claim"
    async with _rig(tmp_path) as (direct, proxy), Client(proxy.address, timeout=WAIT_S) as client:
        job = await flows.create(direct, job_type, max_attempts=1)
        await client.list_jobs(job_types=[job_type])  # the connection is up: what is lost is the reply

        async def claimed() -> bool:
            return (await flows.get(direct, job.id)).status == job_pb2.JOB_STATUS_RUNNING

        claims, seen = await _lose_reply(
            proxy, "transport", lambda t: client.claim_jobs("w-net", [job_type], lease_duration=120), claimed
        )
        held = await flows.get(direct, job.id)
        [claim] = claims
        done = await client.complete_job(job.id, claim.lease_token, {"ok": True})
        events = await history.all_events(direct, job.id)

    assert not seen["answered_before_reset"] and seen["connections_after"] > seen["connections_before"]
    assert (claim.job.id, claim.job.attempt, held.worker_id) == (job.id, 1, "w-net")
    assert done.status.name == "COMPLETED" and done.attempt == 1
    assert flows.kinds(events) == ["created", "QUEUED->RUNNING", "RUNNING->COMPLETED"]


async def _assets(direct: Stubs, job_id: str) -> list[job_pb2.Asset]:
    reply = await direct.jobs.ListAssets(job_service_pb2.ListAssetsRequest(job_id=job_id), timeout=WAIT_S)
    return list(reply.assets)


# --- latency ---------------------------------------------------------------------------------------


@pytest.mark.timeout(90)
async def test_a_slow_link_changes_nothing_every_job_completes_once_along_the_table(tmp_path: Path) -> None:
    job_type = "net.latency"
    async with (
        _rig(tmp_path) as (direct, proxy),
        Client(proxy.address, timeout=WAIT_S) as client,
        Client(proxy.address, timeout=WAIT_S) as worker_client,
    ):
        proxy.latency(LATENCY_S)
        worker = Worker(worker_client, worker_id="w-slow", concurrency=4, lease_duration=5, poll_wait=2)

        @worker.handler(job_type)
        async def handle(ctx: JobContext) -> dict[str, Any]:
            await ctx.progress(50, "halfway")
            await ctx.add_asset("out", f"s3://bucket/{ctx.job.id}")
            return {"n": ctx.parameters["n"]}

        run = asyncio.create_task(worker.run())
        began = time.monotonic()
        rtts: list[float] = []

        async def create(n: int) -> str:
            t0 = time.monotonic()
            job = await client.create_job(job_type, {"n": n})
            rtts.append(time.monotonic() - t0)
            return job.id

        async def all_completed() -> bool:
            done = await history.all_jobs(direct, [job_type], [job_pb2.JOB_STATUS_COMPLETED])
            return len(done) == LATENCY_JOBS

        try:
            ids = await asyncio.gather(*(create(n) for n in range(LATENCY_JOBS)))
            await _until(all_completed, within_s=60)
            took = time.monotonic() - began
        finally:
            worker.stop()
            async with asyncio.timeout(WAIT_S):
                await run
        jobs = {j.id: j for j in await _jobs(direct, job_type)}
        histories = {job_id: await history.all_events(direct, job_id) for job_id in ids}
        table = await _table(direct, job_type)

    figures = {
        "jobs": len(jobs),
        "seconds": round(took, 2),
        "create_rtt_min_s": round(min(rtts), 3),
        "create_rtt_p50_s": history.percentile(rtts, 50),
        "bytes_to_server": proxy.bytes_to_server,
        "bytes_to_client": proxy.bytes_to_client,
        "connections": proxy.connections,
    }
    history.report("network_latency", figures, tmp_path)
    assert min(rtts) >= 2 * LATENCY_S, "the latency was not applied: nothing was tested"
    assert sorted(jobs) == sorted(ids)
    for job_id, events in histories.items():
        job = jobs[job_id]
        assert job.status == job_pb2.JOB_STATUS_COMPLETED and job.attempt == 1, flows.kinds(events)
        assert _transitions(events, job_pb2.JOB_STATUS_COMPLETED) == 1
        assert history.path_problems(job, events, table) == [], flows.kinds(events)
        assert history.illegal_transitions(events, table) == 0


async def test_a_completion_whose_ack_a_broken_session_lost_is_sent_again_when_the_next_one_opens(
    tmp_path: Path,
) -> None:
    """The server commits a Work session's completion, the ack is lost, the connection is reset: the
    next session resends the step at once (a replay: same request_id), which frees the job's slot, so
    the worker, with room for one job, takes the next. Until that ack the slot stays held, and nothing
    else (no claim, no other step) would wake the session to send it."""
    job_type = "net.session-ack"
    async with _rig(tmp_path) as (direct, proxy), Client(proxy.address, timeout=WAIT_S) as client:
        worker = Worker(client, worker_id="w-ack", concurrency=1, lease_duration=30)
        started, finish = asyncio.Event(), asyncio.Event()

        @worker.handler(job_type)
        async def handle(ctx: JobContext) -> dict[str, Any]:
            started.set()
            await finish.wait()  # until the test has held the session's replies
            return {"job": ctx.job.id}

        async def completed(job_id: str) -> bool:
            job = await direct.jobs.GetJob(job_service_pb2.GetJobRequest(job_id=job_id))
            return job.job.status == job_pb2.JOB_STATUS_COMPLETED

        run = asyncio.create_task(worker.run())
        try:
            first = await client.create_job(job_type)
            async with asyncio.timeout(WAIT_S):
                await started.wait()
            proxy.hold_replies()
            finish.set()
            await _until(lambda: completed(first.id))  # committed; its ack is held in the proxy
            proxy.reset()  # the session breaks with the completion in flight
            second = await client.create_job(job_type)
            await _until(lambda: completed(second.id))
        finally:
            worker.stop()
            async with asyncio.timeout(WAIT_S):
                await run
        events = await history.all_events(direct, first.id)
    assert _transitions(events, job_pb2.JOB_STATUS_COMPLETED) == 1


# --- WatchJob --------------------------------------------------------------------------------------


WatchCall = grpc.aio.UnaryStreamCall[job_service_pb2.WatchJobRequest, job_service_pb2.WatchJobResponse]


async def _read_event(call: WatchCall) -> job_pb2.JobEvent:
    """The next event of a watch stream (the snapshot must already have been read)."""
    item = await asyncio.wait_for(call.read(), WAIT_S)
    assert item is not grpc.aio.EOF and item.HasField("event"), item
    event: job_pb2.JobEvent = item.event
    return event


@pytest.mark.timeout(60)
async def test_watch_cut_by_a_reset_and_resumed_from_the_last_sequence_misses_and_repeats_nothing(
    tmp_path: Path,
) -> None:
    job_type = "net.watch"
    async with _rig(tmp_path) as (direct, proxy), faultproc.stubs(proxy.address) as s:
        job = await flows.create(direct, job_type)
        [c] = await flows.claim(direct, (job_type,))

        first = s.jobs.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id))
        snapshot = await asyncio.wait_for(first.read(), WAIT_S)
        assert snapshot.HasField("job")
        before = [await _read_event(first), await _read_event(first)]  # created, QUEUED->RUNNING
        await flows.progress(direct, c, 10, "one")
        before.append(await _read_event(first))

        # Events the server sends now reach the proxy but not the watcher, and die with the connection.
        proxy.hold_replies()
        await flows.progress(direct, c, 20, "two")
        await flows.add_asset(direct, c, "s3://bucket/watch.png")
        await waiting.until(lambda: proxy.bytes_held > 0, within_s=WAIT_S)
        held = proxy.bytes_held
        proxy.reset()
        with pytest.raises(grpc.aio.AioRpcError) as cut:
            await _read_event(first)
        # And one while nobody watches at all.
        await flows.progress(direct, c, 30, "three")

        cursor = before[-1].sequence
        second = s.jobs.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id, after_sequence=cursor))
        resumed_snapshot = await asyncio.wait_for(second.read(), WAIT_S)
        assert resumed_snapshot.HasField("job")
        after: list[job_pb2.JobEvent] = []
        while not after or after[-1].sequence < resumed_snapshot.job.last_sequence:
            after.append(await _read_event(second))  # the two lost in flight, the one while away
        await flows.progress(direct, c, 40, "four")  # and live ones after the catch-up
        await flows.complete(direct, c)
        async with asyncio.timeout(WAIT_S):
            while (item := await second.read()) is not grpc.aio.EOF:
                after.append(item.event)
        final = await flows.get(direct, job.id)
        recorded = await history.all_events(direct, job.id)

    union = [e.sequence for e in before + after]
    print(f"\n[watch] before={len(before)} held={held}B after={len(after)} sequences={union}")
    assert cut.value.code() == grpc.StatusCode.UNAVAILABLE, cut.value
    assert held > 0
    assert len(union) == len(set(union)), f"an event was delivered twice: {union}"
    assert union == list(range(1, final.last_sequence + 1)), f"a gap: {union}"
    assert [e.SerializeToString() for e in before + after] == [e.SerializeToString() for e in recorded]
    assert final.status == job_pb2.JOB_STATUS_COMPLETED and flows.kinds(after)[-1] == "RUNNING->COMPLETED"
