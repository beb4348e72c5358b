"""Client.create_batch and list_jobs(parent_id=...) against a real in-process server (SQLite, and
PostgreSQL when configured): the parent's batch counts on the Job model, typed refusals, dry runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from jobwarden import errors
from jobwarden.client import BatchCounts, Client, JobContext, JobEvent, JobStatus, NewJob, Worker
from jobwarden_server import app


@pytest.fixture
async def client(srv: app.RunningServer) -> AsyncIterator[Client]:
    async with Client(srv.address) as c:
        yield c


async def test_a_batch_through_the_sdk(client: Client) -> None:
    children = [NewJob("sdk.resize", {"n": i}, labels={"i": str(i)}) for i in range(5)]
    parent = await client.create_batch("sdk.report", children, parameters={"run": 1}, labels={"kind": "r"})
    assert parent.batch == BatchCounts(total=5, queued=5)
    assert (parent.job_type, parent.lifecycle, parent.status, parent.parameters) == (
        "sdk.report",
        "batch",
        JobStatus.QUEUED,
        {"run": 1},
    )
    first_page, token = await client.list_jobs(parent_id=parent.id, page_size=2)
    assert [j.parameters["n"] for j in first_page] == [0, 1] and token
    listed = [j async for j in client.iter_jobs(parent_id=parent.id, page_size=2)]
    assert [j.parameters["n"] for j in listed] == list(range(5))
    assert all(j.parent_id == parent.id and j.batch is None for j in listed)

    for claim in await client.claim_jobs("w", ["sdk.resize"], max_jobs=5):
        await client.complete_job(claim.job.id, claim.lease_token, {"ok": True})
    done = await client.get_job(parent.id)
    assert done.status is JobStatus.COMPLETED
    assert done.batch == BatchCounts(total=5, completed=5) and done.batch.finished == 5
    assert (done.progress.done, done.progress.total) == (5, 5)


async def test_refusals_and_dry_runs(client: Client) -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        await client.create_batch("sdk.report", [NewJob("sdk.a"), NewJob("sdk.a", max_attempts=-1)])
    assert [v.field for v in refused.value.field_violations] == ["children[1].max_attempts"]
    with pytest.raises(ValueError, match="request_id"):
        await client.create_batch("sdk.report", [NewJob("sdk.a", request_id="x")])
    dry = await client.create_batch("sdk.report", [NewJob("sdk.a")] * 2, validate_only=True)
    assert dry.batch == BatchCounts(total=2, queued=2)
    with pytest.raises(errors.NotFound):
        await client.get_job(dry.id)
    assert (await client.list_jobs(job_types=["sdk.a", "sdk.report"]))[0] == []


async def test_real_workers_drain_a_batch(client: Client, srv: app.RunningServer) -> None:
    """Two SDK Workers (Work sessions) run a batch's children; the parent's watch ends with it."""
    parent = await client.create_batch("sdk.report", [NewJob("sdk.square", {"n": i}) for i in range(40)])

    async def square(ctx: JobContext) -> dict[str, Any]:
        return {"square": ctx.job.parameters["n"] ** 2}

    workers = [Worker(client, concurrency=4) for _ in range(2)]
    for worker in workers:
        worker.register("sdk.square", square)
    running = [asyncio.create_task(w.run()) for w in workers]
    try:
        async with asyncio.timeout(30):
            items = [item async for item in client.watch_job(parent.id)]
    finally:
        for worker in workers:
            worker.stop()
        await asyncio.gather(*running)
    done = await client.get_job(parent.id)
    assert done.status is JobStatus.COMPLETED and done.batch == BatchCounts(total=40, completed=40)
    events = [i for i in items if isinstance(i, JobEvent)]
    assert [e.progress.done for e in events if e.progress is not None] == list(range(1, 41))
    results = [j.result async for j in client.iter_jobs(parent_id=parent.id)]
    assert results == [{"square": i**2} for i in range(40)]
