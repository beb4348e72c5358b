"""A claim whose caller is gone before the reply goes back to the queue at once, on every database.

A ClaimJobs call (a long poll most of all) can end while its claim is being written: the client stopped
waiting, or its deadline passed. The write commits all the same; without its reply nobody holds those
jobs, so they go straight back to the queue, their attempt counts as before, instead of waiting out a
lease nobody renews. The test holds the claim's write open after its commit, ends the call there,
then lets the write finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support import rpc

from jobwarden_server import store
from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.domain.lifecycle import Lifecycles
from jobwarden_server.domain.records import EventKind, Job
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.events.bus import EventBus
from jobwarden_server.service import wiring
from jobwarden_server.service.jobs import JobSpec
from jobwarden_server.service.work import ClaimRequest

WORKER = Principal(owner="acme", roles=frozenset({Role.CLIENT, Role.WORKER}))
CLAIM = ClaimRequest(
    worker_id="w1", job_types=frozenset({"demo"}), max_jobs=2, lease_duration_s=300, wait_s=30
)


class HeldClaims:
    """The real store, except that a claim, once committed, waits for `release` before it returns."""

    def __init__(self, inner: store.Store) -> None:
        self._inner = inner
        self.committed = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def job_claim(self, params: store.JobClaimParams) -> Any:
        claimed = await self._inner.job_claim(params)
        if claimed:
            self.committed.set()
            await self.release.wait()
        return claimed


@pytest.fixture
async def rig(tmp_path: Path, backend: str) -> AsyncIterator[tuple[wiring.Services, HeldClaims]]:
    async with rpc.migrated_store(tmp_path, backend) as db:
        held = HeldClaims(db)
        retry = RetryPolicy(initial_backoff_s=0.0, max_backoff_s=0.0)
        yield wiring.build(held, EventBus(), Lifecycles.build(), retry), held  # type: ignore[arg-type]


async def _history(db: store.Store, job_id: str) -> list[str]:
    page = await db.event_list(store.PageParams(owner=WORKER.owner, job_id=job_id, after=0, limit=100))
    return [
        f"{e.data['from']}->{e.data['to']} by {e.actor}" if e.kind is EventKind.TRANSITION else e.kind.value
        for e in page
    ]


async def test_a_claim_whose_caller_left_is_put_back_and_claimed_again_as_attempt_one(
    rig: tuple[wiring.Services, HeldClaims],
) -> None:
    services, held = rig
    created = [await services.jobs.create(WORKER, JobSpec(job_type="demo", max_attempts=1)) for _ in range(2)]
    waiting = asyncio.create_task(services.work.claim(WORKER, CLAIM))
    async with asyncio.timeout(10):
        await held.committed.wait()
    waiting.cancel()  # the caller is gone: the claim has committed, its reply has not gone out
    held.release.set()
    with pytest.raises(asyncio.CancelledError):
        await waiting

    for job in created:
        now = await held.job_get(WORKER.owner, job.id)
        assert (now.status, now.attempt, now.lease_token) == (JobStatus.QUEUED, 0, "")
        assert await _history(held, job.id) == [
            "created",
            "QUEUED->RUNNING by worker:w1",
            "RUNNING->QUEUED by system",
        ]
    again: list[Job] = list(await services.work.claim(WORKER, CLAIM))
    assert sorted(j.id for j in again) == sorted(j.id for j in created)
    assert {j.attempt for j in again} == {1}  # its one attempt is still there to run


async def test_a_claim_whose_caller_stayed_is_kept(rig: tuple[wiring.Services, HeldClaims]) -> None:
    services, held = rig
    job = await services.jobs.create(WORKER, JobSpec(job_type="demo"))
    held.release.set()
    [claimed] = await services.work.claim(WORKER, CLAIM)
    assert claimed.id == job.id
    now = await held.job_get(WORKER.owner, job.id)
    assert (now.status, now.attempt, now.lease_token) == (JobStatus.RUNNING, 1, claimed.lease_token)
