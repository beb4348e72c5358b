"""Two replicas' retention loops on one PostgreSQL database: each expired job is deleted once, by one
of them, and neither fails, whether they take turns (the singleton) or race batch against batch."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest
from support import pg
from support.clock import MovedClock

from jobwarden_server import store
from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.domain.lifecycle import Lifecycles
from jobwarden_server.domain.retention import Retention
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.events.bus import EventBus
from jobwarden_server.service import wiring
from jobwarden_server.service.jobs import JobSpec
from jobwarden_server.service.retention import RetentionLoop

pytestmark = pytest.mark.postgres

ACME = Principal(owner="acme", roles=frozenset({Role.CLIENT}))
POLICY = Retention(by_status={JobStatus.CANCELLED: 86400.0}, batch=40)
JOBS = 300


@pytest.fixture
async def two(database: str) -> AsyncIterator[tuple[wiring.Services, wiring.Services, MovedClock]]:
    await store.migrate(database)
    clock = MovedClock()
    a, b = store.open_store(database), store.open_store(database)
    try:
        yield (
            wiring.build(a, EventBus(), Lifecycles.build(), RetryPolicy(), clock=clock, retention=POLICY),
            wiring.build(b, EventBus(), Lifecycles.build(), RetryPolicy(), clock=clock, retention=POLICY),
            clock,
        )
    finally:
        await a.close()
        await b.close()


async def _expired(services: wiring.Services, clock: MovedClock) -> set[str]:
    """JOBS jobs cancelled now, then two days pass (a day's retention)."""
    jobs = await services.jobs.create_many(ACME, [JobSpec(job_type="t", hold=True) for _ in range(JOBS)])
    ids = {job.id for job in jobs if not isinstance(job, Exception)}
    assert len(ids) == JOBS
    for chunk in range(0, JOBS, 50):
        batch = sorted(ids)[chunk : chunk + 50]
        await asyncio.gather(*(services.jobs.cancel(ACME, job_id, "", "") for job_id in batch))
    clock.now += dt.timedelta(days=2)
    return ids


async def _left(database: str) -> int:
    [[(count,)]] = await pg.run(database, "SELECT count(*) FROM jobs")
    return int(count)


async def test_taking_turns_each_job_is_deleted_once(
    two: tuple[wiring.Services, wiring.Services, MovedClock], database: str
) -> None:
    a, b, clock = two
    await _expired(a, clock)
    kept = await a.jobs.create(ACME, JobSpec(job_type="t"))  # unfinished: never deleted

    deleted = await asyncio.gather(a.retention.sweep_if_mine(), b.retention.sweep_if_mine())
    deleted += await asyncio.gather(a.retention.sweep_if_mine(), b.retention.sweep_if_mine())

    assert sum(deleted) == JOBS
    assert await _left(database) == 1
    assert (await a.jobs.get(ACME, kept.id)).status is JobStatus.QUEUED


async def test_racing_without_the_lock_each_job_is_deleted_once_and_neither_fails(
    two: tuple[wiring.Services, wiring.Services, MovedClock], database: str
) -> None:
    """Sweeps raced batch against batch (as two replicas would if the lock were lost mid-pass): rows
    one of them holds are skipped by the other, so there is no waiting, no deadlock, no error."""
    a, b, clock = two
    await _expired(a, clock)
    loops: list[RetentionLoop] = [a.retention, b.retention, a.retention, b.retention]

    deleted = await asyncio.gather(*(loop.sweep() for loop in loops))

    assert sum(deleted) == JOBS
    assert sum(1 for n in deleted if n) >= 1
    assert await _left(database) == 0
    [[(events,)]] = await pg.run(database, "SELECT count(*) FROM job_events")
    assert events == 0
