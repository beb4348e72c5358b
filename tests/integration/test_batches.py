"""Batches end to end: CreateBatch, the parent the server drives from its children, ListJobs by
parent, cancelling a batch, the parent's callback, validate_only.

Every test runs on SQLite and, with JOBWARDEN_TEST_DATABASE_URL, on PostgreSQL. Waits are on the
server's own streams (a watch of the parent) or the call's answer; nothing sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from support import flows, rpc

from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2
from jobwarden_server import app

S = job_pb2.JobStatus
TERMINAL = {
    S.JOB_STATUS_COMPLETED,
    S.JOB_STATUS_PARTIAL,
    S.JOB_STATUS_FAILED,
    S.JOB_STATUS_CANCELLED,
    S.JOB_STATUS_EXPIRED,
}


def child(job_type: str = "demo", **fields: Any) -> job_service_pb2.CreateJobRequest:
    return job_service_pb2.CreateJobRequest(job_type=job_type, **fields)


async def create_batch(
    s: rpc.Stubs, children: int | list[job_service_pb2.CreateJobRequest], **fields: Any
) -> job_pb2.Job:
    items = (
        [child(parameters=flows.struct(n=i)) for i in range(children)]
        if isinstance(children, int)
        else children
    )
    reply = await s.jobs.CreateBatch(
        job_service_pb2.CreateBatchRequest(job_type="report", children=items, **fields), metadata=s.metadata
    )
    return reply.job


async def children_of(s: rpc.Stubs, parent_id: str, page_size: int = 500) -> list[job_pb2.Job]:
    out: list[job_pb2.Job] = []
    token = ""
    while True:
        reply = await s.jobs.ListJobs(
            job_service_pb2.ListJobsRequest(parent_id=parent_id, page_size=page_size, page_token=token),
            metadata=s.metadata,
        )
        out.extend(reply.jobs)
        token = reply.next_page_token
        if not token:
            return out


def counts(job: job_pb2.Job) -> dict[str, int]:
    """The parent's non-zero counts by name, and its total."""
    return {f.name: v for f, v in job.batch.ListFields()}


async def test_all_children_completed_completes_the_parent(stubs: rpc.Stubs) -> None:
    parent = await create_batch(stubs, 3)
    assert parent.status == S.JOB_STATUS_QUEUED and parent.lifecycle == "batch"
    assert counts(parent) == {"total": 3, "queued": 3}
    watching = flows.start_watch(stubs, parent.id)
    claims = await flows.claim(stubs, max_jobs=3)
    assert sorted(c.job.parent_id for c in claims) == [parent.id] * 3
    for i, claim in enumerate(claims):
        await flows.complete(stubs, claim, out=i)
    _, events = await asyncio.wait_for(watching, 10)
    done = await flows.get(stubs, parent.id)
    assert done.status == S.JOB_STATUS_COMPLETED
    assert counts(done) == {"total": 3, "completed": 3}
    assert (done.progress.done, done.progress.total, done.progress.percent) == (3, 3, 100.0)
    assert [k for k in flows.kinds(events) if "->" in k] == ["QUEUED->RUNNING", "RUNNING->COMPLETED"]
    assert [round(e.progress.percent) for e in events if e.HasField("progress")] == [33, 67, 100]
    listed = await children_of(stubs, parent.id)
    assert [j.parameters["n"] for j in listed] == [0, 1, 2], "children are listed in the order given"
    assert {j.result["out"] for j in listed} == {0, 1, 2}


async def test_all_children_failed_fails_the_parent(stubs: rpc.Stubs) -> None:
    parent = await create_batch(stubs, 2)
    for claim in await flows.claim(stubs, max_jobs=2):
        await flows.fail(stubs, claim, "no")
    done = await flows.get(stubs, parent.id)
    assert done.status == S.JOB_STATUS_FAILED
    assert counts(done) == {"total": 2, "failed": 2}
    assert done.error.message == "2 of 2 children did not complete"


async def test_mixed_children_make_the_parent_partial(stubs: rpc.Stubs) -> None:
    parent = await create_batch(stubs, 3)
    first, second, third = await flows.claim(stubs, max_jobs=3)
    await flows.complete(stubs, first)
    await flows.fail(stubs, second, "no")
    assert (await flows.get(stubs, parent.id)).status == S.JOB_STATUS_RUNNING
    await flows.complete(stubs, third, partial=True)
    done = await flows.get(stubs, parent.id)
    assert done.status == S.JOB_STATUS_PARTIAL
    assert counts(done) == {"total": 3, "completed": 1, "partial": 1, "failed": 1}


