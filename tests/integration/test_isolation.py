"""Owners never see or touch each other's jobs; roles gate the two services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from support import flows, rpc

from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2
from jobwarden_server.domain.auth import Role

TOKENS = {
    "token-a": ("alice", frozenset({Role.CLIENT, Role.WORKER})),
    "token-b": ("bob", frozenset({Role.CLIENT, Role.WORKER})),
    "token-b-client": ("bob", frozenset({Role.CLIENT})),
    "token-b-worker": ("bob", frozenset({Role.WORKER})),
}


@pytest.fixture
async def address(tmp_path: Path) -> AsyncIterator[str]:
    async with rpc.server(tmp_path, principals_by_hash=rpc.principals(TOKENS)) as srv:
        yield srv.address


async def test_owner_a_cannot_reach_owner_b_jobs(address: str) -> None:
    async with rpc.stubs(address, "token-a") as a, rpc.stubs(address, "token-b") as b:
        job = await flows.create(b, labels={"team": "b"})
        claim = await flows.claim_one(b)
        asset = await flows.add_asset(b, claim)
        md = a.metadata

        async def not_found(call: object) -> None:
            failure = await rpc.fails(call)  # type: ignore[arg-type]
            assert (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, "NOT_FOUND")

        missing = await rpc.fails(
            a.jobs.GetJob(job_service_pb2.GetJobRequest(job_id="no-such-job"), metadata=md)
        )
        theirs = await rpc.fails(a.jobs.GetJob(job_service_pb2.GetJobRequest(job_id=job.id), metadata=md))
        # Indistinguishable from a missing job, apart from the id the caller sent itself.
        assert (theirs.code, theirs.reason) == (missing.code, missing.reason)
        assert theirs.message.replace(job.id, "X") == missing.message.replace("no-such-job", "X")

        await not_found(a.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=job.id), metadata=md))
        await not_found(a.jobs.ReleaseJob(job_service_pb2.ReleaseJobRequest(job_id=job.id), metadata=md))
        await not_found(
            a.jobs.ListJobEvents(job_service_pb2.ListJobEventsRequest(job_id=job.id), metadata=md)
        )
        await not_found(a.jobs.ListAssets(job_service_pb2.ListAssetsRequest(job_id=job.id), metadata=md))
        await not_found(a.jobs.GetAsset(job_service_pb2.GetAssetRequest(asset_id=asset.id), metadata=md))
        await not_found(flows.watch(a, job.id))
        await not_found(
            a.workers.ReportProgress(
                worker_service_pb2.ReportProgressRequest(
                    job_id=job.id, lease_token=claim.lease_token, progress=job_pb2.Progress(percent=1)
                ),
                metadata=md,
            )
        )
        await not_found(
            a.workers.CompleteJob(
                worker_service_pb2.CompleteJobRequest(job_id=job.id, lease_token=claim.lease_token),
                metadata=md,
            )
        )

        listed = await a.jobs.ListJobs(job_service_pb2.ListJobsRequest(), metadata=md)
        assert list(listed.jobs) == []
        await flows.create(b)
        assert await flows.claim(a) == []

        # Nothing A did changed B's job.
        after = await flows.get(b, job.id)
        assert after.status == job_pb2.JOB_STATUS_RUNNING and not after.cancel_requested
        assert len(await flows.events(b, job.id)) == 3


async def test_missing_or_unknown_token_is_unauthenticated(address: str) -> None:
    async with rpc.stubs(address) as anonymous, rpc.stubs(address, "wrong") as wrong:
        for s in (anonymous, wrong):
            failure = await rpc.fails(s.jobs.ListJobs(job_service_pb2.ListJobsRequest(), metadata=s.metadata))
            assert (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")


async def test_roles_gate_the_services(address: str) -> None:
    async with rpc.stubs(address, "token-b-client") as client, rpc.stubs(address, "token-b-worker") as worker:
        failure = await rpc.fails(flows.claim(client))
        assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
        failure = await rpc.fails(flows.create(worker))
        assert (failure.code, failure.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
        job = await flows.create(client)
        assert (await flows.claim_one(worker)).job.id == job.id
