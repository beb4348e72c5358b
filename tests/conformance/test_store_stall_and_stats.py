"""Stall detection's and GetJobStats' statements on every database: which running jobs are due for a
stall check, and the counts, capped duration samples and in-flight figures per job type."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from jobwarden_server.domain.changes import Decision, JobChanges
from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store import JobClaimParams, JobDueParams, JobStatsParams, JobUpdateParams, SqlStore

CreateJob = Callable[..., Awaitable[Job]]


async def _claim(store: SqlStore, now: dt.datetime, job_type: str = "render", limit: int = 10) -> list[Job]:
    params = JobClaimParams(
        owner="alice",
        worker_id="w",
        job_types=frozenset({job_type}),
        limit=limit,
        lease_duration_s=3600.0,
        now=now,
    )
    return [c.job for c in await store.job_claim(params)]


async def _change(store: SqlStore, job: Job, now: dt.datetime, changes: JobChanges) -> Job:
    change = await store.job_update(JobUpdateParams.of(job.id, None, now, Decision(changes=changes)))
    assert change is not None
    return change.job


async def test_running_jobs_whose_progress_stood_still_are_due_once_per_flag(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    still = await create_job()
    moving = await create_job()
    await create_job(job_type="other")
    start = clock.tick()
    await _claim(store, start)
    [other] = await _claim(store, start, "other")
    moved = await _change(
        store,
        moving,
        start + dt.timedelta(seconds=30),
        JobChanges(progress_time=start + dt.timedelta(seconds=30)),
    )
    assert moved.progress_time == start + dt.timedelta(seconds=30)

    def due_at(seconds: float, **rules: float) -> JobDueParams:
        return JobDueParams(now=start + dt.timedelta(seconds=seconds), limit=10, stall_after_s=rules)

    assert await store.job_due(due_at(59, render=60)) == []
    [due] = await store.job_due(due_at(60, render=60))
    assert (due.id, due.progress_time, due.stall_time) == (still.id, start, None)
    assert [j.id for j in await store.job_due(due_at(60, other=60))] == [other.id]
    assert await store.job_due(due_at(3000)) == []  # no rule: never due for a stall

    flagged = await _change(
        store, due, start + dt.timedelta(seconds=61), JobChanges(stall_time=start + dt.timedelta(seconds=61))
    )
    assert flagged.stalled and flagged.stall_time == start + dt.timedelta(seconds=61)
    assert [j.id for j in await store.job_due(due_at(90, render=60))] == [moving.id]  # flagged: not again
    cleared = await _change(store, flagged, start + dt.timedelta(seconds=95), JobChanges(clear_stall=True))
    assert not cleared.stalled


async def test_stats_count_the_window_sample_the_newest_and_see_the_queue_now(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    before = await create_job()  # waits; created before the window
    start = clock.tick()
    jobs = [await create_job() for _ in range(4)]
    await create_job(job_type="mail", owner="bob")
    ran = await _claim(store, clock.tick(), limit=4)
    assert [j.id for j in ran] == [before.id, *(j.id for j in jobs[:3])]
    for offset, job in enumerate(ran[1:]):  # complete in 10, 20 and 30 s of running
        done = job.start_time + dt.timedelta(seconds=10 * (offset + 1))
        await _change(
            store, job, done, JobChanges(status=JobStatus.COMPLETED, complete_time=done, clear_lease=True)
        )
    await _change(store, ran[0], clock.now, JobChanges(stall_time=clock.now))
    end = clock.tick(100)

    def params(**fields: Any) -> JobStatsParams:
        values: dict[str, Any] = {"owner": "alice", "start": start, "end": end} | fields
        return JobStatsParams(**values)

    [render] = await store.job_stats(params())
    assert render.job_type == "render"
    assert render.counts == {JobStatus.COMPLETED: 3, JobStatus.QUEUED: 1}
    assert sorted(render.run_s) == [10.0, 20.0, 30.0]
    # Created 1, 2 and 3 s into the window, claimed at 6 s: waited 5, 4 and 3 s before running.
    assert sorted(render.completion_s) == [15.0, 24.0, 33.0]
    assert (render.queued, render.oldest_queued, render.running, render.stalled) == (
        1,
        jobs[3].create_time,
        1,
        1,
    )
    # The sample is the newest jobs of each type: with a cap of 2, the first completed one is left out.
    [capped] = await store.job_stats(params(sample=2))
    assert sorted(capped.run_s) == [20.0, 30.0]
    # Every owner's; one type by name (zeros included); another owner only its own.
    mail, render_all = await store.job_stats(params(owner=None))
    assert (mail.job_type, mail.counts, render_all.counts[JobStatus.COMPLETED]) == (
        "mail",
        {JobStatus.QUEUED: 1},
        3,
    )
    [nothing] = await store.job_stats(params(job_types=frozenset({"nothing"})))
    assert (nothing.job_type, nothing.counts, nothing.queued, nothing.oldest_queued) == (
        "nothing",
        {},
        0,
        None,
    )
    [bobs] = await store.job_stats(params(owner="bob"))
    assert bobs.job_type == "mail"
