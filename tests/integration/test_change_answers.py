"""A change's answer is the job as stored: the row after a compare-and-set guarded by the version it
read is built from that read (store/_sql.py, `_row_after`), not read back, so every column it sets or
advances must come out as the database keeps it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from support import flows
from support.rpc import Stubs

from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2

Change = Callable[[Stubs, job_pb2.Job], Awaitable[job_pb2.Job]]


async def _claimed(stubs: Stubs) -> worker_service_pb2.JobClaim:
    claim = await flows.claim_one(stubs)
    await flows.progress(stubs, claim, 40, "on the way")
    await stubs.workers.AddMessages(
        worker_service_pb2.AddMessagesRequest(
            job_id=claim.job.id, lease_token=claim.lease_token, messages=[job_pb2.JobLog(message="a note")]
        ),
        metadata=stubs.metadata,
    )
    return claim


async def _complete(stubs: Stubs, _job: job_pb2.Job) -> job_pb2.Job:
    return await flows.complete(stubs, await _claimed(stubs), frames=3, name="out", ratio=0.5)


async def _partial(stubs: Stubs, _job: job_pb2.Job) -> job_pb2.Job:
    return await flows.complete(stubs, await _claimed(stubs), partial=True, frames=1)


async def _fail(stubs: Stubs, _job: job_pb2.Job) -> job_pb2.Job:
    return await flows.fail(stubs, await _claimed(stubs), "renderer crashed")


async def _retry(stubs: Stubs, _job: job_pb2.Job) -> job_pb2.Job:
    return await flows.fail(stubs, await _claimed(stubs), "try again", retryable=True)


async def _cancel_running(stubs: Stubs, job: job_pb2.Job) -> job_pb2.Job:
    await _claimed(stubs)
    return await _cancel(stubs, job)


async def _cancel(stubs: Stubs, job: job_pb2.Job) -> job_pb2.Job:
    request = job_service_pb2.CancelJobRequest(job_id=job.id, reason="not needed")
    return (await stubs.jobs.CancelJob(request, metadata=stubs.metadata)).job


@pytest.mark.parametrize(
    "change",
    [_complete, _partial, _fail, _retry, _cancel_running, _cancel],
    ids=["complete", "partial", "fail", "retry", "cancel-running", "cancel-queued"],
)
async def test_the_job_a_change_answers_with_is_the_job_as_stored(stubs: Stubs, change: Change) -> None:
    job = await flows.create(stubs, parameters=flows.struct(frames=3), labels={"team": "render"}, priority=2)
    answered = await change(stubs, job)
    stored = await flows.get(stubs, job.id)
    assert answered.etag != job.etag
    assert answered == stored


async def test_a_released_job_is_answered_as_stored(stubs: Stubs) -> None:
    job = await flows.create(stubs, hold=True)
    request = job_service_pb2.ReleaseJobRequest(job_id=job.id)
    answered = (await stubs.jobs.ReleaseJob(request, metadata=stubs.metadata)).job
    assert answered.status == job_pb2.JobStatus.JOB_STATUS_QUEUED
    assert answered == await flows.get(stubs, job.id)