async def test_parent_runs_when_its_first_child_starts(stubs: rpc.Stubs) -> None:
    parent = await create_batch(stubs, 4)
    assert not parent.HasField("start_time")
    [claim] = await flows.claim(stubs)
    running = await flows.get(stubs, parent.id)
    assert running.status == S.JOB_STATUS_RUNNING and running.HasField("start_time")
    assert counts(running) == {"total": 4, "queued": 3, "running": 1}
    assert running.progress.percent == 0
    await flows.complete(stubs, claim)
    later = await flows.get(stubs, parent.id)
    assert (later.progress.done, later.progress.total, later.progress.percent) == (1, 4, 25.0)
    assert counts(later) == {"total": 4, "queued": 3, "completed": 1}


async def test_a_parent_is_never_claimed(stubs: rpc.Stubs) -> None:
    parent = await create_batch(stubs, 1)
    assert await flows.claim(stubs, ("report",), max_jobs=5) == []
    assert (await flows.get(stubs, parent.id)).status == S.JOB_STATUS_QUEUED


async def test_cancelling_the_parent_cancels_its_children(stubs: rpc.Stubs) -> None:
    parent = await create_batch(stubs, 3)
    [running] = await flows.claim(stubs)
    reply = await stubs.jobs.CancelJob(
        job_service_pb2.CancelJobRequest(job_id=parent.id, reason="enough", request_id="stop-1"),
        metadata=stubs.metadata,
    )
    assert reply.job.status == S.JOB_STATUS_RUNNING and reply.job.cancel_requested
    assert counts(reply.job) == {"total": 3, "running": 1, "cancelled": 2}
    by_id = {j.id: j for j in await children_of(stubs, parent.id)}
    assert by_id[running.job.id].cancel_requested and by_id[running.job.id].status == S.JOB_STATUS_RUNNING
    assert sorted(j.status for j in by_id.values()) == [
        S.JOB_STATUS_RUNNING,
        S.JOB_STATUS_CANCELLED,
        S.JOB_STATUS_CANCELLED,
    ]
    # The worker confirms the cancel: the last child ends, and the parent with it.
    await flows.fail(stubs, running, "stopping as asked")
    done = await flows.get(stubs, parent.id)
    assert done.status == S.JOB_STATUS_CANCELLED
    assert done.stop_reason == job_pb2.STOP_REASON_USER_CANCELLED
    assert counts(done) == {"total": 3, "cancelled": 3}
    # A retry of the cancel is answered with the parent as it is, and changes nothing.
    again = await stubs.jobs.CancelJob(
        job_service_pb2.CancelJobRequest(job_id=parent.id, reason="enough", request_id="stop-1"),
        metadata=stubs.metadata,
    )
    assert again.job.status == S.JOB_STATUS_CANCELLED and again.job.etag == done.etag


async def test_cancelling_a_batch_nobody_started_ends_it_at_once(stubs: rpc.Stubs) -> None:
    parent = await create_batch(stubs, 2)
    reply = await stubs.jobs.CancelJob(
        job_service_pb2.CancelJobRequest(job_id=parent.id), metadata=stubs.metadata
    )
    assert reply.job.status == S.JOB_STATUS_CANCELLED
    assert counts(reply.job) == {"total": 2, "cancelled": 2}
    kinds = flows.kinds(await flows.events(stubs, parent.id))
    assert kinds == ["created", "cancel_requested", "progress", "QUEUED->CANCELLED"]
    assert await flows.claim(stubs, max_jobs=5) == []
    refused = await rpc.fails(
        stubs.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=parent.id), metadata=stubs.metadata)
    )
    assert (refused.code, refused.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "INVALID_TRANSITION")


async def test_a_refused_child_refuses_the_whole_batch(stubs: rpc.Stubs, srv: app.RunningServer) -> None:
    items = [child(), child(priority=5000), child()]
    refused = await rpc.fails(create_batch(stubs, items))
    assert (refused.code, refused.reason, refused.fields) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
        ["children[1].priority"],
    )
    keyed = await rpc.fails(create_batch(stubs, [child(), child(request_id="mine")]))
    assert keyed.fields == ["children[1].request_id"]
    dry_child = await rpc.fails(create_batch(stubs, [child(), child(validate_only=True)]))
    assert dry_child.fields == ["children[1].validate_only"]
    none = await rpc.fails(create_batch(stubs, []))
    assert none.fields == ["children"]
    assert (await stubs.jobs.ListJobs(job_service_pb2.ListJobsRequest(), metadata=stubs.metadata)).jobs == []


