"""A job's whole life over real gRPC: create, claim, progress, asset, finish, watched live."""

from __future__ import annotations

import grpc
import pytest
from support import flows
from support.rpc import Stubs, fails

from jobwarden.v1 import job_pb2, job_service_pb2

S = job_pb2.JobStatus


@pytest.mark.parametrize(
    ("outcome", "status", "last"),
    [
        ("complete", S.JOB_STATUS_COMPLETED, "RUNNING->COMPLETED"),
        ("partial", S.JOB_STATUS_PARTIAL, "RUNNING->PARTIAL"),
        ("fail", S.JOB_STATUS_FAILED, "RUNNING->FAILED"),
    ],
)
async def test_watcher_sees_every_event_in_order_and_the_stream_ends(
    stubs: Stubs, outcome: str, status: int, last: str
) -> None:
    job = await flows.create(stubs, parameters=flows.struct(frames=3))
    watcher = flows.start_watch(stubs, job.id)
    claim = await flows.claim_one(stubs)
    reply = await flows.progress(stubs, claim, 50, "halfway")
    assert not reply.cancel_requested
    asset = await flows.add_asset(stubs, claim)
    if outcome == "fail":
        final = await flows.fail(stubs, claim, "renderer crashed")
        assert final.error.message == "renderer crashed"
    else:
        final = await flows.complete(stubs, claim, partial=outcome == "partial", frames=3)
        assert final.progress.percent == 100
        assert dict(final.result) == {"frames": 3}
    assert final.status == status

    snapshot, seen = await watcher
    assert snapshot.id == job.id
    assert [e.sequence for e in seen] == list(range(1, len(seen) + 1))
    assert flows.kinds(seen) == ["created", "QUEUED->RUNNING", "progress", "asset_added", last]
    assert seen[2].progress.message == "halfway"
    assert seen[3].asset_added.id == asset.id
    assert seen[1].actor == "worker:w1"
    assert list(seen) == await flows.events(stubs, job.id)

    assets = await stubs.jobs.ListAssets(job_service_pb2.ListAssetsRequest(job_id=job.id))
    assert [a.id for a in assets.assets] == [asset.id]
    fetched = await stubs.jobs.GetAsset(job_service_pb2.GetAssetRequest(asset_id=asset.id))
    assert fetched.asset.uri == "s3://bucket/out.png"
    assert fetched.asset.job_id == job.id


async def test_watching_a_finished_job_replays_history_and_ends(stubs: Stubs) -> None:
    job = await flows.create(stubs)
    await flows.complete(stubs, await flows.claim_one(stubs))
    snapshot, seen = await flows.watch(stubs, job.id)
    assert snapshot.status == S.JOB_STATUS_COMPLETED
    assert flows.kinds(seen) == ["created", "QUEUED->RUNNING", "RUNNING->COMPLETED"]
    snapshot, seen = await flows.watch(stubs, job.id, after=3)
    assert seen == []


async def test_claim_order_is_priority_then_age(stubs: Stubs) -> None:
    low = await flows.create(stubs, priority=-5)
    first = await flows.create(stubs)
    second = await flows.create(stubs)
    high = await flows.create(stubs, priority=10)
    claims = await flows.claim(stubs, max_jobs=10)
    assert [c.job.id for c in claims] == [high.id, first.id, second.id, low.id]
    assert all(c.job.status == S.JOB_STATUS_RUNNING and c.job.attempt == 1 for c in claims)
    assert len({c.lease_token for c in claims}) == 4


async def test_claim_respects_job_types_and_run_after(stubs: Stubs) -> None:
    later = await flows.create(stubs, job_type="demo")
    later_request = job_service_pb2.CreateJobRequest(job_type="demo")
    later_request.run_after.FromSeconds(4_000_000_000)
    scheduled = (await stubs.jobs.CreateJob(later_request)).job
    other = await flows.create(stubs, job_type="other")
    claims = await flows.claim(stubs, ("demo",), max_jobs=10)
    assert [c.job.id for c in claims] == [later.id]
    assert (await flows.get(stubs, scheduled.id)).status == S.JOB_STATUS_QUEUED
    assert (await flows.get(stubs, other.id)).status == S.JOB_STATUS_QUEUED


