"""The store's change feed on PostgreSQL: what each write announces, and the listener's reconnection.

Two stores on one database stand for two replicas: writes go through one, the feed runs on the other.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
from support import pg, waiting

from jobwarden_server.domain.records import EventKind
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store import (
    JobChanges,
    JobClaimParams,
    JobCreateParams,
    JobUpdateParams,
    NewEvent,
    SqlStore,
    migrate,
    open_store,
)
from jobwarden_server.store import _pg_notify as pg_notify

pytestmark = pytest.mark.postgres

NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


class Recorder:
    """A ChangeSink that remembers every wake-up, in the order they came."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.resyncs = 0

    def job_changed(self, job_id: str, sequence: int) -> None:
        self.calls.append(("changed", job_id, sequence))

    def work_available(self) -> None:
        self.calls.append(("work",))

    def resync(self) -> None:
        self.resyncs += 1


def _job(status: JobStatus = JobStatus.QUEUED) -> JobCreateParams:
    return JobCreateParams(
        id=f"job-{secrets.token_hex(4)}",
        owner="alice",
        job_type="render",
        lifecycle="standard",
        status=status,
        parameters={},
        priority=0,
        labels={},
        max_attempts=3,
        run_after=None,
        deadline=None,
        callback_url="",
        request_id="",
        request_fingerprint="",
        now=NOW,
        actor="client:alice",
    )


@pytest.fixture
async def writer(database: str) -> AsyncIterator[SqlStore]:
    """The store the writes go through (replica B)."""
    await migrate(database)
    store = open_store(database)
    yield store
    await store.close()


@pytest.fixture
async def feed(database: str, writer: SqlStore) -> AsyncIterator[tuple[Recorder, pg_notify.PgChangeFeed]]:
    """A feed listening through another store (replica A), connected before the test starts."""
    store = open_store(database, pool_size=1)
    recorder = Recorder()
    running = store.change_feed(recorder)
    assert isinstance(running, pg_notify.PgChangeFeed)
    stop = asyncio.Event()
    task = asyncio.create_task(running.run(stop))
    await waiting.until(lambda: recorder.resyncs == 1)
    yield recorder, running
    stop.set()
    await asyncio.wait_for(task, 10)
    await store.close()


async def test_each_write_announces_its_jobs_newest_sequence_and_new_work(
    writer: SqlStore, feed: tuple[Recorder, pg_notify.PgChangeFeed]
) -> None:
    recorder, _ = feed
    queued = (await writer.job_create(_job())).change.job
    held = (await writer.job_create(_job(JobStatus.CREATED))).change.job
    (claimed,) = await writer.job_claim(
        JobClaimParams(
            owner="alice",
            worker_id="w",
            job_types=frozenset({"render"}),
            limit=5,
            lease_duration_s=30,
            now=NOW,
        )
    )
    two_events = [NewEvent(kind=EventKind.LOG, actor="w", data={"message": m}) for m in ("a", "b")]
    await writer.job_update(
        JobUpdateParams(job_id=queued.id, owner="alice", now=NOW, changes=JobChanges(), events=two_events)
    )
    heartbeat = JobUpdateParams(
        job_id=queued.id, owner="alice", now=NOW, changes=JobChanges(lease_expire_time=NOW), events=()
    )
    await writer.job_update(heartbeat)  # no events, no new work: nothing to announce
    requeue = NewEvent(kind=EventKind.TRANSITION, actor="system", data={"from": "RUNNING", "to": "QUEUED"})
    await writer.job_update(
        JobUpdateParams(
            job_id=queued.id,
            owner=None,
            now=NOW,
            changes=JobChanges(status=JobStatus.QUEUED, clear_lease=True),
            events=[requeue],
        )
    )
    expected = [
        ("changed", queued.id, 1),
        ("work",),
        ("changed", held.id, 1),
        ("changed", claimed.job.id, 2),
        ("changed", queued.id, 4),  # two events in one write: only the newest sequence
        ("changed", queued.id, 5),
        ("work",),
    ]
    await waiting.until(lambda: len(recorder.calls) >= len(expected))
    assert claimed.job.id == queued.id
    assert recorder.calls == expected


async def test_a_write_that_rolls_back_announces_nothing(
    writer: SqlStore, feed: tuple[Recorder, pg_notify.PgChangeFeed]
) -> None:
    recorder, _ = feed
    first = _job()
    await writer.job_create(first)
    with pytest.raises(sa.exc.IntegrityError):
        await writer.job_create(first)  # the same id again: the transaction rolls back
    marker = (await writer.job_create(_job())).change.job
    # Notifications arrive in commit order, so once the marker's is here, any from the failed write
    # would be too.
    await waiting.until(lambda: ("changed", marker.id, 1) in recorder.calls)
    assert recorder.calls.count(("changed", first.id, 1)) == 1


async def test_the_feed_reconnects_after_its_connection_is_killed_and_resyncs_everyone(
    writer: SqlStore, database: str, feed: tuple[Recorder, pg_notify.PgChangeFeed]
) -> None:
    recorder, running = feed
    assert await pg.terminate_backends(database, pg_notify.LISTENER_NAME) == 1
    await waiting.until(lambda: recorder.resyncs == 2)
    assert running.connections == 2
    job = (await writer.job_create(_job())).change.job
    await waiting.until(lambda: ("changed", job.id, 1) in recorder.calls)
