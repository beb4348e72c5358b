"""Creating, reading and changing jobs: idempotent create, owner scoping, compare-and-set, sequences."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from jobwarden_server.domain import errors
from jobwarden_server.domain.records import EventKind, Job, JobError, Progress
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.store import (
    Change,
    JobChanges,
    JobCreateParams,
    JobCreateResult,
    JobUpdateParams,
    Lease,
    NewEvent,
    PageParams,
    Replayed,
    SqlStore,
)

CreateJob = Callable[..., Awaitable[Job]]


def _transition(frm: JobStatus, to: JobStatus, *, actor: str = "system") -> NewEvent:
    return NewEvent(
        kind=EventKind.TRANSITION,
        actor=actor,
        data={"from": frm.value, "to": to.value, "reason": "test", "stop_reason": "UNSPECIFIED"},
    )


async def _events(store: SqlStore, job: Job, *, after: int = 0, limit: int = 1000) -> list[Any]:
    return list(await store.event_list(PageParams(owner=job.owner, job_id=job.id, after=after, limit=limit)))


async def test_create_stores_the_job_and_its_created_event(
    store: SqlStore, job_params: Callable[..., JobCreateParams]
) -> None:
    params = job_params(labels={"team": "a"}, priority=7, max_attempts=5, callback_url="http://cb")
    result = await store.job_create(params)

    assert result.created
    job = result.change.job
    assert (job.id, job.owner, job.job_type, job.lifecycle) == (params.id, "alice", "render", "standard")
    assert (job.status, job.priority, job.max_attempts, job.attempt) == (JobStatus.QUEUED, 7, 5, 0)
    assert job.parameters == {"frames": 10, "nested": {"ok": True}}
    assert (job.labels, job.callback_url, job.result, job.error) == ({"team": "a"}, "http://cb", None, None)
    assert (job.version, job.last_sequence, job.lease_token, job.worker_id) == (1, 1, "", "")
    assert job.stop_reason is StopReason.UNSPECIFIED
    assert job.create_time == job.update_time == params.now
    assert await store.job_get("alice", job.id) == job

    [created] = result.change.events
    assert (created.sequence, created.kind, created.actor) == (1, EventKind.CREATED, "client:alice")
    assert created.data == {"status": "QUEUED"}
    assert await _events(store, job) == [created]


async def test_times_round_trip_to_the_microsecond_as_utc(
    store: SqlStore, job_params: Callable[..., JobCreateParams]
) -> None:
    plus_two = dt.timezone(dt.timedelta(hours=2))
    now = dt.datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=plus_two)
    run_after = dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC)  # before the epoch
    params = job_params(now=now, run_after=run_after, deadline=now + dt.timedelta(days=1))
    await store.job_create(params)

    job = await store.job_get(None, params.id)
    assert job.create_time == now and job.create_time.utcoffset() == dt.timedelta(0)
    assert job.run_after == run_after
    assert job.deadline == now + dt.timedelta(days=1)


async def test_naive_times_are_refused(store: SqlStore, job_params: Callable[..., JobCreateParams]) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.job_create(job_params(now=dt.datetime(2030, 1, 1)))


async def test_same_request_id_and_fingerprint_returns_the_earlier_job(
    store: SqlStore, job_params: Callable[..., JobCreateParams], count_rows: Callable[[str], Awaitable[int]]
) -> None:
    first = await store.job_create(job_params(request_id="r-1", request_fingerprint="fp"))
    again = await store.job_create(job_params(request_id="r-1", request_fingerprint="fp"))

    assert first.created and not again.created
    assert again.change.job == first.change.job
    assert again.change.events == ()
    assert await count_rows("jobs") == 1
    assert await count_rows("job_events") == 1


async def test_same_request_id_with_other_content_is_a_mismatch(
    store: SqlStore, job_params: Callable[..., JobCreateParams], count_rows: Callable[[str], Awaitable[int]]
) -> None:
    await store.job_create(job_params(request_id="r-1", request_fingerprint="fp"))
    with pytest.raises(errors.RequestIdMismatch):
        await store.job_create(job_params(request_id="r-1", request_fingerprint="other"))
    assert await count_rows("jobs") == 1


async def test_concurrent_retries_of_one_request_create_one_job(
    job_params: Callable[..., JobCreateParams],
    open_stores: Callable[..., SqlStore],
    count_rows: Callable[[str], Awaitable[int]],
) -> None:
    """Retries racing on separate connections: the unique index decides, every caller gets the winner."""
    retries = 8
    stores = [open_stores(pool_size=1) for _ in range(retries)]
    now = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)
    start = asyncio.Barrier(retries)

    async def create(on: SqlStore, n: int) -> JobCreateResult:
        await start.wait()
        # Each retry carries a fresh job id, as a service generating ids per call would.
        return await on.job_create(
            job_params(job_id=f"attempt-{n}", request_id="r-race", request_fingerprint="fp", now=now)
        )

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(create(s, n)) for n, s in enumerate(stores)]

    results = [task.result() for task in tasks]
    assert sum(r.created for r in results) == 1
    assert len({r.change.job.id for r in results}) == 1
    assert (await count_rows("jobs"), await count_rows("job_events")) == (1, 1)


async def test_request_ids_are_per_owner_and_empty_means_none(
    store: SqlStore, job_params: Callable[..., JobCreateParams]
) -> None:
    assert (await store.job_create(job_params(owner="alice", request_id="r"))).created
    assert (await store.job_create(job_params(owner="bob", request_id="r"))).created
    assert (await store.job_create(job_params(request_id=""))).created
    assert (await store.job_create(job_params(request_id=""))).created


async def test_get_is_scoped_to_the_owner(store: SqlStore, create_job: CreateJob) -> None:
    job = await create_job(owner="alice")
    assert await store.job_get(None, job.id) == job
    with pytest.raises(errors.NotFound):
        await store.job_get("bob", job.id)
    with pytest.raises(errors.NotFound):
        await store.job_get("alice", "no-such-job")


async def test_update_applies_changes_and_appends_events(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    job = await create_job()
    now = clock.tick()
    change = await store.job_update(
        JobUpdateParams(
            job_id=job.id,
            owner="alice",
            now=now,
            changes=JobChanges(
                status=JobStatus.FAILED,
                progress=Progress(percent=42.5, message="half", done=5, total=10),
                result={"partial": [1, 2]},
                error=JobError(message="boom", reason="E_BOOM", retryable=True),
                stop_reason=StopReason.PROVIDER_ERROR,
                cancel_requested=True,
                complete_time=now,
            ),
            events=[_transition(JobStatus.QUEUED, JobStatus.FAILED), NewEvent(kind=EventKind.LOG, actor="x")],
            expect_statuses=frozenset({JobStatus.QUEUED}),
            expect_version=1,
        )
    )

    assert change is not None
    updated = change.job
    assert (updated.status, updated.version, updated.last_sequence) == (JobStatus.FAILED, 2, 3)
    assert updated.progress == Progress(percent=42.5, message="half", done=5, total=10)
    assert updated.result == {"partial": [1, 2]}
    assert updated.error == JobError(message="boom", reason="E_BOOM", retryable=True)
    assert (updated.stop_reason, updated.cancel_requested) == (StopReason.PROVIDER_ERROR, True)
    assert updated.complete_time == updated.update_time == now
    assert [(e.sequence, e.kind) for e in change.events] == [(2, EventKind.TRANSITION), (3, EventKind.LOG)]
    assert change.events[0].data["to"] == "FAILED"
    assert await store.job_get("alice", job.id) == updated
    assert [e.sequence for e in await _events(store, job)] == [1, 2, 3]


CAS_MISSES: dict[str, dict[str, Any]] = {
    "wrong status": {"expect_statuses": frozenset({JobStatus.RUNNING, JobStatus.CREATED})},
    "wrong lease": {"expect_lease_token": "not-the-token"},
    "wrong version": {"expect_version": 7},
    "wrong owner": {"owner": "mallory"},
    "missing job": {"job_id": "no-such-job"},
}


@pytest.mark.parametrize("miss", CAS_MISSES.values(), ids=CAS_MISSES.keys())
async def test_update_with_a_failed_condition_changes_nothing(
    store: SqlStore, create_job: CreateJob, clock: Any, miss: dict[str, Any]
) -> None:
    job = await create_job()
    fields: dict[str, Any] = {
        "job_id": job.id,
        "owner": "alice",
        "now": clock.tick(),
        "changes": JobChanges(status=JobStatus.CANCELLED, stop_reason=StopReason.USER_CANCELLED),
        "events": [_transition(JobStatus.QUEUED, JobStatus.CANCELLED)],
        "expect_statuses": frozenset({JobStatus.QUEUED}),
        "expect_version": 1,
    }
    fields.update(miss)

    assert await store.job_update(JobUpdateParams(**fields)) is None
    assert await store.job_get(None, job.id) == job
    assert [e.sequence for e in await _events(store, job)] == [1]


async def test_update_matching_every_condition_succeeds(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    """The control for the misses above: the same update with every condition right applies."""
    job = await create_job()
    lease = Lease(token="tok", worker_id="w1", expire_time=clock.now + dt.timedelta(minutes=1), duration_s=60)
    leased = await store.job_update(
        JobUpdateParams(job_id=job.id, owner=None, now=clock.tick(), changes=JobChanges(lease=lease))
    )
    assert leased is not None and leased.job.lease_token == "tok"

    change = await store.job_update(
        JobUpdateParams(
            job_id=job.id,
            owner="alice",
            now=clock.tick(),
            changes=JobChanges(status=JobStatus.CANCELLED),
            events=[_transition(JobStatus.QUEUED, JobStatus.CANCELLED)],
            expect_statuses=frozenset({JobStatus.QUEUED}),
            expect_lease_token="tok",
            expect_version=2,
        )
    )
    assert change is not None and change.job.status is JobStatus.CANCELLED
    assert (change.job.version, change.job.last_sequence) == (3, 2)


async def test_lease_set_renew_and_clear(store: SqlStore, create_job: CreateJob, clock: Any) -> None:
    job = await create_job()
    expire = clock.now + dt.timedelta(seconds=30)

    async def update(changes: JobChanges) -> Job:
        change = await store.job_update(
            JobUpdateParams(job_id=job.id, owner="alice", now=clock.tick(), changes=changes)
        )
        assert change is not None and change.events == ()
        return change.job

    leased = await update(
        JobChanges(lease=Lease(token="t1", worker_id="w", expire_time=expire, duration_s=30))
    )
    assert (leased.lease_token, leased.worker_id, leased.lease_expire_time) == ("t1", "w", expire)
    assert leased.lease_duration_s == 30

    renewed = await update(JobChanges(lease_expire_time=expire + dt.timedelta(seconds=30)))
    assert (renewed.lease_token, renewed.lease_expire_time) == ("t1", expire + dt.timedelta(seconds=30))

    cleared = await update(JobChanges(clear_lease=True))
    assert (cleared.lease_token, cleared.lease_expire_time, cleared.worker_id) == ("", None, "w")
    # Changes without events move the version (the etag) but not the history.
    assert (cleared.version, cleared.last_sequence) == (4, 1)


async def test_contradictory_lease_changes_are_refused(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    job = await create_job()
    lease = Lease(token="t", worker_id="w", expire_time=clock.now, duration_s=1)
    with pytest.raises(ValueError, match="at most one"):
        await store.job_update(
            JobUpdateParams(
                job_id=job.id, owner=None, now=clock.tick(), changes=JobChanges(lease=lease, clear_lease=True)
            )
        )


async def test_progress_out_of_range_is_refused_and_changes_nothing(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    job = await create_job()
    with pytest.raises(errors.InvalidArgument) as caught:
        await store.job_update(
            JobUpdateParams(
                job_id=job.id,
                owner="alice",
                now=clock.tick(),
                changes=JobChanges(progress=Progress(percent=101)),
                events=[NewEvent(kind=EventKind.PROGRESS, actor="w", data={"percent": 101})],
            )
        )
    assert caught.value.reason == "PROGRESS_OUT_OF_RANGE"
    assert await store.job_get(None, job.id) == job
    assert len(await _events(store, job)) == 1


async def test_sequences_are_contiguous_and_pages_of_events_join_up(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    job = await create_job()
    for batch in [0, 1, 3, 0, 2, 1, 4]:
        change = await store.job_update(
            JobUpdateParams(
                job_id=job.id,
                owner="alice",
                now=clock.tick(),
                changes=JobChanges(progress=Progress(percent=float(batch))),
                events=[NewEvent(kind=EventKind.LOG, actor="w", data={"n": i}) for i in range(batch)],
            )
        )
        assert change is not None and len(change.events) == batch

    final = await store.job_get("alice", job.id)
    assert final.last_sequence == 12
    assert [e.sequence for e in await _events(store, job)] == list(range(1, 13))

    paged: list[int] = []
    after = 0
    while page := await _events(store, job, after=after, limit=5):
        paged.extend(e.sequence for e in page)
        after = page[-1].sequence
    assert paged == list(range(1, 13))
    assert await _events(store, job, after=12) == []
    assert await store.event_list(PageParams(owner="bob", job_id=job.id, after=0, limit=10)) == []


async def test_job_with_events_reads_the_job_and_its_first_page_together(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    job = await create_job()
    await store.job_update(
        JobUpdateParams(
            job_id=job.id,
            owner="alice",
            now=clock.tick(),
            changes=JobChanges(progress=Progress(percent=1.0)),
            events=[NewEvent(kind=EventKind.LOG, actor="w", data={"n": i}) for i in range(4)],
        )
    )

    def page(after: int, limit: int = 3, owner: str = "alice") -> PageParams:
        return PageParams(owner=owner, job_id=job.id, after=after, limit=limit)

    current, events = await store.job_with_events(page(after=0))
    assert current == await store.job_get("alice", job.id) and current.last_sequence == 5
    assert [e.sequence for e in events] == [1, 2, 3]  # a page, as event_list gives it
    assert list(events) == await _events(store, job, limit=3)
    _, events = await store.job_with_events(page(after=3))
    assert [e.sequence for e in events] == [4, 5]
    _, events = await store.job_with_events(page(after=5))
    assert events == []
    for missing in (
        page(after=0, owner="bob"),
        PageParams(owner="alice", job_id="no-such-job", after=0, limit=3),
    ):
        with pytest.raises(errors.NotFound):
            await store.job_with_events(missing)


async def test_modify_decides_on_the_job_as_read_in_its_own_transaction(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    job = await create_job()
    seen: list[Job] = []

    def decide(current: Job) -> JobUpdateParams:
        seen.append(current)
        return JobUpdateParams(
            job_id=current.id,
            owner=current.owner,
            now=clock.tick(),
            changes=JobChanges(progress=Progress(percent=current.progress.percent + 10)),
            events=[NewEvent(kind=EventKind.PROGRESS, actor="w", data={"percent": 10.0})],
            expect_version=current.version,
        )

    change = await store.job_modify("alice", job.id, decide)
    assert seen == [job]
    assert change is not None and change.job.progress.percent == 10 and change.job.version == 2
    assert [e.kind for e in change.events] == [EventKind.PROGRESS]
    assert await store.job_get(None, job.id) == change.job


async def test_modify_with_a_request_id_already_recorded_replays_without_deciding(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    job = await create_job()
    decided: list[Job] = []

    def decide(current: Job) -> JobUpdateParams | None:
        decided.append(current)
        return JobUpdateParams(
            job_id=current.id,
            owner=current.owner,
            now=clock.tick(),
            changes=JobChanges(progress=Progress(percent=current.progress.percent + 10)),
            events=[NewEvent(kind=EventKind.PROGRESS, actor="w", data={"percent": 10.0}, request_id="r1")],
        )

    first = await store.job_modify("alice", job.id, decide, request_id="r1")
    assert first is not None and len(decided) == 1
    other = await store.job_modify("alice", job.id, decide, request_id="r2")  # another call: decided
    assert other is not None and len(decided) == 2
    with pytest.raises(Replayed) as replay:
        await store.job_modify("alice", job.id, decide, request_id="r1")
    assert len(decided) == 2  # not decided again
    assert replay.value.event == first.events[0] and replay.value.job == other.job
    with pytest.raises(errors.NotFound):
        await store.job_modify("bob", job.id, decide, request_id="r1")
    assert await store.job_modify("alice", job.id, lambda current: None) == Change(job=other.job, events=())


async def test_modify_refused_by_its_decision_or_for_another_owner_changes_nothing(
    store: SqlStore, create_job: CreateJob
) -> None:
    job = await create_job()

    def refuse(current: Job) -> JobUpdateParams:
        raise errors.LeaseLost(current.id)

    with pytest.raises(errors.LeaseLost):
        await store.job_modify("alice", job.id, refuse)
    with pytest.raises(errors.NotFound):
        await store.job_modify("bob", job.id, refuse)
    with pytest.raises(errors.NotFound):
        await store.job_modify("alice", "no-such-job", refuse)
    assert await store.job_get(None, job.id) == job
    assert [e.sequence for e in await _events(store, job)] == [1]
