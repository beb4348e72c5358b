"""Creating many jobs in one transaction: an outcome per item, idempotent per request_id, race-safe."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from collections.abc import Awaitable, Callable

import pytest
import sqlalchemy as sa

from jobwarden_server.domain import errors
from jobwarden_server.domain.records import EventKind
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store import JobCreateParams, JobCreateResult, PageParams, SqlStore
from jobwarden_server.store import _rows as rows
from jobwarden_server.store import _tables as tables

Params = Callable[..., JobCreateParams]
CountRows = Callable[[str], Awaitable[int]]


def _created(outcome: JobCreateResult | errors.DomainError) -> JobCreateResult:
    assert isinstance(outcome, JobCreateResult), outcome
    return outcome


async def test_many_jobs_are_created_in_order_each_with_its_created_event(
    store: SqlStore, job_params: Params, count_rows: CountRows
) -> None:
    params = [
        job_params(request_id="r-0", request_fingerprint="a"),
        job_params(status=JobStatus.CREATED, priority=5),
        job_params(request_id="r-2", request_fingerprint="c", labels={"n": "2"}),
    ]
    outcomes = [_created(o) for o in await store.job_create_many(params)]

    assert [o.created for o in outcomes] == [True, True, True]
    assert [o.change.job.id for o in outcomes] == [p.id for p in params]
    assert [o.change.job.status for o in outcomes] == [JobStatus.QUEUED, JobStatus.CREATED, JobStatus.QUEUED]
    for outcome, p in zip(outcomes, params, strict=True):
        [event] = outcome.change.events
        assert (event.job_id, event.sequence, event.kind) == (p.id, 1, EventKind.CREATED)
        assert event.data == {"status": p.status.value}
        assert await store.job_get("alice", p.id) == outcome.change.job
        stored = await store.event_list(PageParams(owner="alice", job_id=p.id, after=0, limit=10))
        assert list(stored) == [event]
    assert (await count_rows("jobs"), await count_rows("job_events")) == (3, 3)
    assert await store.job_create_many([]) == []


async def test_a_thousand_jobs_in_one_call(
    store: SqlStore, job_params: Params, count_rows: CountRows
) -> None:
    params = [job_params(request_id=f"bulk-{i:04d}", request_fingerprint="fp") for i in range(1000)]
    outcomes = await store.job_create_many(params)
    assert [_created(o).change.job.request_id for o in outcomes] == [p.request_id for p in params]
    assert all(_created(o).created for o in outcomes)
    assert (await count_rows("jobs"), await count_rows("job_events")) == (1000, 1000)


async def test_used_request_ids_are_replays_or_mismatches_and_new_ones_are_created(
    store: SqlStore, job_params: Params, count_rows: CountRows
) -> None:
    first = await store.job_create(job_params(request_id="r-old", request_fingerprint="fp"))
    other = await store.job_create(job_params(request_id="r-other", request_fingerprint="fp"))

    replay, mismatch, new = await store.job_create_many(
        [
            job_params(request_id="r-old", request_fingerprint="fp"),
            job_params(request_id="r-other", request_fingerprint="changed"),
            job_params(request_id="r-new", request_fingerprint="fp"),
        ]
    )

    assert _created(replay).created is False
    assert _created(replay).change.job == first.change.job and _created(replay).change.events == ()
    assert isinstance(mismatch, errors.RequestIdMismatch)
    assert mismatch.metadata == {"request_id": "r-other", "job_id": other.change.job.id}
    assert _created(new).created
    assert (await count_rows("jobs"), await count_rows("job_events")) == (3, 3)


async def test_items_of_one_call_sharing_a_request_id_are_answered_like_retries_of_the_first(
    store: SqlStore, job_params: Params, count_rows: CountRows
) -> None:
    first, same, different, anonymous_a, anonymous_b = await store.job_create_many(
        [
            job_params(request_id="r-dup", request_fingerprint="fp"),
            job_params(request_id="r-dup", request_fingerprint="fp"),
            job_params(request_id="r-dup", request_fingerprint="other"),
            job_params(request_id=""),
            job_params(request_id=""),
        ]
    )

    assert _created(first).created
    job = _created(first).change.job
    assert _created(same).created is False
    assert _created(same).change.job == job and _created(same).change.events == ()
    assert isinstance(different, errors.RequestIdMismatch)
    assert different.metadata == {"request_id": "r-dup", "job_id": job.id}
    # No request_id means no idempotency: identical items are separate jobs.
    assert _created(anonymous_a).created and _created(anonymous_b).created
    assert (await count_rows("jobs"), await count_rows("job_events")) == (3, 3)


async def test_request_ids_are_per_owner_within_one_call(store: SqlStore, job_params: Params) -> None:
    await store.job_create(job_params(owner="bob", request_id="shared", request_fingerprint="bob's"))
    alice, bob = await store.job_create_many(
        [
            job_params(owner="alice", request_id="shared", request_fingerprint="alice's"),
            job_params(owner="bob", request_id="shared", request_fingerprint="bob's"),
        ]
    )
    assert _created(alice).created and _created(alice).change.job.owner == "alice"
    assert _created(bob).created is False and _created(bob).change.job.owner == "bob"


async def test_a_database_failure_writes_none_of_the_call(
    store: SqlStore, job_params: Params, count_rows: CountRows
) -> None:
    """One transaction: an item the database refuses (here a job id already in use) takes the whole
    call with it, including the items before it."""
    existing = job_params()
    await store.job_create(existing)
    with pytest.raises(sa.exc.IntegrityError):
        await store.job_create_many(
            [job_params(request_id="r-a", request_fingerprint="fp"), job_params(job_id=existing.id)]
        )
    assert (await count_rows("jobs"), await count_rows("job_events")) == (1, 1)
    # The request_id of the undone item is free again.
    assert _created((await store.job_create_many([job_params(request_id="r-a")]))[0]).created


async def test_concurrent_calls_sharing_request_ids_create_one_job_per_request_id(
    job_params: Params, open_stores: Callable[..., SqlStore], count_rows: CountRows
) -> None:
    """Eight calls on eight connections, each with the same 400 request_ids in its own order plus 5
    of its own: on PostgreSQL they really run at once, and must neither duplicate a job nor deadlock
    (inserting in the order given, rather than sorted, deadlocks here about one run in three)."""
    calls = 8
    stores = [open_stores(pool_size=1) for _ in range(calls)]
    now = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)
    shared = [f"shared-{i:03d}" for i in range(400)]
    start = asyncio.Barrier(calls)

    async def create(on: SqlStore, n: int) -> list[JobCreateResult | errors.DomainError]:
        ids = shared + [f"own-{n}-{i}" for i in range(5)]
        random.Random(n).shuffle(ids)
        params = [job_params(request_id=r, request_fingerprint="fp", now=now) for r in ids]
        await start.wait()
        return list(await on.job_create_many(params))

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(create(s, n)) for n, s in enumerate(stores)]

    answers: dict[str, set[str]] = {}
    created: dict[str, int] = {}
    for task in tasks:
        for outcome in task.result():
            job = _created(outcome).change.job
            answers.setdefault(job.request_id, set()).add(job.id)
            created[job.request_id] = created.get(job.request_id, 0) + _created(outcome).created
    assert all(len(ids) == 1 for ids in answers.values())
    assert all(created[r] == 1 for r in answers)
    assert len(answers) == 400 + calls * 5
    assert (await count_rows("jobs"), await count_rows("job_events")) == (440, 440)


async def test_a_racer_holding_a_request_id_uncommitted_is_waited_for_then_answered(
    store: SqlStore, job_params: Params, count_rows: CountRows, backend: str
) -> None:
    """A request_id inserted by another transaction that has not committed yet: on PostgreSQL the
    INSERT waits for it and then skips the row, and the call reads the racer's job back; on SQLite the
    racer holds the only write lock, so the call starts once the racer is done. Either way: one job,
    and the answer names it."""
    racer = job_params(request_id="r-race", request_fingerprint="fp")
    async with store.write_engine.connect() as conn:
        await conn.begin()
        await conn.execute(sa.insert(tables.jobs), rows.create_values(racer, rows.to_us(racer.now)))
        await conn.execute(sa.insert(tables.job_events), rows.created_event_row(racer, rows.to_us(racer.now)))
        creating = asyncio.create_task(
            store.job_create_many(
                [
                    job_params(request_id="r-race", request_fingerprint="fp"),
                    job_params(request_id="r-race", request_fingerprint="other"),
                    job_params(request_id="r-fresh", request_fingerprint="fp"),
                ]
            )
        )
        if backend == "postgres":
            await _until_waiting_on_a_lock(store)
        await conn.commit()
    replay, mismatch, fresh = await creating

    assert _created(replay).created is False and _created(replay).change.job.id == racer.id
    assert isinstance(mismatch, errors.RequestIdMismatch) and mismatch.metadata["job_id"] == racer.id
    assert _created(fresh).created
    assert (await count_rows("jobs"), await count_rows("job_events")) == (2, 2)


async def _until_waiting_on_a_lock(store: SqlStore, within_s: float = 10.0) -> None:
    query = sa.text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with asyncio.timeout(within_s), store.write_engine.connect() as conn:
        while not (await conn.execute(query)).scalar_one():  # a database has nothing to await
            await conn.rollback()  # a fresh snapshot of pg_stat_activity for the next look
            await asyncio.sleep(0.01)
