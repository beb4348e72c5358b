"""Every mutating call with a request_id is idempotent: a retry gets the first outcome."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from google.protobuf import duration_pb2
from support import flows, rpc

from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2


async def test_retried_create_with_same_request_id_gives_one_job(stubs: rpc.Stubs) -> None:
    request = job_service_pb2.CreateJobRequest(
        job_type="demo", request_id="req-1", parameters=flows.struct(n=1)
    )
    first = (await stubs.jobs.CreateJob(request)).job
    again = (await stubs.jobs.CreateJob(request)).job
    assert again.id == first.id
    listed = await stubs.jobs.ListJobs(job_service_pb2.ListJobsRequest())
    assert [j.id for j in listed.jobs] == [first.id]
    assert len(await flows.events(stubs, first.id)) == 1


async def test_concurrent_creates_with_same_request_id_give_one_job(stubs: rpc.Stubs) -> None:
    request = job_service_pb2.CreateJobRequest(job_type="demo", request_id="req-race")
    replies = await asyncio.gather(*(stubs.jobs.CreateJob(request) for _ in range(16)))
    assert len({r.job.id for r in replies}) == 1
    listed = await stubs.jobs.ListJobs(job_service_pb2.ListJobsRequest())
    assert len(listed.jobs) == 1


async def test_reused_request_id_with_other_content_is_refused(stubs: rpc.Stubs) -> None:
    await stubs.jobs.CreateJob(job_service_pb2.CreateJobRequest(job_type="demo", request_id="req-2"))
    failure = await rpc.fails(
        stubs.jobs.CreateJob(
            job_service_pb2.CreateJobRequest(job_type="demo", request_id="req-2", priority=3)
        )
    )
    assert (failure.code, failure.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_MISMATCH")
    listed = await stubs.jobs.ListJobs(job_service_pb2.ListJobsRequest())
    assert len(listed.jobs) == 1


async def test_retried_worker_calls_answer_with_the_first_outcome(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    asset_request = worker_service_pb2.AddAssetRequest(
        job_id=job.id,
        lease_token=claim.lease_token,
        asset=job_pb2.Asset(asset_type="image", uri="s3://b/1.png"),
        request_id="asset-1",
    )
    first_asset = (await stubs.workers.AddAsset(asset_request)).asset
    again_asset = (await stubs.workers.AddAsset(asset_request)).asset
    assert again_asset.id == first_asset.id

    complete = worker_service_pb2.CompleteJobRequest(
        job_id=job.id, lease_token=claim.lease_token, result=flows.struct(n=1), request_id="done-1"
    )
    first = (await stubs.workers.CompleteJob(complete)).job
    history = await flows.events(stubs, job.id)
    again = (await stubs.workers.CompleteJob(complete)).job
    assert again == first
    assert again.status == job_pb2.JOB_STATUS_COMPLETED
    assert await flows.events(stubs, job.id) == history

    # The asset call retried after the job finished still finds its asset.
    assert (await stubs.workers.AddAsset(asset_request)).asset.id == first_asset.id
    assets = await stubs.jobs.ListAssets(job_service_pb2.ListAssetsRequest(job_id=job.id))
    assert len(assets.assets) == 1

    different = worker_service_pb2.CompleteJobRequest(
        job_id=job.id, lease_token=claim.lease_token, result=flows.struct(n=2), request_id="done-1"
    )
    failure = await rpc.fails(stubs.workers.CompleteJob(different))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_MISMATCH")
    anonymous = worker_service_pb2.CompleteJobRequest(job_id=job.id, lease_token=claim.lease_token)
    failure = await rpc.fails(stubs.workers.CompleteJob(anonymous))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "LEASE_LOST")


async def test_retried_fail_and_cancel_answer_with_the_first_outcome(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    fail = worker_service_pb2.FailJobRequest(
        job_id=job.id,
        lease_token=claim.lease_token,
        error=job_pb2.JobError(message="bad input"),
        request_id="f-1",
    )
    first = (await stubs.workers.FailJob(fail)).job
    assert first.status == job_pb2.JOB_STATUS_FAILED
    assert (await stubs.workers.FailJob(fail)).job == first

    queued = await flows.create(stubs)
    cancel = job_service_pb2.CancelJobRequest(job_id=queued.id, etag=queued.etag, request_id="c-1")
    cancelled = (await stubs.jobs.CancelJob(cancel)).job
    assert cancelled.status == job_pb2.JOB_STATUS_CANCELLED
    assert (await stubs.jobs.CancelJob(cancel)).job == cancelled  # not ETAG_MISMATCH, not INVALID_TRANSITION
    other = job_service_pb2.CancelJobRequest(job_id=queued.id, request_id="c-2")
    failure = await rpc.fails(stubs.jobs.CancelJob(other))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_TRANSITION")


NO_BACKOFF = job_pb2.RetryPolicy(initial_backoff=duration_pb2.Duration(), max_backoff=duration_pb2.Duration())


async def test_a_fail_retried_after_the_job_was_claimed_again_answers_with_what_it_did(
    stubs: rpc.Stubs,
) -> None:
    job = await flows.create(stubs, max_attempts=3, retry_policy=NO_BACKOFF)
    first_claim = await flows.claim_one(stubs)
    fail = worker_service_pb2.FailJobRequest(
        job_id=job.id,
        lease_token=first_claim.lease_token,
        error=job_pb2.JobError(message="flaky", retryable=True),
        request_id="f-again",
    )
    first = (await stubs.workers.FailJob(fail)).job
    assert (first.status, first.attempt) == (job_pb2.JOB_STATUS_QUEUED, 1)
    [second_claim] = await flows.claim(stubs, worker_id="w2")
    await flows.progress(stubs, second_claim, 40)

    late = (await stubs.workers.FailJob(fail)).job  # the retry of a call whose reply was lost
    assert (late.status, late.attempt, late.worker_id) == (job_pb2.JOB_STATUS_QUEUED, 1, "")
    assert late.last_sequence == first.last_sequence
    now = await flows.get(stubs, job.id)
    assert (now.status, now.attempt, now.worker_id) == (job_pb2.JOB_STATUS_RUNNING, 2, "w2")
    assert flows.kinds(await flows.events(stubs, job.id)) == [
        "created",
        "QUEUED->RUNNING",
        "RUNNING->QUEUED",
        "QUEUED->RUNNING",
        "progress",
    ]


async def test_a_retried_claim_gets_the_jobs_the_first_call_claimed_and_claims_no_more(
    stubs: rpc.Stubs,
) -> None:
    jobs = [await flows.create(stubs) for _ in range(4)]
    request = worker_service_pb2.ClaimJobsRequest(
        worker_id="w1", job_types=["demo"], max_jobs=2, request_id="claim-1"
    )
    first = list((await stubs.workers.ClaimJobs(request)).claims)
    again = list((await stubs.workers.ClaimJobs(request)).claims)
    assert [c.job.id for c in first] == [j.id for j in jobs[:2]]
    assert [(c.job.id, c.lease_token) for c in again] == [(c.job.id, c.lease_token) for c in first]
    queued = await stubs.jobs.ListJobs(job_service_pb2.ListJobsRequest(statuses=[job_pb2.JOB_STATUS_QUEUED]))
    assert sorted(j.id for j in queued.jobs) == sorted(j.id for j in jobs[2:])

    # A claimed job that has moved on since is not handed out again under the old lease.
    await flows.complete(stubs, first[0])
    later = list((await stubs.workers.ClaimJobs(request)).claims)
    assert [(c.job.id, c.lease_token) for c in later] == [(first[1].job.id, first[1].lease_token)]

    other = worker_service_pb2.ClaimJobsRequest(worker_id="w1", job_types=["demo"], request_id="claim-1")
    failure = await rpc.fails(stubs.workers.ClaimJobs(other))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_MISMATCH")


async def test_a_retried_claim_whose_first_call_found_nothing_claims_afresh(stubs: rpc.Stubs) -> None:
    request = worker_service_pb2.ClaimJobsRequest(worker_id="w1", job_types=["demo"], request_id="claim-2")
    assert list((await stubs.workers.ClaimJobs(request)).claims) == []
    job = await flows.create(stubs)
    assert [c.job.id for c in (await stubs.workers.ClaimJobs(request)).claims] == [job.id]


async def test_a_retried_release_answers_with_the_released_job(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs, hold=True)
    release = job_service_pb2.ReleaseJobRequest(job_id=job.id, request_id="r-1")
    first = (await stubs.jobs.ReleaseJob(release)).job
    assert first.status == job_pb2.JOB_STATUS_QUEUED
    assert (await stubs.jobs.ReleaseJob(release)).job == first  # not INVALID_TRANSITION
    failure = await rpc.fails(stubs.jobs.ReleaseJob(job_service_pb2.ReleaseJobRequest(job_id=job.id)))
    assert (failure.code, failure.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_TRANSITION")
    assert flows.kinds(await flows.events(stubs, job.id)) == ["created", "CREATED->QUEUED"]


async def test_a_retried_cancel_of_a_running_job_answers_as_it_left_the_job(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    cancel = job_service_pb2.CancelJobRequest(job_id=job.id, request_id="c-running")
    first = (await stubs.jobs.CancelJob(cancel)).job
    assert first.status == job_pb2.JOB_STATUS_RUNNING and first.cancel_requested
    await flows.add_asset(stubs, claim)  # the worker goes on until it sees the cancel

    again = (await stubs.jobs.CancelJob(cancel)).job
    assert (again.status, again.cancel_requested, again.last_sequence) == (
        first.status,
        first.cancel_requested,
        first.last_sequence,
    )
    other = (await stubs.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id))).job
    assert other.last_sequence == first.last_sequence + 1  # a new request: the job as it is now
    assert flows.kinds(await flows.events(stubs, job.id)).count("cancel_requested") == 1


def _report(claim: worker_service_pb2.JobClaim, percent: float, request_id: str) -> Any:
    return worker_service_pb2.ReportProgressRequest(
        job_id=claim.job.id,
        lease_token=claim.lease_token,
        progress=job_pb2.Progress(percent=percent, message=f"at {percent}"),
        request_id=request_id,
    )


async def test_a_replayed_progress_report_changes_nothing_after_a_newer_one(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    await stubs.workers.ReportProgress(_report(claim, 50, "p-50"))
    await stubs.workers.ReportProgress(_report(claim, 60, "p-60"))
    history = await flows.events(stubs, job.id)
    replay = await stubs.workers.ReportProgress(_report(claim, 50, "p-50"))
    assert replay.lease_expire_time.seconds > 0 and not replay.cancel_requested
    assert (await flows.get(stubs, job.id)).progress.percent == 60
    assert await flows.events(stubs, job.id) == history


async def test_a_progress_request_id_reused_with_other_content_is_refused(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    await stubs.workers.ReportProgress(_report(claim, 50, "p-1"))
    before = await flows.get(stubs, job.id)
    failure = await rpc.fails(stubs.workers.ReportProgress(_report(claim, 70, "p-1")))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_MISMATCH")
    assert await flows.get(stubs, job.id) == before


async def test_a_replayed_progress_report_under_a_lost_lease_is_lease_lost(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    await stubs.workers.ReportProgress(_report(claim, 50, "p-2"))
    await flows.complete(stubs, claim)
    done = await flows.get(stubs, job.id)
    failure = await rpc.fails(stubs.workers.ReportProgress(_report(claim, 50, "p-2")))
    assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "LEASE_LOST")
    assert await flows.get(stubs, job.id) == done
