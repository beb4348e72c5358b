"""A stale or unknown lease token changes nothing."""

from __future__ import annotations

from pathlib import Path

import grpc
from support import flows, rpc

from jobwarden.v1 import job_pb2, worker_service_pb2
from jobwarden_server.domain.retry import RetryPolicy

NO_BACKOFF = RetryPolicy(initial_backoff_s=0.0, max_backoff_s=0.0)


async def _every_worker_call(s: rpc.Stubs, job_id: str, token: str) -> list[rpc.RpcFailure]:
    stale = worker_service_pb2
    calls = [
        s.workers.ReportProgress(
            stale.ReportProgressRequest(
                job_id=job_id, lease_token=token, progress=job_pb2.Progress(percent=90)
            )
        ),
        s.workers.AddAsset(
            stale.AddAssetRequest(
                job_id=job_id, lease_token=token, asset=job_pb2.Asset(asset_type="x", uri="u")
            )
        ),
        s.workers.CompleteJob(stale.CompleteJobRequest(job_id=job_id, lease_token=token)),
        s.workers.FailJob(
            stale.FailJobRequest(job_id=job_id, lease_token=token, error=job_pb2.JobError(message="late"))
        ),
    ]
    return [await rpc.fails(call) for call in calls]


async def test_stale_lease_after_retry_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    async with rpc.server(tmp_path, retry=NO_BACKOFF) as srv, rpc.stubs(srv.address) as s:
        job = await flows.create(s, max_attempts=3)
        old = await flows.claim_one(s)
        await flows.fail(s, old, "flaky", retryable=True)
        new = await flows.claim_one(s)
        assert new.job.id == job.id and new.lease_token != old.lease_token and new.job.attempt == 2
        before = await flows.get(s, job.id)
        history = await flows.events(s, job.id)

        for failure in await _every_worker_call(s, job.id, old.lease_token):
            assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "LEASE_LOST")

        assert await flows.get(s, job.id) == before
        assert await flows.events(s, job.id) == history
        done = await flows.complete(s, new)
        assert done.status == job_pb2.JOB_STATUS_COMPLETED


async def test_unknown_lease_token_is_refused(tmp_path: Path) -> None:
    async with rpc.server(tmp_path) as srv, rpc.stubs(srv.address) as s:
        job = await flows.create(s)
        await flows.claim_one(s)
        before = await flows.get(s, job.id)
        for failure in await _every_worker_call(s, job.id, "not-a-token"):
            assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "LEASE_LOST")
        assert await flows.get(s, job.id) == before


async def test_lease_of_a_finished_job_is_dead(tmp_path: Path) -> None:
    async with rpc.server(tmp_path) as srv, rpc.stubs(srv.address) as s:
        job = await flows.create(s)
        claim = await flows.claim_one(s)
        await flows.complete(s, claim)
        before = await flows.get(s, job.id)
        for failure in await _every_worker_call(s, job.id, claim.lease_token):
            assert (failure.code, failure.reason) == (grpc.StatusCode.ABORTED, "LEASE_LOST")
        assert await flows.get(s, job.id) == before


async def test_retryable_failures_end_failed_after_max_attempts(tmp_path: Path) -> None:
    async with rpc.server(tmp_path, retry=NO_BACKOFF) as srv, rpc.stubs(srv.address) as s:
        job = await flows.create(s, max_attempts=3)
        statuses = []
        for _ in range(3):
            statuses.append((await flows.fail(s, await flows.claim_one(s), "poison", retryable=True)).status)
        S = job_pb2.JobStatus
        assert statuses == [S.JOB_STATUS_QUEUED, S.JOB_STATUS_QUEUED, S.JOB_STATUS_FAILED]
        final = await flows.get(s, job.id)
        assert final.attempt == 3
        assert final.stop_reason == job_pb2.STOP_REASON_MAX_ATTEMPTS_EXCEEDED
        assert await flows.claim(s) == []


async def test_a_jobs_own_retry_policy_sets_its_backoff(tmp_path: Path) -> None:
    from google.protobuf import duration_pb2

    from jobwarden.v1 import job_service_pb2

    slow_default = RetryPolicy(initial_backoff_s=3600.0, max_backoff_s=3600.0)
    async with rpc.server(tmp_path, retry=slow_default) as srv, rpc.stubs(srv.address) as s:
        request = job_service_pb2.CreateJobRequest(job_type="demo", max_attempts=3)
        request.retry_policy.initial_backoff.CopyFrom(duration_pb2.Duration(seconds=0))
        request.retry_policy.max_backoff.CopyFrom(duration_pb2.Duration(seconds=0))
        job = (await s.jobs.CreateJob(request)).job
        assert job.retry_policy.max_backoff.seconds == 0
        assert job.retry_policy.multiplier == 2.0  # unset: the server's default
        await flows.fail(s, await flows.claim_one(s), "flaky", retryable=True)
        # With the server's hour-long default this job would not be claimable again now.
        assert (await flows.claim_one(s)).job.attempt == 2

        other = (await s.jobs.CreateJob(job_service_pb2.CreateJobRequest(job_type="other"))).job
        assert not other.HasField("retry_policy")
        bad = job_service_pb2.CreateJobRequest(job_type="demo")
        bad.retry_policy.multiplier = 0.5
        failure = await rpc.fails(s.jobs.CreateJob(bad))
        assert (failure.code, failure.fields) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            ["retry_policy.multiplier"],
        )
        bad = job_service_pb2.CreateJobRequest(job_type="demo")
        bad.retry_policy.initial_backoff.seconds = 10
        bad.retry_policy.max_backoff.seconds = 5
        failure = await rpc.fails(s.jobs.CreateJob(bad))
        assert (failure.code, failure.fields) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            ["retry_policy.max_backoff"],
        )
