"""Every job ends, even one nobody works: a queue timeout (schedule-to-start) expires a job that waits
too long to start, held or queued, with its own stop reason; a job started in time is not touched."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import duration_pb2
from support import flows, rpc

from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2
from jobwarden_server import app
from jobwarden_server.domain.lifecycle import Lifecycles
from jobwarden_server.domain.retry import RetryPolicy

S = job_pb2.JobStatus
FAST = {"retry": RetryPolicy(initial_backoff_s=0.0, max_backoff_s=0.0), "reaper_interval_s": 0.1}
DEFAULTS = {"typed": 1.0}
"""The server's per-type default (`[queue_timeouts]` in its config)."""


@pytest.fixture
async def srv(tmp_path: Path, backend: str) -> AsyncIterator[app.RunningServer]:
    lifecycles = Lifecycles.build(by_job_type={"simple-job": "simple"})
    overrides = {**FAST, "queue_timeouts": DEFAULTS, "lifecycles": lifecycles}
    async with rpc.server(tmp_path, backend=backend, **overrides) as running:  # type: ignore[arg-type]
        yield running


def _create(
    job_type: str, seconds: float | None = None, **fields: object
) -> job_service_pb2.CreateJobRequest:
    request = job_service_pb2.CreateJobRequest(job_type=job_type, **fields)  # type: ignore[arg-type]
    if seconds is not None:
        request.queue_timeout.CopyFrom(
            duration_pb2.Duration(seconds=int(seconds), nanos=int(seconds % 1 * 1e9))
        )
    return request


async def _expired(s: rpc.Stubs, job: job_pb2.Job) -> job_pb2.Job:
    event = await flows.until_transition(s, job.id, "EXPIRED")
    assert event.actor == "system" and "queue timeout" in event.transition.reason
    final = await flows.get(s, job.id)
    assert (final.status, final.stop_reason) == (
        S.JOB_STATUS_EXPIRED,
        job_pb2.STOP_REASON_QUEUE_TIMEOUT_EXCEEDED,
    )
    assert not final.HasField("queue_expire_time")  # it no longer waits
    return final


async def test_a_queued_job_nobody_claims_expires_with_its_own_stop_reason(stubs: rpc.Stubs) -> None:
    job = (await stubs.jobs.CreateJob(_create("unserved", 1))).job
    assert job.queue_timeout.seconds == 1 and job.HasField("queue_expire_time")
    final = await _expired(stubs, job)
    assert final.attempt == 0
    claim = worker_service_pb2.ClaimJobsRequest(worker_id="late", job_types=["unserved"])
    assert list((await stubs.workers.ClaimJobs(claim)).claims) == []


async def test_a_held_job_never_released_expires_too(stubs: rpc.Stubs) -> None:
    job = (await stubs.jobs.CreateJob(_create("held", 1, hold=True))).job
    assert job.status == S.JOB_STATUS_CREATED
    await _expired(stubs, job)


async def test_the_types_default_applies_when_the_job_sets_none(stubs: rpc.Stubs) -> None:
    job = (await stubs.jobs.CreateJob(_create("typed"))).job
    assert job.queue_timeout.seconds == 1
    await _expired(stubs, job)
    untimed = (await stubs.jobs.CreateJob(_create("other"))).job
    assert not untimed.HasField("queue_timeout") and not untimed.HasField("queue_expire_time")


async def test_a_job_claimed_in_time_runs_to_its_end_and_a_retry_waits_anew(stubs: rpc.Stubs) -> None:
    job = (await stubs.jobs.CreateJob(_create("served", 30, max_attempts=2))).job
    first_window = job.queue_expire_time.ToDatetime()
    claim = await flows.claim_one(stubs, "served")
    assert not claim.job.HasField("queue_expire_time")  # running: no longer waiting
    failed = await stubs.workers.FailJob(
        worker_service_pb2.FailJobRequest(
            job_id=job.id,
            lease_token=claim.lease_token,
            error=job_pb2.JobError(message="flaky", retryable=True),
        )
    )
    assert failed.job.status == S.JOB_STATUS_QUEUED
    assert failed.job.queue_expire_time.ToDatetime() > first_window  # a new wait from the retry on
    done = await flows.complete(stubs, await flows.claim_one(stubs, "served"))
    assert (done.status, done.stop_reason) == (S.JOB_STATUS_COMPLETED, job_pb2.STOP_REASON_UNSPECIFIED)


async def test_a_job_scheduled_later_waits_from_its_run_after(stubs: rpc.Stubs) -> None:
    request = _create("later", 5)
    request.run_after.GetCurrentTime()
    request.run_after.seconds += 60
    job = (await stubs.jobs.CreateJob(request)).job
    waited = job.queue_expire_time.ToDatetime() - job.run_after.ToDatetime()
    assert waited.total_seconds() == 5


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (_create("x", 0.5), "queue_timeout"),
        (_create("x", 367 * 86400), "queue_timeout"),
        (_create("simple-job", 10), "queue_timeout"),  # its table has no EXPIRED state
    ],
    ids=["too short", "too long", "table cannot expire"],
)
async def test_a_timeout_it_cannot_honour_is_refused(
    stubs: rpc.Stubs, request_: job_service_pb2.CreateJobRequest, field: str
) -> None:
    failure = await rpc.fails(stubs.jobs.CreateJob(request_))
    assert (failure.code, failure.fields) == (grpc.StatusCode.INVALID_ARGUMENT, [field])
