"""Stall detection, apart from liveness: a running job whose worker keeps its lease alive but whose
progress stands still past its type's stall_after is flagged (or, with action fail, failed with stop
reason STALLED); progress that moves again clears the flag. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from support import flows, rpc
from support.clock import MovedClock

from jobwarden.v1 import job_pb2, job_service_pb2
from jobwarden.v1 import worker_service_pb2 as pb
from jobwarden_server import app, store
from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.domain.lifecycle import Lifecycles
from jobwarden_server.domain.records import Progress
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.stall import StallAction, StallRule
from jobwarden_server.events.bus import EventBus
from jobwarden_server.observability.metrics import Metrics
from jobwarden_server.service import wiring
from jobwarden_server.service.jobs import JobSpec
from jobwarden_server.service.reaper import ReaperSettings
from jobwarden_server.service.work import ClaimRequest

S = job_pb2.JobStatus
STALL = {
    "flag.me": StallRule(after_s=0.5),
    "fail.me": StallRule(after_s=1.2, action=StallAction.FAIL),
    "retry.me": StallRule(after_s=0.3, action=StallAction.FAIL),
}
"""fail.me stalls after its 1 s lease would have run out: only renewals keep the lease until then."""


@pytest.fixture
async def srv(tmp_path: Path, backend: str) -> AsyncIterator[app.RunningServer]:
    overrides: dict[str, Any] = {"stall": STALL, "reaper_interval_s": 0.05, "retry": RetryPolicy()}
    async with rpc.server(tmp_path, backend=backend, **overrides) as running:
        yield running


@contextlib.asynccontextmanager
async def heartbeats(s: rpc.Stubs, claim: pb.JobClaim, percent: float) -> AsyncIterator[None]:
    """A worker that keeps reporting the same progress (its lease renewed, its job stuck) for the block."""

    async def beat() -> None:
        while True:
            try:
                await flows.progress(s, claim, percent)
            except grpc.aio.AioRpcError as error:
                # The job was taken from this worker (a stall failed or retried it): like a real
                # worker, it stops there. The test's own wait sees the change.
                if error.code() == grpc.StatusCode.ABORTED:
                    return
                raise
            await asyncio.sleep(0.05)  # the worker's pace, not a wait for anything

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _claim(s: rpc.Stubs, job_type: str, lease_s: int = 30) -> pb.JobClaim:
    request = pb.ClaimJobsRequest(
        worker_id="stuck", job_types=[job_type], lease_duration=duration_pb2.Duration(seconds=lease_s)
    )
    (claim,) = (await s.workers.ClaimJobs(request)).claims
    return claim


async def _stalled_ids(s: rpc.Stubs) -> set[str]:
    reply = await s.jobs.ListJobs(job_service_pb2.ListJobsRequest(stalled=True))
    return {j.id for j in reply.jobs}


async def test_heartbeats_without_progress_flag_the_job_and_progress_clears_it(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs, "flag.me")
    busy = await flows.create(stubs, "other")  # a type without a stall rule: never flagged
    claim = await _claim(stubs, "flag.me")
    await _claim(stubs, "other")
    await flows.progress(stubs, claim, 10)
    moved_at = (await flows.get(stubs, job.id)).progress_time.ToDatetime()
    async with heartbeats(stubs, claim, 10):
        event = await flows.until_event(stubs, job.id, "stalled")
    assert event.actor == "system"
    assert event.stalled.since.ToDatetime() == moved_at  # the heartbeats did not count as progress
    assert (event.stalled.progress.percent, event.stalled.failed) == (10, False)
    assert event.stalled.stall_after.ToTimedelta().total_seconds() == 0.5
    flagged = await flows.get(stubs, job.id)
    assert flagged.status == S.JOB_STATUS_RUNNING and flagged.stalled
    stall_time = flagged.stall_time.ToDatetime()
    assert moved_at + dt.timedelta(seconds=0.5) <= stall_time <= event.create_time.ToDatetime()
    assert await _stalled_ids(stubs) == {job.id}
    assert busy.id not in await _stalled_ids(stubs)
    stats = await stubs.jobs.GetJobStats(job_service_pb2.GetJobStatsRequest(job_types=["flag.me", "other"]))
    assert [(t.job_type, t.running, t.stalled) for t in stats.job_types] == [
        ("flag.me", 1, 1),
        ("other", 1, 0),
    ]

    await flows.progress(stubs, claim, 20)  # it moves again
    cleared = await flows.get(stubs, job.id)
    assert not cleared.stalled and not cleared.HasField("stall_time")
    assert cleared.progress_time.ToDatetime() > moved_at
    # Flagged again only once it stands still again, and a completion clears it for good.
    await flows.until_event(stubs, job.id, "stalled", after=event.sequence)
    done = await flows.complete(stubs, claim)
    assert done.status == S.JOB_STATUS_COMPLETED and not done.stalled
    assert await _stalled_ids(stubs) == set()


async def test_a_stalled_job_in_a_work_session_is_failed_with_stop_reason_stalled(
    stubs: rpc.Stubs,
) -> None:
    job = await flows.create(stubs, "fail.me", max_attempts=1)
    session: Any = stubs.workers.Work(metadata=stubs.metadata)
    start = pb.WorkStart(
        worker_id="w-session", job_types=["fail.me"], lease_duration=duration_pb2.Duration(seconds=1)
    )
    await session.write(pb.WorkRequest(start=start, credits=1))
    claims: list[pb.JobClaim] = []
    while not claims:
        claims += (await session.read()).claims
    (claim,) = claims
    holding = [pb.WorkLease(job_id=job.id, lease_token=claim.lease_token)]

    async def talk() -> None:
        while True:  # list the held job at a worker's pace: the session renews its lease
            await session.write(pb.WorkRequest(holding=holding))
            await asyncio.sleep(0.1)

    talking = asyncio.create_task(talk())
    try:
        ended = await flows.until_transition(stubs, job.id, "FAILED")
    finally:
        talking.cancel()
        session.cancel()
    history = await flows.events(stubs, job.id)
    stalled = next(e for e in history if e.HasField("stalled"))
    assert stalled.stalled.failed and stalled.sequence == ended.sequence - 1
    # The lease was still alive when the job stalled: renewals kept it past its first expiry.
    assert stalled.create_time.ToDatetime() > claim.lease_expire_time.ToDatetime()
    assert ended.transition.stop_reason == job_pb2.STOP_REASON_STALLED
    final = await flows.get(stubs, job.id)
    assert (final.status, final.stop_reason, final.error.reason) == (
        S.JOB_STATUS_FAILED,
        job_pb2.STOP_REASON_STALLED,
        "STALLED",
    )
    assert final.stalled and final.error.retryable


async def test_a_stalled_job_with_attempts_left_is_retried_unflagged(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs, "retry.me", max_attempts=2)
    claim = await _claim(stubs, "retry.me")
    async with heartbeats(stubs, claim, 0):
        retry = await flows.until_transition(stubs, job.id, "QUEUED")
    assert retry.actor == "system" and "progress stood still" in retry.transition.reason
    again = await flows.get(stubs, job.id)
    assert again.status == S.JOB_STATUS_QUEUED and not again.stalled
    assert again.error.reason == "STALLED"


@pytest.fixture
async def db(tmp_path: Path, backend: str) -> AsyncIterator[store.Store]:
    async with rpc.migrated_store(tmp_path, backend) as opened:
        yield opened


async def test_each_reaper_pass_flags_a_still_job_once_and_counts_it(db: store.Store) -> None:
    clock = MovedClock()
    settings = ReaperSettings(stall={"demo": StallRule(after_s=60)})
    metrics = Metrics()
    services = wiring.build(
        db, EventBus(), Lifecycles.build(), RetryPolicy(), clock=clock, reaper=settings, metrics=metrics
    )
    who = Principal(owner="acme", roles=frozenset({Role.CLIENT, Role.WORKER}))
    await services.jobs.create(who, JobSpec(job_type="demo"))
    claim = ClaimRequest(worker_id="w1", job_types=frozenset({"demo"}), lease_duration_s=3600)
    [job] = await services.work.claim(who, claim)
    reaper = services.reaper

    async def pass_after(seconds: float) -> int:
        clock.now += dt.timedelta(seconds=seconds)
        return await reaper.tick()

    def flagged() -> float:
        return metrics.registry.get_sample_value("jobwarden_jobs_stalled_total", {"job_type": "demo"}) or 0.0

    assert (await pass_after(59), flagged()) == (0, 0)
    assert (await pass_after(1), flagged()) == (1, 1)
    assert (await services.jobs.get(who, job.id)).stall_time == clock.now
    assert (await pass_after(600), flagged()) == (0, 1)  # flagged already: left alone
    moved = await services.work.progress(who, job.id, job.lease_token, Progress(percent=5))
    assert not moved.stalled and moved.progress_time == clock.now
    assert (await pass_after(60), flagged()) == (1, 2)  # still again for a minute
