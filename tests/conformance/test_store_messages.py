"""Job messages in the store: LOG events written by the one compare-and-set, counted in message_count
(added to, never set), listed by kind; and migration 0008 counting the log events already there."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa
from alembic import command

from jobwarden_server.domain import decisions
from jobwarden_server.domain.messages import JobMessage
from jobwarden_server.domain.records import EventKind, Job
from jobwarden_server.store import JobClaimParams, JobUpdateParams, PageParams, SqlStore, migrate, open_store
from jobwarden_server.store._migrate import alembic_config, migration_engine
from jobwarden_server.store._open import parse_database_url

CreateJob = Callable[..., Awaitable[Job]]


async def _running(store: SqlStore, create_job: CreateJob, clock: Any) -> Job:
    job = await create_job()
    params = JobClaimParams(
        owner="alice",
        worker_id="w",
        job_types=frozenset({job.job_type}),
        limit=1,
        lease_duration_s=60,
        now=clock.tick(),
    )
    [change] = await store.job_claim(params)
    return change.job


def _messages(job: Job, *texts: str, now: Any) -> JobUpdateParams:
    decision = decisions.add_messages(
        job, lease_token=job.lease_token, added=[JobMessage(text=t) for t in texts]
    )
    assert decision is not None
    return JobUpdateParams.of(job.id, job.owner, now, decision)


async def test_messages_are_counted_by_the_write_that_records_them(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    job = await _running(store, create_job, clock)
    first = await store.job_update(_messages(job, "a", "b", now=clock.tick()))
    assert first is not None
    assert (first.job.message_count, first.job.last_sequence) == (2, 4)
    assert [(e.sequence, e.kind, e.data["message"]) for e in first.events] == [
        (3, EventKind.LOG, "a"),
        (4, EventKind.LOG, "b"),
    ]
    # Decided on the job as read before the first write: still added to what is there, not set.
    second = await store.job_update(_messages(job, "c", now=clock.tick()))
    assert second is not None and second.job.message_count == 3
    assert (await store.job_get("alice", job.id)).message_count == 3


async def test_concurrent_writes_from_several_stores_each_add_their_own(
    store: SqlStore, create_job: CreateJob, clock: Any, open_stores: Callable[..., SqlStore]
) -> None:
    """On PostgreSQL the stores' transactions really overlap (own connections): a count set from what
    each read would lose updates."""
    job = await _running(store, create_job, clock)
    others = [open_stores() for _ in range(4)]
    now = clock.tick()
    changes = await asyncio.gather(
        *(
            s.job_update(_messages(job, *(f"{i}-{n}" for n in range(3)), now=now))
            for i, s in enumerate(others * 2)
        )
    )
    assert all(c is not None for c in changes)
    assert (await store.job_get("alice", job.id)).message_count == 24
    events = await store.event_list(PageParams(owner="alice", job_id=job.id, after=0, limit=100))
    assert [e.sequence for e in events] == list(range(1, 27))


async def test_event_list_filters_by_kind_in_sequence_order(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    job = await _running(store, create_job, clock)
    await store.job_update(_messages(job, "a", "b", "c", now=clock.tick()))

    def page(after: int, limit: int, *kinds: EventKind) -> list[tuple[int, EventKind]]:
        return [(e.sequence, e.kind) for e in events[(after, limit, kinds)]]

    events: dict[Any, Any] = {}
    for key in (
        (0, 10, (EventKind.LOG,)),
        (3, 1, (EventKind.LOG,)),
        (0, 10, (EventKind.CREATED, EventKind.LOG)),
    ):
        after, limit, kinds = key
        events[key] = await store.event_list(
            PageParams(owner="alice", job_id=job.id, after=after, limit=limit, kinds=frozenset(kinds))
        )
    assert page(0, 10, EventKind.LOG) == [(3, EventKind.LOG), (4, EventKind.LOG), (5, EventKind.LOG)]
    assert page(3, 1, EventKind.LOG) == [(4, EventKind.LOG)]
    assert page(0, 10, EventKind.CREATED, EventKind.LOG)[:2] == [(1, EventKind.CREATED), (3, EventKind.LOG)]
    theirs = await store.event_list(
        PageParams(owner="bob", job_id=job.id, after=0, limit=10, kinds=frozenset({EventKind.LOG}))
    )
    assert theirs == []


async def test_migration_0008_counts_the_log_events_a_database_already_has(empty_database_url: str) -> None:
    await migrate(empty_database_url)
    opened = open_store(empty_database_url)
    try:
        async with opened.write_engine.begin() as conn:
            for job_id, logs in (("with-logs", 2), ("without", 0)):
                await conn.execute(
                    sa.text(
                        "INSERT INTO jobs (id, owner, job_type, lifecycle, status, progress_percent, "
                        "progress_message, progress_done, progress_total, parameters, stop_reason, attempt, "
                        "max_attempts, priority, labels, callback_url, cancel_requested, version, create_us, "
                        "update_us, worker_id, lease_duration_s, last_sequence, request_fingerprint) VALUES "
                        "(:id, 'alice', 'demo', 'standard', 'QUEUED', 0, '', 0, 0, '{}', 'UNSPECIFIED', 0, 1, 0, "
                        "'{}', '', false, 1, 0, 0, '', 0, :last, '')"
                    ),
                    {"id": job_id, "last": 1 + logs},
                )
                for sequence, kind in [(1, "created"), *((2 + n, "log") for n in range(logs))]:
                    await conn.execute(
                        sa.text(
                            "INSERT INTO job_events (job_id, sequence, owner, create_us, actor, kind, data) "
                            "VALUES (:id, :seq, 'alice', 0, 'x', :kind, '{}')"
                        ),
                        {"id": job_id, "seq": sequence, "kind": kind},
                    )

        # As `jobwarden migrate` runs them (on SQLite: foreign keys off, so recreating `jobs` in a batch
        # migration cascades to nothing).
        engine = migration_engine(parse_database_url(empty_database_url))
        try:
            async with engine.begin() as conn:

                def down_then_up(connection: sa.Connection) -> None:
                    config = alembic_config()
                    config.attributes["connection"] = connection
                    command.downgrade(config, "0006")
                    columns = {c["name"] for c in sa.inspect(connection).get_columns("jobs")}
                    assert "message_count" not in columns
                    command.upgrade(config, "head")

                await conn.run_sync(down_then_up)
        finally:
            await engine.dispose()
        assert (await opened.job_get(None, "with-logs")).message_count == 2
        assert (await opened.job_get(None, "without")).message_count == 0
    finally:
        await opened.close()
