"""Listing jobs: every filter, owner scoping, and keyset pages in both directions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.store import JobChanges, JobListParams, JobUpdateParams, SqlStore

CreateJob = Callable[..., Awaitable[Job]]


async def _ids(store: SqlStore, **filters: Any) -> list[str]:
    params = JobListParams(owner=filters.pop("owner", "alice"), limit=filters.pop("limit", 1000), **filters)
    return [job.id for job in await store.job_list(params)]


async def _finish(store: SqlStore, job: Job, status: JobStatus, reason: StopReason, now: dt.datetime) -> Job:
    change = await store.job_update(
        JobUpdateParams(
            job_id=job.id, owner=None, now=now, changes=JobChanges(status=status, stop_reason=reason)
        )
    )
    assert change is not None
    return change.job


async def test_lists_only_the_owners_jobs_oldest_first(store: SqlStore, create_job: CreateJob) -> None:
    mine = [await create_job(owner="alice") for _ in range(3)]
    await create_job(owner="bob")
    assert await _ids(store) == [j.id for j in mine]
    assert await _ids(store, descending=True) == [j.id for j in reversed(mine)]
    assert await _ids(store, owner="carol") == []


async def test_filters_by_status_type_and_stop_reason(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    queued = await create_job(job_type="render")
    held = await create_job(job_type="encode", status=JobStatus.CREATED)
    cancelled = await _finish(
        store,
        await create_job(job_type="render"),
        JobStatus.CANCELLED,
        StopReason.USER_CANCELLED,
        clock.tick(),
    )
    expired = await _finish(
        store,
        await create_job(job_type="encode"),
        JobStatus.EXPIRED,
        StopReason.TIMEOUT_EXCEEDED,
        clock.tick(),
    )

    assert await _ids(store, statuses=frozenset({JobStatus.QUEUED})) == [queued.id]
    assert await _ids(store, statuses=frozenset({JobStatus.CREATED, JobStatus.EXPIRED})) == [
        held.id,
        expired.id,
    ]
    assert await _ids(store, job_types=frozenset({"encode"})) == [held.id, expired.id]
    assert await _ids(store, stop_reasons=frozenset({StopReason.USER_CANCELLED})) == [cancelled.id]
    assert await _ids(
        store, job_types=frozenset({"render"}), statuses=frozenset({JobStatus.CANCELLED, JobStatus.EXPIRED})
    ) == [cancelled.id]


async def test_every_label_must_match(store: SqlStore, create_job: CreateJob) -> None:
    both = await create_job(labels={"team": "a", "env": "prod"})
    team_only = await create_job(labels={"team": "a", "env": "dev"})
    await create_job(labels={"team": "b", "env": "prod"})
    await create_job(labels={})

    assert await _ids(store, labels={"team": "a"}) == [both.id, team_only.id]
    assert await _ids(store, labels={"team": "a", "env": "prod"}) == [both.id]
    assert await _ids(store, labels={"team": "a", "env": "test"}) == []
    assert await _ids(store, labels={"missing": ""}) == []


@pytest.mark.parametrize("key", ["a.b", 'quo"te', "sp ace", "apo'strophe", "ünïcode", "$[0]", "雪"])
async def test_label_keys_match_exactly_whatever_their_characters(
    store: SqlStore, create_job: CreateJob, key: str
) -> None:
    wanted = await create_job(labels={key: "v", "plain": "1"})
    await create_job(labels={key: "other"})
    await create_job(labels={"plain": "1"})
    assert await _ids(store, labels={key: "v"}) == [wanted.id]
    assert await _ids(store, labels={key: "v", "plain": "1"}) == [wanted.id]


async def test_created_after_is_inclusive_and_created_before_exclusive(
    store: SqlStore, create_job: CreateJob
) -> None:
    jobs = [await create_job() for _ in range(5)]
    times = [j.create_time for j in jobs]
    assert await _ids(store, created_after=times[1]) == [j.id for j in jobs[1:]]
    assert await _ids(store, created_before=times[3]) == [j.id for j in jobs[:3]]
    assert await _ids(store, created_after=times[1], created_before=times[3]) == [jobs[1].id, jobs[2].id]


@pytest.mark.parametrize("descending", [False, True], ids=["ascending", "descending"])
@pytest.mark.parametrize("page_size", [1, 4, 7])
async def test_keyset_pages_have_no_gaps_and_no_duplicates(
    store: SqlStore, create_job: CreateJob, clock: Any, descending: bool, page_size: int
) -> None:
    # Several jobs share a creation time, so the id must break ties for the cursor to be exact.
    jobs: list[Job] = []
    for i in range(17):
        now = clock.now if i % 3 else clock.tick()
        jobs.append(await create_job(now=now, job_id=f"j-{(i * 7) % 17:02d}"))
    await create_job(owner="bob", now=clock.now)
    expected = sorted(jobs, key=lambda j: (j.create_time, j.id), reverse=descending)

    seen: list[str] = []
    after: tuple[dt.datetime, str] | None = None
    pages = 0
    while True:
        page = await store.job_list(
            JobListParams(owner="alice", limit=page_size, after=after, descending=descending)
        )
        if not page:
            break
        pages += 1
        assert len(page) <= page_size
        seen.extend(j.id for j in page)
        after = (page[-1].create_time, page[-1].id)

    assert seen == [j.id for j in expected]
    assert pages == -(-len(jobs) // page_size)


async def test_pages_respect_filters(store: SqlStore, create_job: CreateJob) -> None:
    wanted = []
    for i in range(12):
        job = await create_job(labels={"keep": "yes" if i % 2 else "no"})
        if i % 2:
            wanted.append(job.id)
    first = await store.job_list(
        JobListParams(owner="alice", limit=4, labels={"keep": "yes"}, descending=True)
    )
    rest = await store.job_list(
        JobListParams(
            owner="alice",
            limit=4,
            labels={"keep": "yes"},
            descending=True,
            after=(first[-1].create_time, first[-1].id),
        )
    )
    assert [j.id for j in [*first, *rest]] == list(reversed(wanted))
