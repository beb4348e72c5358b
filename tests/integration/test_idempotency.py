"""CreateJob with a request_id is idempotent."""

from __future__ import annotations

import asyncio

import grpc
from support import flows, rpc

from jobwarden.v1 import job_service_pb2


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
