"""The queue depth the metrics read: unfinished jobs of every owner per (job type, status)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from jobwarden_server.domain.changes import Decision
from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store import JobChanges, JobUpdateParams, SqlStore


async def test_depth_counts_unfinished_jobs_of_every_owner_by_type_and_status(
    store: SqlStore, create_job: Callable[..., Awaitable[Job]]
) -> None:
    assert await store.job_depth() == {}
    for _ in range(3):
        await create_job()
    await create_job(owner="bob")
    await create_job(job_type="mail", status=JobStatus.CREATED)
    running = await create_job(job_type="mail")
    done = await create_job(job_type="mail")
    for job, status in ((running, JobStatus.RUNNING), (done, JobStatus.COMPLETED)):
        changed = await store.job_update(
            JobUpdateParams.of(
                job.id, job.owner, job.create_time, Decision(changes=JobChanges(status=status))
            )
        )
        assert changed is not None
    assert await store.job_depth() == {
        ("render", JobStatus.QUEUED): 4,
        ("mail", JobStatus.CREATED): 1,
        ("mail", JobStatus.RUNNING): 1,
    }
