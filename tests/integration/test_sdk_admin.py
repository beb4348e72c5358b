"""The SDK's admin calls and dry runs against a real server (local mode: the caller holds every role)."""

from __future__ import annotations

import pytest

from jobwarden import errors
from jobwarden.client import Client, EventKind, JobStatus
from jobwarden_server import app


async def test_dry_runs_change_nothing_and_admin_calls_are_audited(srv: app.RunningServer) -> None:
    async with Client(srv.address) as client:
        dry = await client.create_job("sdk.admin", {"a": 1}, validate_only=True)
        assert dry.status is JobStatus.QUEUED and dry.parameters == {"a": 1}
        assert await client.list_jobs(job_types=["sdk.admin"]) == ([], "")

        job = await client.create_job("sdk.admin", {"a": 1}, hold=True)
        assert (await client.release_job(job.id, validate_only=True)).status is JobStatus.QUEUED
        assert (await client.get_job(job.id)).status is JobStatus.CREATED
        await client.release_job(job.id)
        [claim] = await client.claim_jobs("w-sdk", ["sdk.admin"])
        done = await client.complete_job(job.id, claim.lease_token, {"x": 1}, validate_only=True)
        assert (done.status, done.result) == (JobStatus.COMPLETED, {"x": 1})
        assert (
            await client.fail_job(job.id, claim.lease_token, "no", validate_only=True)
        ).status is JobStatus.FAILED
        assert (await client.cancel_job(job.id, validate_only=True)).cancel_requested
        running = await client.get_job(job.id)
        assert (running.status, running.cancel_requested) == (JobStatus.RUNNING, False)

        with pytest.raises(errors.JobNotTerminal):
            await client.retry_job(job.id)
        with pytest.raises(errors.InvalidTransition):
            await client.set_job_status(job.id, JobStatus.CREATED, "hold it")
        failed = await client.set_job_status(job.id, "failed", "wedged")
        assert failed.status is JobStatus.FAILED and failed.error is not None
        with pytest.raises(errors.LeaseLost):
            await client.complete_job(job.id, claim.lease_token)
        rerun = await client.retry_job(job.id)
        assert (rerun.retry_of, rerun.status, rerun.parameters) == (job.id, JobStatus.QUEUED, {"a": 1})

        events, _ = await client.list_job_events(job.id)
        last = events[-1]
        assert (last.kind, last.actor, last.reason) == (EventKind.TRANSITION, "admin:default/local", "wedged")
        assert (last.forced, last.bypassed_table) == (False, False)
