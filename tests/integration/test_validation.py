"""Bad input gets INVALID_ARGUMENT with a reason and a field, and changes nothing."""

from __future__ import annotations

import math

import grpc
import pytest
from support import flows, rpc

from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2

INVALID = grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("percent", [-0.5, 100.01, 1e9, math.nan, math.inf])
async def test_progress_outside_0_to_100_is_refused(stubs: rpc.Stubs, percent: float) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    before = await flows.get(stubs, job.id)
    failure = await rpc.fails(flows.progress(stubs, claim, percent))
    assert (failure.code, failure.reason) == (INVALID, "PROGRESS_OUT_OF_RANGE")
    assert failure.fields == ["progress.percent"]
    assert await flows.get(stubs, job.id) == before


async def test_done_greater_than_total_is_refused(stubs: rpc.Stubs) -> None:
    await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    failure = await rpc.fails(
        stubs.workers.ReportProgress(
            worker_service_pb2.ReportProgressRequest(
                job_id=claim.job.id, lease_token=claim.lease_token, progress=job_pb2.Progress(done=5, total=4)
            )
        )
    )
    assert (failure.code, failure.reason) == (INVALID, "PROGRESS_OUT_OF_RANGE")


@pytest.mark.parametrize("message", ["", "   "])
async def test_fail_without_a_message_is_refused(stubs: rpc.Stubs, message: str) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    failure = await rpc.fails(flows.fail(stubs, claim, message))
    assert (failure.code, failure.reason, failure.fields) == (INVALID, "INVALID_ARGUMENT", ["error.message"])
    assert (await flows.get(stubs, job.id)).status == job_pb2.JOB_STATUS_RUNNING


async def test_partial_without_an_error_message_is_refused(stubs: rpc.Stubs) -> None:
    await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    request = worker_service_pb2.CompleteJobRequest(
        job_id=claim.job.id, lease_token=claim.lease_token, partial=True
    )
    failure = await rpc.fails(stubs.workers.CompleteJob(request))
    assert (failure.code, failure.fields) == (INVALID, ["error.message"])


@pytest.mark.parametrize(
    "request_",
    [
        job_service_pb2.ListJobsRequest(statuses=[99]),  # type: ignore[list-item]
        job_service_pb2.ListJobsRequest(statuses=[job_pb2.JOB_STATUS_UNSPECIFIED]),
        job_service_pb2.ListJobsRequest(stop_reasons=[42]),  # type: ignore[list-item]
        job_service_pb2.ListJobsRequest(page_size=-1),
        job_service_pb2.ListJobsRequest(page_token="garbage!"),
        job_service_pb2.ListJobsRequest(page_token="eyJxIjoiYWJjIiwicCI6WzFdfQ"),  # another query's token
    ],
)
async def test_bad_list_requests_are_refused(
    stubs: rpc.Stubs, request_: job_service_pb2.ListJobsRequest
) -> None:
    failure = await rpc.fails(stubs.jobs.ListJobs(request_))
    assert failure.code == INVALID
    assert failure.reason in {"INVALID_ARGUMENT", "INVALID_PAGE_TOKEN"}
    assert failure.fields


async def test_unknown_stop_reason_on_fail_is_refused(stubs: rpc.Stubs) -> None:
    await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    request = worker_service_pb2.FailJobRequest(
        job_id=claim.job.id,
        lease_token=claim.lease_token,
        error=job_pb2.JobError(message="x"),
        stop_reason=77,  # type: ignore[arg-type]
    )
    failure = await rpc.fails(stubs.workers.FailJob(request))
    assert (failure.code, failure.fields) == (INVALID, ["stop_reason"])