async def test_long_poll_claim_returns_work_created_while_waiting(stubs: Stubs) -> None:
    import asyncio

    waiting = asyncio.create_task(flows.claim(stubs, wait_s=30))
    job = await flows.create(stubs)
    claims = await waiting
    assert [c.job.id for c in claims] == [job.id]


async def test_cancel_queued_job_is_immediate(stubs: Stubs) -> None:
    job = await flows.create(stubs)
    reply = await stubs.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id, reason="not needed"))
    assert reply.job.status == S.JOB_STATUS_CANCELLED
    assert reply.job.stop_reason == job_pb2.STOP_REASON_USER_CANCELLED
    assert await flows.claim(stubs) == []


async def test_cancel_running_job_asks_the_worker_then_fail_confirms(stubs: Stubs) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    reply = await stubs.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id))
    assert reply.job.status == S.JOB_STATUS_RUNNING
    assert reply.job.cancel_requested
    assert (await flows.progress(stubs, claim, 10)).cancel_requested
    final = await flows.fail(stubs, claim, "stopped on request")
    assert final.status == S.JOB_STATUS_CANCELLED
    assert final.stop_reason == job_pb2.STOP_REASON_USER_CANCELLED
    assert flows.kinds(await flows.events(stubs, job.id))[-3:] == [
        "cancel_requested",
        "progress",
        "RUNNING->CANCELLED",
    ]


async def test_stale_etag_on_cancel_is_aborted(stubs: Stubs) -> None:
    job = await flows.create(stubs)
    await flows.claim_one(stubs)
    failure = await fails(
        stubs.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id, etag=job.etag))
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "ETAG_MISMATCH")
    assert not (await flows.get(stubs, job.id)).cancel_requested


async def test_held_job_waits_for_release(stubs: Stubs) -> None:
    job = await flows.create(stubs, hold=True)
    assert job.status == S.JOB_STATUS_CREATED
    assert await flows.claim(stubs) == []
    released = await stubs.jobs.ReleaseJob(job_service_pb2.ReleaseJobRequest(job_id=job.id))
    assert released.job.status == S.JOB_STATUS_QUEUED
    assert (await flows.claim_one(stubs)).job.id == job.id


async def test_retryable_failure_requeues_until_attempts_run_out(stubs: Stubs, srv: object) -> None:
    job = await flows.create(stubs, max_attempts=2)
    first = await flows.claim_one(stubs)
    requeued = await flows.fail(stubs, first, "flaky", retryable=True)
    assert requeued.status == S.JOB_STATUS_QUEUED
    assert requeued.HasField("run_after")
    assert requeued.error.message == "flaky"
    assert requeued.id == job.id


async def test_get_lifecycle_publishes_the_table(stubs: Stubs) -> None:
    reply = await stubs.jobs.GetLifecycle(job_service_pb2.GetLifecycleRequest(job_type="demo"))
    table = reply.lifecycle
    assert table.name == "standard"
    assert table.initial_status == S.JOB_STATUS_QUEUED
    edges = {(t.from_status, t.to_status) for t in table.transitions}
    assert (S.JOB_STATUS_QUEUED, S.JOB_STATUS_RUNNING) in edges
    assert (S.JOB_STATUS_RUNNING, S.JOB_STATUS_QUEUED) in edges
    assert not any(f in table.terminal_statuses for f, _ in edges)


async def test_repeated_progress_is_a_heartbeat_without_an_event(stubs: Stubs) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    first = await flows.progress(stubs, claim, 50, "half")
    again = await flows.progress(stubs, claim, 50, "half")
    assert again.lease_expire_time.ToDatetime() >= first.lease_expire_time.ToDatetime()
    assert flows.kinds(await flows.events(stubs, job.id)) == ["created", "QUEUED->RUNNING", "progress"]
