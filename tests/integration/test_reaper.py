"""The reaper: expired leases are rescued or failed, deadlines expire jobs, unconfirmed cancels end."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from support import flows, rpc

from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2
from jobwarden_server.domain.retry import RetryPolicy

S = job_pb2.JobStatus
FAST = {"retry": RetryPolicy(initial_backoff_s=0.0, max_backoff_s=0.0), "reaper_interval_s": 0.1}


@pytest.fixture
async def stubs(tmp_path: Path) -> AsyncIterator[rpc.Stubs]:
    async with rpc.server(tmp_path, cancel_grace_s=0.5, **FAST) as srv, rpc.stubs(srv.address) as s:  # type: ignore[arg-type]
        yield s


async def _claim_short(s: rpc.Stubs, job_type: str = "demo") -> worker_service_pb2.JobClaim:
    request = worker_service_pb2.ClaimJobsRequest(
        worker_id="sleepy", job_types=[job_type], lease_duration=duration_pb2.Duration(seconds=1)
    )
    (claim,) = (await s.workers.ClaimJobs(request)).claims
    return claim


async def test_expired_lease_is_requeued_and_the_old_holder_is_fenced(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs, max_attempts=2)
    old = await _claim_short(stubs)
    rescue = await flows.until_transition(stubs, job.id, "QUEUED")
    assert rescue.actor == "system"
    assert "lease" in rescue.transition.reason
    new = await flows.claim_one(stubs)
    assert new.job.id == job.id and new.job.attempt == 2
    failure = await rpc.fails(flows.complete(stubs, old))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "LEASE_LOST")
    assert (await flows.complete(stubs, new)).status == S.JOB_STATUS_COMPLETED


async def test_expired_lease_on_the_last_attempt_fails_the_job(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs, max_attempts=1)
    await _claim_short(stubs)
    await flows.until_transition(stubs, job.id, "FAILED")
    final = await flows.get(stubs, job.id)
    assert final.stop_reason == job_pb2.STOP_REASON_LEASE_EXPIRED
    assert final.error.reason == "LEASE_EXPIRED"


async def test_deadline_expires_a_queued_job_and_it_is_never_claimed(stubs: rpc.Stubs) -> None:
    request = job_service_pb2.CreateJobRequest(job_type="late", hold=True)
    request.deadline.GetCurrentTime()
    request.deadline.seconds += 1
    job = (await stubs.jobs.CreateJob(request)).job
    _, history = await flows.watch(stubs, job.id)  # ends at the terminal event
    assert flows.kinds(history)[-1] == "CREATED->EXPIRED"
    final = await flows.get(stubs, job.id)
    assert final.stop_reason == job_pb2.STOP_REASON_TIMEOUT_EXCEEDED
    assert await flows.claim(stubs, ("late",)) == []


async def test_deadline_expires_a_running_job_and_its_worker_learns_it(stubs: rpc.Stubs) -> None:
    request = job_service_pb2.CreateJobRequest(job_type="demo")
    request.deadline.GetCurrentTime()
    request.deadline.seconds += 2
    job = (await stubs.jobs.CreateJob(request)).job
    claim = await flows.claim_one(stubs)
    await flows.until_transition(stubs, job.id, "EXPIRED")
    failure = await rpc.fails(flows.progress(stubs, claim, 50))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "LEASE_LOST")


async def test_unconfirmed_cancel_ends_cancelled_after_the_grace_period(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)  # a 30 s lease: only the cancel grace (0.5 s) can end it
    await stubs.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id))
    reply = await flows.progress(stubs, claim, 10)  # a heartbeat must not extend the grace
    assert reply.cancel_requested
    event = await flows.until_transition(stubs, job.id, "CANCELLED")
    assert event.actor == "system"
    final = await flows.get(stubs, job.id)
    assert final.stop_reason == job_pb2.STOP_REASON_USER_CANCELLED
    failure = await rpc.fails(flows.complete(stubs, claim))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "LEASE_LOST")


async def test_deadline_is_refused_for_a_table_without_expired(tmp_path: Path) -> None:
    from jobwarden_server.domain.lifecycle import Lifecycles

    lifecycles = Lifecycles.build(by_job_type={"s": "simple"})
    async with rpc.server(tmp_path, lifecycles=lifecycles) as srv, rpc.stubs(srv.address) as s:
        request = job_service_pb2.CreateJobRequest(job_type="s")
        request.deadline.GetCurrentTime()
        request.deadline.seconds += 60
        failure = await rpc.fails(s.jobs.CreateJob(request))
        assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["deadline"])
