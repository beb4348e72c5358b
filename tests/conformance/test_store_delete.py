"""Deleting jobs in the store: a finished job goes with its events, assets and outbox rows (the schema's
ON DELETE CASCADE, through the store's own write path), an unfinished one stays; retention deletes
exactly the jobs its rules make due, batch by batch, alongside other writes; on every database."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from jobwarden_server.domain import errors
from jobwarden_server.domain.records import CallbackState, EventKind, Job
from jobwarden_server.domain.retention import RetentionRule
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.store import (
    AssetAddParams,
    JobChanges,
    JobClaimParams,
    JobDeleteParams,
    JobListParams,
    JobUpdateParams,
    NewEvent,
    SqlStore,
)

CreateJob = Callable[..., Awaitable[Job]]
CountRows = Callable[[str], Awaitable[int]]
TABLES = ("jobs", "job_events", "assets", "callback_outbox")
T0 = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


async def _counts(count_rows: CountRows) -> dict[str, int]:
    return {table: await count_rows(table) for table in TABLES}


async def _claimed(store: SqlStore, job: Job, now: dt.datetime) -> Job:
    [change] = await store.job_claim(
        JobClaimParams(
            owner=job.owner,
            worker_id="w",
            job_types=frozenset({job.job_type}),
            limit=1,
            lease_duration_s=60,
            now=now,
        )
    )
    assert change.job.id == job.id
    return change.job


async def _end(store: SqlStore, job: Job, to: JobStatus, now: dt.datetime) -> Job:
    change = await store.job_update(
        JobUpdateParams(
            job_id=job.id,
            owner=None,
            now=now,
            changes=JobChanges(status=to, stop_reason=StopReason.USER_CANCELLED, complete_time=now),
            events=[
                NewEvent(
                    kind=EventKind.TRANSITION, actor="system", data={"from": job.status.value, "to": to.value}
                )
            ],
            expect_statuses=frozenset({job.status}),
        )
    )
    assert change is not None
    return change.job


async def _worked(store: SqlStore, create_job: CreateJob, to: JobStatus, now: dt.datetime, **kw: Any) -> Job:
    """A job claimed, given two assets, and ended `to` at `now` (with a callback, so an outbox row)."""
    job = await _claimed(store, await create_job(callback_url="https://example.com/hook", **kw), now)
    for n in range(2):
        added = await store.asset_add(
            AssetAddParams(
                id=f"{job.id}-a{n}",
                job_id=job.id,
                owner=job.owner,
                lease_token=job.lease_token or "",
                asset_type="image",
                uri=f"s3://b/{n}",
                storage_path="",
                size_bytes=1,
                content_type="",
                sha256="",
                metadata={},
                now=now,
            )
        )
        assert added is not None
        job = added[1].job
    return await _end(store, job, to, now)


def _delete(
    job_id: str, owner: str = "alice", request_id: str = "", fingerprint: str = "f"
) -> JobDeleteParams:
    return JobDeleteParams(
        owner=owner,
        job_id=job_id,
        now=T0,
        forget_before=T0 - dt.timedelta(days=1),
        request_id=request_id,
        request_fingerprint=fingerprint if request_id else "",
    )


async def test_deleting_a_finished_job_removes_it_with_its_events_assets_and_outbox_row(
    store: SqlStore, create_job: CreateJob, count_rows: CountRows
) -> None:
    doomed = await _worked(store, create_job, JobStatus.COMPLETED, T0)
    kept = await _worked(store, create_job, JobStatus.FAILED, T0)
    assert doomed.callback_state is CallbackState.PENDING
    before = await _counts(count_rows)
    assert before == {"jobs": 2, "job_events": 10, "assets": 4, "callback_outbox": 2}

    assert await store.job_delete(_delete(doomed.id)) is True

    assert await _counts(count_rows) == {"jobs": 1, "job_events": 5, "assets": 2, "callback_outbox": 1}
    with pytest.raises(errors.NotFound):
        await store.job_get("alice", doomed.id)
    assert (await store.job_get("alice", kept.id)).last_sequence == 5


@pytest.mark.parametrize("status", [JobStatus.CREATED, JobStatus.QUEUED, JobStatus.RUNNING])
async def test_an_unfinished_job_is_refused_and_nothing_is_removed(
    store: SqlStore, create_job: CreateJob, count_rows: CountRows, status: JobStatus
) -> None:
    job = await create_job(status=JobStatus.CREATED if status is JobStatus.CREATED else JobStatus.QUEUED)
    if status is JobStatus.RUNNING:
        job = await _claimed(store, job, T0)
    before = await _counts(count_rows)

    with pytest.raises(errors.JobNotTerminal) as refused:
        await store.job_delete(_delete(job.id, request_id="r-1"))

    assert refused.value.metadata == {"job_id": job.id, "status": status.value}
    assert await _counts(count_rows) == before
    assert await count_rows("job_deletions") == 0
    assert (await store.job_get("alice", job.id)).status is status


async def test_another_owners_job_and_a_missing_one_are_not_found(
    store: SqlStore, create_job: CreateJob, count_rows: CountRows
) -> None:
    job = await _end(store, await create_job(owner="bob"), JobStatus.CANCELLED, T0)
    for params in (_delete(job.id, owner="alice"), _delete("no-such-job")):
        with pytest.raises(errors.NotFound):
            await store.job_delete(params)
    assert await count_rows("jobs") == 1
    assert (await store.job_get("bob", job.id)).status is JobStatus.CANCELLED


async def test_a_retried_delete_is_answered_as_the_first_and_a_new_one_is_not_found(
    store: SqlStore, create_job: CreateJob, count_rows: CountRows
) -> None:
    job = await _end(store, await create_job(), JobStatus.CANCELLED, T0)
    assert await store.job_delete(_delete(job.id, request_id="r-1")) is True
    assert await store.job_delete(_delete(job.id, request_id="r-1")) is False  # the retry
    with pytest.raises(errors.RequestIdMismatch):
        await store.job_delete(_delete("other-job", request_id="r-1"))
    with pytest.raises(errors.RequestIdMismatch):
        await store.job_delete(_delete(job.id, request_id="r-1", fingerprint="other content"))
    with pytest.raises(errors.NotFound):  # the same request id, another owner: its own key space
        await store.job_delete(_delete(job.id, owner="bob", request_id="r-1"))
    with pytest.raises(errors.NotFound):  # a new delete (no or another request id)
        await store.job_delete(_delete(job.id))
    with pytest.raises(errors.NotFound):
        await store.job_delete(_delete(job.id, request_id="r-2"))
    # Forgotten after its window: then a retry is a new delete of a job that is gone.
    late = JobDeleteParams(
        owner="alice",
        job_id=job.id,
        now=T0,
        forget_before=T0 + dt.timedelta(seconds=1),
        request_id="r-1",
        request_fingerprint="f",
    )
    with pytest.raises(errors.NotFound):
        await store.job_delete(late)
    assert await count_rows("job_deletions") == 1
    # And the key is free for a delete of another job.
    another = await _end(store, await create_job(), JobStatus.CANCELLED, T0)
    later = T0 + dt.timedelta(days=2)
    reused = dataclasses.replace(
        late, job_id=another.id, now=later, forget_before=later - dt.timedelta(days=1)
    )
    assert await store.job_delete(reused) is True
    assert await store.job_delete(reused) is False
    assert await count_rows("job_deletions") == 1


async def test_old_delete_records_are_pruned_by_later_deletes(
    store: SqlStore, create_job: CreateJob, count_rows: CountRows
) -> None:
    for n in range(3):
        job = await _end(store, await create_job(), JobStatus.CANCELLED, T0)
        await store.job_delete(_delete(job.id, request_id=f"old-{n}"))
    job = await _end(store, await create_job(), JobStatus.CANCELLED, T0)
    later = T0 + dt.timedelta(days=2)
    await store.job_delete(
        JobDeleteParams(
            owner="alice",
            job_id=job.id,
            now=later,
            forget_before=later - dt.timedelta(days=1),
            request_id="new",
            request_fingerprint="f",
        )
    )
    assert await count_rows("job_deletions") == 1


async def test_retention_deletes_exactly_the_jobs_its_rule_makes_due(
    store: SqlStore, create_job: CreateJob, count_rows: CountRows
) -> None:
    hour = dt.timedelta(hours=1)
    old = [
        await _worked(store, create_job, JobStatus.COMPLETED, T0, job_type=t) for t in ("a", "a", "b", "c")
    ]
    newer = await _worked(store, create_job, JobStatus.COMPLETED, T0 + 2 * hour, job_type="a")
    failed = await _end(store, await create_job(job_type="a"), JobStatus.FAILED, T0)
    running = await _claimed(store, await create_job(job_type="a"), T0)
    settled = [j.id for j in [*old, newer]]
    await _settle_callbacks(store, settled)

    rule = RetentionRule(status=JobStatus.COMPLETED, before=T0 + hour, except_types=frozenset({"c"}))
    assert await store.job_delete_expired(rule, limit=500) == 3

    left = {j.id for j in await _all_jobs(store)}
    assert left == {old[3].id, newer.id, failed.id, running.id}
    assert await count_rows("assets") == 2 * 2  # old[3]'s and newer's
    only_b = RetentionRule(status=JobStatus.COMPLETED, before=T0 + 3 * hour, job_types=frozenset({"b"}))
    assert await store.job_delete_expired(only_b, limit=500) == 0


async def test_retention_works_in_batches_and_leaves_undelivered_callbacks(
    store: SqlStore, create_job: CreateJob
) -> None:
    jobs = [await _end(store, await create_job(), JobStatus.CANCELLED, T0) for _ in range(5)]
    pending = await _end(
        store, await create_job(callback_url="https://example.com/h"), JobStatus.CANCELLED, T0
    )
    assert pending.callback_state is CallbackState.PENDING
    rule = RetentionRule(status=JobStatus.CANCELLED, before=T0 + dt.timedelta(seconds=1))

    assert [await store.job_delete_expired(rule, limit=2) for _ in range(4)] == [2, 2, 1, 0]
    assert [j.id for j in await _all_jobs(store)] == [pending.id]
    assert {j.id for j in jobs}.isdisjoint({j.id for j in await _all_jobs(store)})


async def test_retention_alongside_other_writes_fails_none_of_them(
    store: SqlStore, create_job: CreateJob, open_stores: Callable[..., SqlStore]
) -> None:
    """A second store (on PostgreSQL a process's own connections; on SQLite another writer, queuing
    on the database lock) deletes expired jobs in small batches while this one creates, claims,
    completes and deletes jobs: every write succeeds, and exactly the expired jobs go."""
    expired = [
        await _end(store, await create_job(job_type="old"), JobStatus.CANCELLED, T0) for _ in range(60)
    ]
    other = open_stores()
    rule = RetentionRule(status=JobStatus.CANCELLED, before=T0 + dt.timedelta(seconds=1))
    deleting = True

    async def retention() -> int:
        total = 0
        while deleting or total < len(expired):
            total += await other.job_delete_expired(rule, limit=7)
            await asyncio.sleep(0)
        return total

    async def writes(n: int) -> list[str]:
        made = []
        for i in range(15):
            job = await create_job(job_type=f"w{n}")
            job = await _claimed(store, job, T0 + dt.timedelta(seconds=5))
            done = await _end(store, job, JobStatus.COMPLETED, T0 + dt.timedelta(seconds=5))
            if i % 5 == 0:  # and a few deleted by their owner meanwhile
                assert await store.job_delete(_delete(done.id)) is True
            else:
                made.append(done.id)
        return made

    task = asyncio.create_task(retention())
    made = await asyncio.gather(*(writes(n) for n in range(4)))
    deleting = False
    assert await asyncio.wait_for(task, 30) == len(expired)
    assert {j.id for j in await _all_jobs(store)} == {i for ids in made for i in ids}


async def _settle_callbacks(store: SqlStore, job_ids: list[str]) -> None:
    """Mark the jobs' callbacks delivered (retention waits for an unsettled one)."""
    async with store.write_engine.begin() as conn:
        await conn.execute(
            sa.text("UPDATE jobs SET callback_state = 'DELIVERED' WHERE id IN :ids").bindparams(
                sa.bindparam("ids", expanding=True)
            ),
            {"ids": job_ids},
        )


async def _all_jobs(store: SqlStore) -> list[Job]:
    found: list[Job] = []
    for owner in ("alice", "bob"):
        found += await store.job_list(JobListParams(owner=owner, limit=1000))
    return found
