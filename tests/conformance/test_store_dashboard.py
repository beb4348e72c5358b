"""The dashboard's reads: a filter's bounded count, jobs by id, and the grouped counts of queue stats."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from jobwarden_server.domain import stats
from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store import JobChanges, JobListParams, JobUpdateParams, SqlStore

CreateJob = Callable[..., Awaitable[Job]]


async def _move(store: SqlStore, job: Job, now: dt.datetime, **changes: Any) -> Job:
    change = await store.job_update(
        JobUpdateParams(job_id=job.id, owner=None, now=now, changes=JobChanges(**changes))
    )
    assert change is not None
    return change.job


async def test_count_is_scoped_filtered_and_bounded(store: SqlStore, create_job: CreateJob) -> None:
    for _ in range(4):
        await create_job(job_type="render")
    await create_job(job_type="encode", labels={"team": "a"})
    await create_job(owner="bob")
    assert await store.job_count(JobListParams(owner="alice", limit=100)) == 5
    assert await store.job_count(JobListParams(owner="alice", limit=3)) == 3
    assert (
        await store.job_count(JobListParams(owner="alice", limit=100, job_types=frozenset({"render"}))) == 4
    )
    assert await store.job_count(JobListParams(owner="alice", limit=100, labels={"team": "a"})) == 1
    statuses = frozenset({JobStatus.RUNNING})
    assert await store.job_count(JobListParams(owner="alice", limit=100, statuses=statuses)) == 0
    assert await store.job_count(JobListParams(owner="carol", limit=100)) == 0


async def test_jobs_by_id_of_any_owner_skipping_missing_ones(store: SqlStore, create_job: CreateJob) -> None:
    mine, theirs = await create_job(), await create_job(owner="bob")
    found = await store.job_get_many([mine.id, theirs.id, "no-such-job", mine.id])
    assert sorted((j.id, j.owner) for j in found) == sorted([(mine.id, "alice"), (theirs.id, "bob")])
    assert await store.job_get_many([]) == []


async def test_stats_count_depth_arrivals_departures_and_ends_per_bucket(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    # The window: 5 buckets of 60 s, starting just before the first job (2030-01-01T00:00:01).
    window = stats.StatsWindow(end=clock.now + dt.timedelta(minutes=5), bucket_s=60, buckets=5)
    done = await create_job(now=clock.now + dt.timedelta(seconds=5))  # bucket 0
    failed = await create_job(now=clock.now + dt.timedelta(seconds=70))  # bucket 1
    running = await create_job(now=clock.now + dt.timedelta(seconds=130))  # bucket 2
    await create_job(now=clock.now + dt.timedelta(seconds=200), job_type="encode")  # waiting, bucket 3
    await create_job(owner="bob", now=clock.now + dt.timedelta(seconds=10))
    start = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    await _move(
        store,
        done,
        start + dt.timedelta(seconds=65),
        status=JobStatus.RUNNING,
        start_time=start + dt.timedelta(seconds=65),
    )
    await _move(
        store,
        done,
        start + dt.timedelta(seconds=66),
        status=JobStatus.COMPLETED,
        complete_time=start + dt.timedelta(seconds=66),
    )
    await _move(
        store,
        failed,
        start + dt.timedelta(seconds=250),
        status=JobStatus.CANCELLED,
        complete_time=start + dt.timedelta(seconds=250),
    )
    await _move(
        store,
        running,
        start + dt.timedelta(seconds=140),
        status=JobStatus.RUNNING,
        start_time=start + dt.timedelta(seconds=140),
    )

    counts = await store.job_stats("alice", window)

    assert counts.depth == {("render", JobStatus.RUNNING): 1, ("encode", JobStatus.QUEUED): 1}
    assert counts.arrived == {("render", 0): 1, ("render", 1): 1, ("render", 2): 1, ("encode", 3): 1}
    # done left at its start (bucket 1), failed at its end without a start (bucket 4), running at 2.
    assert counts.left == {("render", 1): 1, ("render", 4): 1, ("render", 2): 1}
    took_61s = stats.duration_bucket(61)
    took_180s = stats.duration_bucket(180)
    assert counts.ended == {
        ("render", 1, JobStatus.COMPLETED, took_61s): 1,
        ("render", 4, JobStatus.CANCELLED, took_180s): 1,
    }
    assert (await store.job_stats("carol", window)).depth == {}