@pytest.mark.parametrize(
    ("fields", "bad_field", "reason"),
    [
        ({"job_type": ""}, "job_type", "INVALID_ARGUMENT"),
        ({"job_type": "has spaces"}, "job_type", "INVALID_ARGUMENT"),
        ({"job_type": "x" * 129}, "job_type", "TOO_LARGE"),
        ({"job_type": "ok", "priority": 5000}, "priority", "INVALID_ARGUMENT"),
        ({"job_type": "ok", "max_attempts": -1}, "max_attempts", "INVALID_ARGUMENT"),
        ({"job_type": "ok", "callback_url": "ftp://x"}, "callback_url", "INVALID_ARGUMENT"),
        ({"job_type": "ok", "labels": {f"k{i}": "v" for i in range(65)}}, "labels", "TOO_LARGE"),
        ({"job_type": "ok", "parameters": flows.struct(blob="x" * (1 << 20))}, "parameters", "TOO_LARGE"),
    ],
)
async def test_bad_create_requests_are_refused_and_create_nothing(
    stubs: rpc.Stubs, fields: dict[str, object], bad_field: str, reason: str
) -> None:
    failure = await rpc.fails(stubs.jobs.CreateJob(job_service_pb2.CreateJobRequest(**fields)))  # type: ignore[arg-type]
    assert (failure.code, failure.reason, failure.fields) == (INVALID, reason, [bad_field])
    assert list((await stubs.jobs.ListJobs(job_service_pb2.ListJobsRequest())).jobs) == []


async def test_oversized_message_is_refused_with_a_reason(stubs: rpc.Stubs) -> None:
    request = job_service_pb2.CreateJobRequest(job_type="ok", parameters=flows.struct(blob="x" * (5 << 20)))
    failure = await rpc.fails(stubs.jobs.CreateJob(request))
    assert (failure.code, failure.reason, failure.fields) == (INVALID, "TOO_LARGE", ["request"])


async def test_claim_requests_are_checked(stubs: rpc.Stubs) -> None:
    for request in (
        worker_service_pb2.ClaimJobsRequest(job_types=["demo"]),
        worker_service_pb2.ClaimJobsRequest(worker_id="w", job_types=[]),
        worker_service_pb2.ClaimJobsRequest(worker_id="w", job_types=["demo"], max_jobs=1000),
    ):
        failure = await rpc.fails(stubs.workers.ClaimJobs(request))
        assert failure.code == INVALID and failure.fields


async def test_missing_ids_are_invalid_not_internal(stubs: rpc.Stubs) -> None:
    for call in (
        stubs.jobs.GetJob(job_service_pb2.GetJobRequest()),
        stubs.jobs.CancelJob(job_service_pb2.CancelJobRequest()),
        stubs.jobs.GetAsset(job_service_pb2.GetAssetRequest()),
        stubs.workers.CompleteJob(worker_service_pb2.CompleteJobRequest(lease_token="t")),
    ):
        failure = await rpc.fails(call)
        assert failure.code == INVALID and failure.fields


@pytest.mark.parametrize(
    "reason",
    [
        job_pb2.STOP_REASON_USER_CANCELLED,
        job_pb2.STOP_REASON_TIMEOUT_EXCEEDED,
        job_pb2.STOP_REASON_LEASE_EXPIRED,
        job_pb2.STOP_REASON_MAX_ATTEMPTS_EXCEEDED,
    ],
)
async def test_a_worker_cannot_give_a_server_owned_stop_reason(
    stubs: rpc.Stubs, reason: job_pb2.StopReason.ValueType
) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    before = await flows.get(stubs, job.id)
    request = worker_service_pb2.FailJobRequest(
        job_id=claim.job.id,
        lease_token=claim.lease_token,
        error=job_pb2.JobError(message="boom"),
        stop_reason=reason,
    )
    failure = await rpc.fails(stubs.workers.FailJob(request))
    assert (failure.code, failure.reason, failure.fields) == (INVALID, "INVALID_ARGUMENT", ["stop_reason"])
    assert await flows.get(stubs, job.id) == before


async def test_a_worker_gives_its_own_stop_reason(stubs: rpc.Stubs) -> None:
    await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    request = worker_service_pb2.FailJobRequest(
        job_id=claim.job.id,
        lease_token=claim.lease_token,
        error=job_pb2.JobError(message="bad input"),
        stop_reason=job_pb2.STOP_REASON_VALIDATION_ERROR,
    )
    job = (await stubs.workers.FailJob(request)).job
    assert (job.status, job.stop_reason) == (job_pb2.JOB_STATUS_FAILED, job_pb2.STOP_REASON_VALIDATION_ERROR)
