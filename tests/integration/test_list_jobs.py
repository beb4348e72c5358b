"""ListJobs: filters and keyset pages."""

from __future__ import annotations

from support import flows, rpc

from jobwarden.v1 import job_pb2, job_service_pb2


async def _all_pages(s: rpc.Stubs, request: job_service_pb2.ListJobsRequest) -> list[str]:
    ids: list[str] = []
    while True:
        reply = await s.jobs.ListJobs(request)
        assert len(reply.jobs) <= (request.page_size or 50)
        ids.extend(j.id for j in reply.jobs)
        if not reply.next_page_token:
            return ids
        request.page_token = reply.next_page_token


async def test_pages_cover_everything_once_in_both_orders(stubs: rpc.Stubs) -> None:
    created = [(await flows.create(stubs)).id for _ in range(23)]
    ascending = await _all_pages(stubs, job_service_pb2.ListJobsRequest(page_size=5))
    descending = await _all_pages(stubs, job_service_pb2.ListJobsRequest(page_size=4, descending=True))
    assert ascending == created
    assert descending == created[::-1]


async def test_filters(stubs: rpc.Stubs) -> None:
    red = await flows.create(stubs, job_type="paint", labels={"color": "red", "size": "l"})
    blue = await flows.create(stubs, job_type="paint", labels={"color": "blue"})
    other = await flows.create(stubs, job_type="other")
    await stubs.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=blue.id))

    async def ids(**filters: object) -> set[str]:
        return set(await _all_pages(stubs, job_service_pb2.ListJobsRequest(**filters)))  # type: ignore[arg-type]

    assert await ids(job_types=["paint"]) == {red.id, blue.id}
    assert await ids(labels={"color": "red"}) == {red.id}
    assert await ids(labels={"color": "red", "size": "s"}) == set()
    assert await ids(statuses=[job_pb2.JOB_STATUS_QUEUED]) == {red.id, other.id}
    assert await ids(stop_reasons=[job_pb2.STOP_REASON_USER_CANCELLED]) == {blue.id}
    cutoff = job_service_pb2.ListJobsRequest()
    cutoff.created_after.CopyFrom(blue.create_time)
    assert set(await _all_pages(stubs, cutoff)) == {blue.id, other.id}
    before = job_service_pb2.ListJobsRequest()
    before.created_before.CopyFrom(blue.create_time)
    assert set(await _all_pages(stubs, before)) == {red.id}


async def test_page_size_is_capped(stubs: rpc.Stubs) -> None:
    for _ in range(3):
        await flows.create(stubs)
    reply = await stubs.jobs.ListJobs(job_service_pb2.ListJobsRequest(page_size=1_000_000))
    assert len(reply.jobs) == 3
