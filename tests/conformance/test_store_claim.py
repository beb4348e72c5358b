"""Claiming: order, eligibility, what a claim records, and concurrent claimers never sharing a job."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from support.store_params import claim as _claim

from jobwarden_server.domain.records import EventKind, Job
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store import PageParams, SqlStore

CreateJob = Callable[..., Awaitable[Job]]


async def test_claims_highest_priority_first_then_oldest(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    low_old = await create_job(priority=0)
    high_new = await create_job(priority=5)
    mid_a = await create_job(priority=3)
    mid_b = await create_job(priority=3)
    high_newer = await create_job(priority=5)
    tie_time = clock.tick()
    tie_z = await create_job(priority=-1, now=tie_time, job_id="tie-z")
    tie_a = await create_job(priority=-1, now=tie_time, job_id="tie-a")

    first = await store.job_claim(_claim(clock.tick(), limit=3))
    rest = await store.job_claim(_claim(clock.tick(), limit=10))

    assert [c.job.id for c in first] == [high_new.id, high_newer.id, mid_a.id]
    assert [c.job.id for c in rest] == [mid_b.id, low_old.id, tie_a.id, tie_z.id]
    assert await store.job_claim(_claim(clock.tick())) == []


async def test_a_claim_leases_the_job_and_records_the_transition(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    job = await create_job()
    now = clock.tick()
    [change] = await store.job_claim(_claim(now, worker_id="w7", lease_duration_s=12.5))

    claimed = change.job
    assert (claimed.status, claimed.attempt, claimed.worker_id) == (JobStatus.RUNNING, 1, "w7")
    assert claimed.start_time == claimed.update_time == now
    assert claimed.lease_expire_time == now + dt.timedelta(seconds=12.5)
    assert claimed.lease_duration_s == 12.5
    assert len(claimed.lease_token) >= 32
    assert (claimed.version, claimed.last_sequence) == (job.version + 1, 2)
    assert await store.job_get("alice", job.id) == claimed

    [event] = change.events
    assert (event.sequence, event.kind, event.actor, event.create_time) == (
        2,
        EventKind.TRANSITION,
        "worker:w7",
        now,
    )
    assert (event.data["from"], event.data["to"], event.data["stop_reason"]) == (
        "QUEUED",
        "RUNNING",
        "UNSPECIFIED",
    )
    stored = await store.event_list(PageParams(owner="alice", job_id=job.id, after=1, limit=10))
    assert list(stored) == [event]


async def test_every_claimed_job_gets_its_own_token(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    for _ in range(6):
        await create_job()
    changes = await store.job_claim(_claim(clock.tick()))
    tokens = {c.job.lease_token for c in changes}
    assert len(changes) == 6 and len(tokens) == 6 and "" not in tokens


async def test_run_after_in_the_future_is_not_claimable_until_it_passes(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    due_at = clock.now + dt.timedelta(minutes=5)
    later = await create_job(run_after=due_at)
    past = await create_job(run_after=clock.now - dt.timedelta(minutes=5))

    assert [c.job.id for c in await store.job_claim(_claim(clock.tick()))] == [past.id]
    assert await store.job_claim(_claim(due_at - dt.timedelta(microseconds=1))) == []
    assert [c.job.id for c in await store.job_claim(_claim(due_at))] == [later.id]


async def test_only_the_owners_queued_jobs_of_the_asked_types(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    render = await create_job(job_type="render")
    encode = await create_job(job_type="encode")
    await create_job(job_type="upload")
    await create_job(job_type="render", owner="bob")
    await create_job(job_type="render", status=JobStatus.CREATED)

    claimed = await store.job_claim(_claim(clock.tick(), job_types=frozenset({"render", "encode"})))
    assert sorted(c.job.id for c in claimed) == sorted([render.id, encode.id])
    # RUNNING jobs are not claimable again.
    assert await store.job_claim(_claim(clock.tick(), job_types=frozenset({"render", "encode"}))) == []
    assert len(await store.job_claim(_claim(clock.tick(), owner="bob"))) == 1


async def test_nothing_to_ask_for_claims_nothing(store: SqlStore, create_job: CreateJob, clock: Any) -> None:
    await create_job()
    assert await store.job_claim(_claim(clock.tick(), limit=0)) == []
    assert await store.job_claim(_claim(clock.tick(), job_types=frozenset())) == []
    assert len(await store.job_claim(_claim(clock.tick()))) == 1


@pytest.mark.parametrize("separate_stores", [True, False], ids=["own-stores", "shared-store"])
async def test_concurrent_claimers_never_get_the_same_job_and_together_get_all(
    store: SqlStore,
    open_stores: Callable[..., SqlStore],
    create_job: CreateJob,
    clock: Any,
    separate_stores: bool,
) -> None:
    claimers, total = 16, 200
    created = {(await create_job()).id for _ in range(total)}
    stores = [open_stores(pool_size=1) if separate_stores else store for _ in range(claimers)]
    now = clock.tick()
    start = asyncio.Barrier(claimers)

    async def claim_until_empty(worker: int, on: SqlStore) -> list[str]:
        await start.wait()
        got: list[str] = []
        while changes := await on.job_claim(_claim(now, worker_id=f"w{worker}", limit=7)):
            got.extend(c.job.id for c in changes)
        return got

    # A TaskGroup, not gather: if one claimer fails, the others are cancelled before the stores close.
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(claim_until_empty(i, s)) for i, s in enumerate(stores)]

    claimed = [job_id for task in tasks for job_id in task.result()]
    assert len(claimed) == len(set(claimed)), "a job was claimed twice"
    assert set(claimed) == created
    async with store.write_engine.connect() as conn:
        rows = (
            await conn.execute(
                sa.text(
                    "SELECT status, attempt, version, last_sequence, count(DISTINCT lease_token) AS tokens "
                    "FROM jobs GROUP BY status, attempt, version, last_sequence"
                )
            )
        ).all()
        transitions = (
            await conn.execute(sa.text("SELECT count(*) FROM job_events WHERE kind = 'transition'"))
        ).scalar_one()
    assert [tuple(r) for r in rows] == [("RUNNING", 1, 2, 2, total)]
    assert transitions == total


async def test_a_claim_records_its_request_id_and_events_by_request_finds_every_job_it_took(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    jobs = [await create_job() for _ in range(3)]
    taken = await store.job_claim(
        _claim(clock.tick(), limit=2, request_id="claim-7", request_fingerprint="f7")
    )
    await store.job_claim(_claim(clock.tick(), limit=1))  # another claim, without a request_id

    found = await store.events_by_request("alice", "claim-7")
    assert sorted(e.job_id for e in found) == sorted(c.job.id for c in taken)
    assert {c.job.id for c in taken} < {j.id for j in jobs}
    assert all(e.data["request_fingerprint"] == "f7" and e.data["to"] == "RUNNING" for e in found)
    assert [e.create_time for e in found] == [
        next(c.job.start_time for c in taken if c.job.id == e.job_id) for e in found
    ]
    assert await store.events_by_request("bob", "claim-7") == []  # another owner's request ids are apart
    assert await store.events_by_request("alice", "nothing") == []
