"""job_due: what the reaper is handed (expired leases, passed deadlines), and what claims skip."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store import JobClaimParams, JobDueParams, SqlStore

CreateJob = Callable[..., Awaitable[Job]]


def _claim(now: dt.datetime, owner: str = "alice") -> JobClaimParams:
    return JobClaimParams(
        owner=owner, worker_id="w", job_types=frozenset({"render"}), limit=10, lease_duration_s=10.0, now=now
    )


async def test_due_lists_expired_leases_and_passed_deadlines_only(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    leased = await create_job()
    await create_job(owner="bob")  # queued, no deadline: never due
    start = clock.tick()
    claimed = await store.job_claim(_claim(start))
    assert [c.job.id for c in claimed] == [leased.id]
    later = start + dt.timedelta(seconds=60)
    overdue = await create_job(
        owner="bob", deadline=later - dt.timedelta(seconds=1), status=JobStatus.CREATED
    )
    await create_job(deadline=later + dt.timedelta(seconds=1))  # not yet

    assert await store.job_due(JobDueParams(now=start + dt.timedelta(seconds=5), limit=10)) == []
    due = await store.job_due(JobDueParams(now=later, limit=10))
    assert sorted(j.id for j in due) == sorted([leased.id, overdue.id])
    assert len(await store.job_due(JobDueParams(now=later, limit=1))) == 2  # the limit is per kind


async def test_claim_skips_jobs_past_their_deadline(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    now = clock.tick()
    await create_job(deadline=now - dt.timedelta(seconds=1))
    fresh = await create_job(deadline=now + dt.timedelta(hours=1))
    claimed = await store.job_claim(_claim(now))
    assert [c.job.id for c in claimed] == [fresh.id]
