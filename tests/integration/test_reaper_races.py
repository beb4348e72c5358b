"""A heartbeat and the reaper racing over one expired lease: whichever commits first wins, the other
changes nothing, and an acknowledged heartbeat is never followed by a rescue of the lease it renewed.

The race is made to happen, not hoped for: the reaper's store pauses between reading the due jobs and
moving them, and the heartbeat (or the completion) runs in that gap. The clock is the service's own,
moved by hand, so "the lease has expired" is a fact rather than a wait.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from support import rpc
from support.clock import MovedClock

from jobwarden_server import store
from jobwarden_server.domain import errors
from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.domain.lifecycle import Lifecycles
from jobwarden_server.domain.records import EventKind, Job, Progress
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.events.bus import EventBus
from jobwarden_server.service import wiring
from jobwarden_server.service.jobs import JobSpec
from jobwarden_server.service.work import ClaimRequest

WORKER = Principal(owner="acme", roles=frozenset({Role.CLIENT, Role.WORKER}))
LEASE_S = 10.0
NO_BACKOFF = RetryPolicy(initial_backoff_s=0.0, max_backoff_s=0.0)


class GapAfterDue:
    """The real store, except that `job_due` runs `gap` after its read and before returning, i.e.
    after the reaper chose its jobs and before it moves them."""

    def __init__(self, inner: store.Store) -> None:
        self._inner = inner
        self.gap: Callable[[], Awaitable[None]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def job_due(self, params: store.JobDueParams) -> Sequence[Job]:
        due = await self._inner.job_due(params)
        if self.gap is not None:
            await self.gap()
        return due


class Rig:
    def __init__(self, db: GapAfterDue, clock: MovedClock) -> None:
        services = wiring.build(db, EventBus(), Lifecycles.build(), NO_BACKOFF, clock=clock)  # type: ignore[arg-type]
        self.db, self.clock = db, clock
        self.jobs, self.work, self.reaper = services.jobs, services.work, services.reaper

    async def running_job(self) -> tuple[Job, str]:
        """A job claimed with a LEASE_S lease that has just expired; and its lease token."""
        await self.jobs.create(WORKER, JobSpec(job_type="demo", max_attempts=3))
        [job] = await self.work.claim(
            WORKER, ClaimRequest(worker_id="w1", job_types=frozenset({"demo"}), lease_duration_s=LEASE_S)
        )
        self.clock.now += dt.timedelta(seconds=LEASE_S + 1)
        return job, job.lease_token

    async def events(self, job_id: str) -> list[str]:
        page = await self.db.event_list(
            store.PageParams(owner=WORKER.owner, job_id=job_id, after=0, limit=100)
        )
        return [
            f"{e.data['from']}->{e.data['to']}" if e.kind is EventKind.TRANSITION else e.kind.value
            for e in page
        ]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    url = rpc.database_url(tmp_path)
    await store.migrate(url)
    db = store.open_store(url)
    try:
        yield Rig(GapAfterDue(db), MovedClock(dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)))
    finally:
        await db.close()


async def test_a_heartbeat_landing_after_the_reaper_chose_the_job_keeps_its_lease(rig: Rig) -> None:
    job, lease = await rig.running_job()
    renewed: list[Job] = []

    async def heartbeat() -> None:
        renewed.append(await rig.work.progress(WORKER, job.id, lease, Progress(percent=10)))

    rig.db.gap = heartbeat
    assert await rig.reaper.tick() == 1  # it looked at the job ...
    rig.db.gap = None

    [beat] = renewed  # ... but the heartbeat, acknowledged in between, won
    assert beat.lease_expire_time is not None and beat.lease_expire_time > rig.clock.now
    now = await rig.db.job_get(WORKER.owner, job.id)
    assert (now.status, now.lease_token, now.attempt) == (JobStatus.RUNNING, lease, 1)
    assert await rig.events(job.id) == ["created", "QUEUED->RUNNING", "progress"]
    assert await rig.reaper.tick() == 0  # the renewed lease is not due
    done = await rig.work.complete(WORKER, job.id, lease, {"ok": True}, None)
    assert done.status is JobStatus.COMPLETED


async def test_a_heartbeat_after_the_rescue_is_refused_and_changes_nothing(rig: Rig) -> None:
    job, lease = await rig.running_job()
    assert await rig.reaper.tick() == 1
    with pytest.raises(errors.LeaseLost):
        await rig.work.progress(WORKER, job.id, lease, Progress(percent=10))
    assert await rig.events(job.id) == ["created", "QUEUED->RUNNING", "RUNNING->QUEUED"]


async def test_a_completion_landing_after_the_reaper_chose_the_job_wins_and_is_not_undone(rig: Rig) -> None:
    job, lease = await rig.running_job()
    completed: list[Job] = []

    async def complete() -> None:
        completed.append(await rig.work.complete(WORKER, job.id, lease, {"ok": True}, None))

    rig.db.gap = complete
    await rig.reaper.tick()
    rig.db.gap = None

    assert [j.status for j in completed] == [JobStatus.COMPLETED]
    assert (await rig.db.job_get(WORKER.owner, job.id)).status is JobStatus.COMPLETED
    assert await rig.events(job.id) == ["created", "QUEUED->RUNNING", "RUNNING->COMPLETED"]