async def test_validate_only_answers_as_the_call_would_and_writes_nothing(
    stubs: rpc.Stubs, srv: app.RunningServer
) -> None:
    dry = await create_batch(stubs, 3, request_id="b-1", validate_only=True)
    assert dry.status == S.JOB_STATUS_QUEUED and counts(dry) == {"total": 3, "queued": 3}
    assert await _job_rows(srv) == 0
    refused = await rpc.fails(create_batch(stubs, [child(), child(job_type="")], validate_only=True))
    assert refused.fields == ["children[1].job_type"]
    real = await create_batch(stubs, 3, request_id="b-1")
    assert await _job_rows(srv) == 4
    # With the request_id taken: the earlier parent, as a retry would get it; other content: refused.
    replayed = await create_batch(stubs, 3, request_id="b-1", validate_only=True)
    assert replayed.id == real.id and replayed.etag == real.etag
    mismatch = await rpc.fails(create_batch(stubs, 2, request_id="b-1", validate_only=True))
    assert (mismatch.code, mismatch.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_MISMATCH")
    assert await _job_rows(srv) == 4


async def test_a_retried_create_returns_the_first_batch(stubs: rpc.Stubs, srv: app.RunningServer) -> None:
    first = await create_batch(stubs, 2, request_id="b-2")
    again = await create_batch(stubs, 2, request_id="b-2")
    assert again.id == first.id
    assert len(await children_of(stubs, first.id)) == 2
    assert await _job_rows(srv) == 3


async def _job_rows(srv: app.RunningServer) -> int:
    """Jobs in the database; with no event of a job that is not there (a dry run leaves neither)."""
    async with srv.store.write_engine.connect() as conn:
        jobs = int((await conn.execute(sa.text("SELECT count(*) FROM jobs"))).scalar_one())
        events = int((await conn.execute(sa.text("SELECT count(*) FROM job_events"))).scalar_one())
    assert events == jobs, "every job has exactly its CREATED event here"
    return jobs


async def test_ten_thousand_children_are_created_and_listed(stubs: rpc.Stubs) -> None:
    items = [child(parameters=flows.struct(n=i)) for i in range(10_000)]
    parent = await create_batch(stubs, items)
    assert counts(parent) == {"total": 10_000, "queued": 10_000}
    listed = await children_of(stubs, parent.id)
    assert len(listed) == 10_000
    assert [j.parameters["n"] for j in listed] == list(range(10_000))
    too_many = await rpc.fails(create_batch(stubs, [child()] * 10_001))
    assert (too_many.reason, too_many.fields) == ("TOO_LARGE", ["children"])


@pytest.mark.parametrize("outcome", ["complete", "fail"])
async def test_children_finishing_together_leave_consistent_counts(stubs: rpc.Stubs, outcome: str) -> None:
    """Two workers end their children at the same moment, many times over: no move is lost or doubled."""
    parent = await create_batch(stubs, 40)
    claims_a = await flows.claim(stubs, max_jobs=20, worker_id="a")
    claims_b = await flows.claim(stubs, max_jobs=20, worker_id="b")

    async def end(claims: list[worker_service_pb2.JobClaim]) -> None:
        for claim in claims:
            if outcome == "complete":
                await flows.complete(stubs, claim)
            else:
                await flows.fail(stubs, claim)

    await asyncio.gather(end(claims_a), end(claims_b))
    done = await flows.get(stubs, parent.id)
    expected = S.JOB_STATUS_COMPLETED if outcome == "complete" else S.JOB_STATUS_FAILED
    assert done.status == expected
    assert counts(done) == {"total": 40, "completed" if outcome == "complete" else "failed": 40}
    progress = [e.progress.done for e in await flows.events(stubs, parent.id) if e.HasField("progress")]
    assert progress == list(range(1, 41)), "one progress event per child's end, none lost or repeated"


async def test_a_cancel_racing_workers_leaves_counts_that_match_the_children(stubs: rpc.Stubs) -> None:
    """Workers end their children while the client cancels the batch (on PostgreSQL: transactions that
    lock children then the parent, against one that locks every child then the parent)."""
    parent = await create_batch(stubs, 30)
    claims = await flows.claim(stubs, max_jobs=20, worker_id="a")

    async def work() -> None:
        for claim in claims:
            await flows.complete(stubs, claim)

    async def cancel() -> job_pb2.Job:
        request = job_service_pb2.CancelJobRequest(job_id=parent.id, reason="stop")
        return (await stubs.jobs.CancelJob(request, metadata=stubs.metadata)).job

    await asyncio.gather(work(), cancel())
    done = await flows.get(stubs, parent.id)
    children = await children_of(stubs, parent.id)
    assert done.status == S.JOB_STATUS_CANCELLED and all(c.status in TERMINAL for c in children)
    actual: dict[str, int] = {}
    for c in children:
        name = S.Name(c.status).removeprefix("JOB_STATUS_").lower()
        actual[name] = actual.get(name, 0) + 1
    assert counts(done) == {"total": 30, **actual}
    assert actual["completed"] == 20 and actual["cancelled"] == 10
