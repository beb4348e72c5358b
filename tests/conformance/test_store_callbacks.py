"""The callback outbox in the store: written in the change that ends a job, leased to one claimer at a
time, settled under its lease; on every database."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable

import pytest
import sqlalchemy as sa
from sqlalchemy import exc

from jobwarden_server.domain.records import CallbackState, EventKind, Job
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.store import (
    CallbackAttemptParams,
    CallbackClaimParams,
    CallbackDelivery,
    JobChanges,
    JobUpdateParams,
    NewEvent,
    SqlStore,
)

CreateJob = Callable[..., Awaitable[Job]]
CountRows = Callable[[str], Awaitable[int]]
URL = "https://example.com/hook"
LEASE_S = 30.0


def _ending(job: Job, to: JobStatus, now: dt.datetime, **expect: object) -> JobUpdateParams:
    return JobUpdateParams(
        job_id=job.id,
        owner=None,
        now=now,
        changes=JobChanges(status=to, stop_reason=StopReason.USER_CANCELLED, complete_time=now),
        events=[
            NewEvent(
                kind=EventKind.TRANSITION,
                actor="system",
                data={"from": job.status.value, "to": to.value, "reason": "test"},
            )
        ],
        expect_statuses=frozenset({job.status}),
        **expect,  # type: ignore[arg-type]
    )


async def _claim(store: SqlStore, now: dt.datetime, limit: int = 10) -> list[CallbackDelivery]:
    return list(await store.callback_claim(CallbackClaimParams(now=now, limit=limit, lease_s=LEASE_S)))


async def test_ending_a_job_writes_its_outbox_row_with_the_change(
    store: SqlStore, create_job: CreateJob, count_rows: CountRows
) -> None:
    job = await create_job(callback_url=URL, labels={"k": "v"})
    now = job.create_time + dt.timedelta(seconds=1)
    change = await store.job_update(_ending(job, JobStatus.CANCELLED, now))

    assert change is not None
    assert change.job.callback_state is CallbackState.PENDING
    assert await store.job_get(None, job.id) == change.job
    assert await count_rows("callback_outbox") == 1
    [delivery] = await _claim(store, now)
    assert (delivery.job_id, delivery.owner, delivery.url, delivery.attempts) == (job.id, "alice", URL, 0)
    assert delivery.create_time == now
    assert delivery.id.startswith("msg_")
    body = json.loads(delivery.body)
    assert body["type"] == "job.cancelled"
    assert body["data"]["job_id"] == job.id
    assert (body["data"]["status"], body["data"]["stop_reason"]) == ("CANCELLED", "USER_CANCELLED")
    assert body["data"]["labels"] == {"k": "v"}


async def test_no_row_without_a_callback_for_the_ending_or_before_the_end(
    store: SqlStore, create_job: CreateJob, count_rows: CountRows
) -> None:
    plain = await create_job()
    only_failed = await create_job(callback_url=URL, callback_statuses=frozenset({JobStatus.FAILED}))
    later = await create_job(callback_url=URL)
    now = later.create_time + dt.timedelta(seconds=1)
    assert only_failed.callback_statuses == frozenset({JobStatus.FAILED})

    for job in (plain, only_failed):
        change = await store.job_update(_ending(job, JobStatus.CANCELLED, now))
        assert change is not None and change.job.callback_state is CallbackState.NONE
    # A change that does not end the job (here, a progress-like update) writes no row either.
    moved = await store.job_update(
        JobUpdateParams(job_id=later.id, owner=None, now=now, changes=JobChanges(cancel_requested=True))
    )
    assert moved is not None and moved.job.callback_state is CallbackState.NONE
    assert await count_rows("callback_outbox") == 0


async def test_a_refused_or_undone_change_leaves_no_row(
    store: SqlStore, create_job: CreateJob, count_rows: CountRows
) -> None:
    job = await create_job(callback_url=URL)
    now = job.create_time + dt.timedelta(seconds=1)
    # A guard that fails: nothing changes.
    assert await store.job_update(_ending(job, JobStatus.CANCELLED, now, expect_version=99)) is None
    # The change goes as far as its event insert, which fails (the sequence is taken): the outbox row,
    # written before it in the same transaction, is undone with the rest.
    async with store.write_engine.begin() as conn:
        await conn.execute(
            sa.text(
                "INSERT INTO job_events (job_id, sequence, owner, create_us, actor, kind, data, request_id) "
                "VALUES (:id, 2, 'alice', 0, 'x', 'log', '{}', '')"
            ),
            {"id": job.id},
        )
    with pytest.raises(exc.IntegrityError):
        await store.job_update(_ending(job, JobStatus.CANCELLED, now))
    assert await count_rows("callback_outbox") == 0
    assert (await store.job_get(None, job.id)).status is JobStatus.QUEUED


async def test_a_claimed_row_is_leased_to_its_claimer_until_the_lease_runs_out(
    store: SqlStore, create_job: CreateJob
) -> None:
    jobs = [await create_job(callback_url=URL) for _ in range(2)]
    now = jobs[-1].create_time + dt.timedelta(seconds=1)
    for job in jobs:
        assert await store.job_update(_ending(job, JobStatus.CANCELLED, now)) is not None

    first = await _claim(store, now)
    assert sorted(d.job_id for d in first) == sorted(j.id for j in jobs)
    assert await _claim(store, now + dt.timedelta(seconds=LEASE_S - 1)) == []
    later = now + dt.timedelta(seconds=LEASE_S + 1)
    again = await _claim(store, later)  # the first claimer died with them: another takes over
    assert sorted(d.id for d in again) == sorted(d.id for d in first)
    assert {d.lease_token for d in again}.isdisjoint({d.lease_token for d in first})
    # The first claimer's lease is gone: it can no longer record anything.
    stale = CallbackAttemptParams(
        delivery_id=first[0].id, lease_token=first[0].lease_token, now=later, state=CallbackState.DELIVERED
    )
    assert await store.callback_record(stale) is None


async def test_attempts_are_recorded_under_the_lease_and_a_delivered_row_is_done(
    store: SqlStore, create_job: CreateJob
) -> None:
    job = await create_job(callback_url=URL)
    now = job.create_time + dt.timedelta(seconds=1)
    ended = await store.job_update(_ending(job, JobStatus.CANCELLED, now))
    assert ended is not None
    [delivery] = await _claim(store, now)
    retry_at = now + dt.timedelta(seconds=5)
    failed = await store.callback_record(
        CallbackAttemptParams(
            delivery_id=delivery.id,
            lease_token=delivery.lease_token,
            now=now,
            state=CallbackState.DELIVERING,
            http_status=503,
            error="HTTP 503",
            duration_s=0.25,
            next_attempt_time=retry_at,
        )
    )
    assert failed is not None
    assert (failed.job.status, failed.job.callback_state) == (JobStatus.CANCELLED, CallbackState.DELIVERING)
    assert (failed.job.callback_attempts, failed.job.callback_error) == (1, "HTTP 503")
    assert failed.job.last_sequence == ended.job.last_sequence + 1
    assert failed.job.version == ended.job.version + 1
    [event] = failed.events
    assert (event.sequence, event.kind, event.actor) == (
        failed.job.last_sequence,
        EventKind.CALLBACK_ATTEMPT,
        "system",
    )
    assert event.data["webhook_id"] == delivery.id
    assert (event.data["attempt"], event.data["http_status"], event.data["state"]) == (1, 503, "DELIVERING")
    assert await store.job_get(None, job.id) == failed.job

    assert await _claim(store, retry_at - dt.timedelta(microseconds=1)) == []  # not due yet
    [retry] = await _claim(store, retry_at)
    assert (retry.id, retry.attempts, retry.body) == (delivery.id, 1, delivery.body)
    done = await store.callback_record(
        CallbackAttemptParams(
            delivery_id=retry.id,
            lease_token=retry.lease_token,
            now=retry_at,
            state=CallbackState.DELIVERED,
            http_status=204,
        )
    )
    assert done is not None
    assert (done.job.callback_state, done.job.callback_attempts, done.job.callback_error) == (
        CallbackState.DELIVERED,
        2,
        "",
    )
    # Acknowledged: never claimed again, whatever time it is, and its lease cannot record twice.
    assert await _claim(store, retry_at + dt.timedelta(days=30)) == []
    twice = CallbackAttemptParams(
        delivery_id=retry.id, lease_token=retry.lease_token, now=retry_at, state=CallbackState.FAILED
    )
    assert await store.callback_record(twice) is None


async def test_concurrent_claims_never_hand_one_row_to_two_claimers(
    store: SqlStore, open_stores: Callable[..., SqlStore], create_job: CreateJob
) -> None:
    jobs = [await create_job(callback_url=URL) for _ in range(40)]
    now = jobs[-1].create_time + dt.timedelta(seconds=1)
    for job in jobs:
        assert await store.job_update(_ending(job, JobStatus.CANCELLED, now)) is not None
    claimers = [open_stores(), open_stores(), open_stores()]

    async def drain(claimer: SqlStore) -> list[str]:
        got: list[str] = []
        while batch := await _claim(claimer, now, limit=3):
            got += [d.id for d in batch]
        return got

    results = await asyncio.gather(*(drain(c) for c in claimers))
    everything = [i for r in results for i in r]
    assert len(everything) == len(set(everything)) == 40, [len(r) for r in results]
