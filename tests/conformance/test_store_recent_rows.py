"""A worker's change right after its claim is decided on the job as the claim committed it (no read),
and only while that is still the job's row: a write from anywhere else since, a retried request, or
another owner's call is answered from a fresh read, exactly as without it (store/_recent.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from support import store_params

from jobwarden_server.domain import errors
from jobwarden_server.domain.records import EventKind, Job, Progress
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store import (
    JobChanges,
    JobUpdateParams,
    LeaseRenewParams,
    NewEvent,
    PageParams,
    Replayed,
    SqlStore,
)

CreateJob = Callable[..., Awaitable[Job]]


def _progress(seen: list[Job], clock: Any, percent: float) -> Callable[[Job], JobUpdateParams]:
    """A decision that records the job it was taken on and sets the progress under the job's lease."""

    def decide(current: Job) -> JobUpdateParams:
        seen.append(current)
        return JobUpdateParams(
            job_id=current.id,
            owner=current.owner,
            now=clock.tick(),
            changes=JobChanges(progress=Progress(percent=percent)),
            events=[NewEvent(kind=EventKind.PROGRESS, actor="w", data={"percent": percent})],
            expect_statuses=frozenset({JobStatus.RUNNING}),
            expect_lease_token=current.lease_token,
            expect_version=current.version,
        )

    return decide


async def _sequences(store: SqlStore, job: Job) -> list[int]:
    page = await store.event_list(PageParams(owner=job.owner, job_id=job.id, after=0, limit=100))
    return [e.sequence for e in page]


async def test_changes_after_a_claim_are_decided_on_the_job_each_write_committed(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    await create_job()
    [claim] = await store.job_claim(store_params.claim(clock.tick(), limit=1))
    seen: list[Job] = []

    first = await store.job_modify("alice", claim.job.id, _progress(seen, clock, 10))
    second = await store.job_modify("alice", claim.job.id, _progress(seen, clock, 20))

    assert first is not None and second is not None
    # Not a job read again, equal to it: the very Jobs the claim and the first change answered with.
    assert seen[0] is claim.job and seen[1] is first.job
    assert await store.job_get("alice", claim.job.id) == second.job
    assert (second.job.progress.percent, second.job.version) == (20, claim.job.version + 2)
    assert await _sequences(store, second.job) == [1, 2, 3, 4]


async def test_a_job_written_elsewhere_since_the_claim_is_decided_again_on_a_fresh_read(
    store: SqlStore, open_stores: Callable[..., SqlStore], create_job: CreateJob, clock: Any
) -> None:
    await create_job()
    [claim] = await store.job_claim(store_params.claim(clock.tick(), limit=1))
    other = open_stores()  # another server on the same database
    renewed_at = clock.tick()
    [renewed] = await other.job_renew_leases(
        LeaseRenewParams(owner="alice", leases={claim.job.id: claim.job.lease_token}, now=renewed_at)
    )
    seen: list[Job] = []

    change = await store.job_modify("alice", claim.job.id, _progress(seen, clock, 50))

    assert change is not None
    assert seen[0] is claim.job  # first taken on the row as claimed: its guard failed ...
    fresh = seen[-1]  # ... so it was decided again on the row the renewal left
    assert fresh.version == claim.job.version + 1 and fresh.lease_expire_time == renewed.lease_expire_time
    assert change.job.lease_expire_time == renewed.lease_expire_time  # the renewal is not undone
    assert (change.job.progress.percent, change.job.version) == (50, claim.job.version + 2)
    assert await store.job_get("alice", claim.job.id) == change.job
    assert await _sequences(store, change.job) == [1, 2, 3]


async def test_a_request_id_the_job_already_recorded_is_a_replay_right_after_the_claim(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    await create_job()
    [claim] = await store.job_claim(
        store_params.claim(clock.tick(), limit=1, request_id="claim-1", request_fingerprint="f")
    )
    seen: list[Job] = []

    with pytest.raises(Replayed) as replay:
        await store.job_modify("alice", claim.job.id, _progress(seen, clock, 10), request_id="claim-1")

    assert seen == []  # never decided: the claim's own event answers
    assert replay.value.event == claim.events[0] and replay.value.job == claim.job
    assert await store.job_get("alice", claim.job.id) == claim.job


async def test_another_owner_is_not_answered_from_the_claimed_row(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    await create_job()
    [claim] = await store.job_claim(store_params.claim(clock.tick(), limit=1))
    seen: list[Job] = []

    with pytest.raises(errors.NotFound):
        await store.job_modify("bob", claim.job.id, _progress(seen, clock, 10))

    assert seen == []
    assert await store.job_get("alice", claim.job.id) == claim.job


async def test_a_refusal_is_decided_on_a_fresh_read(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    await create_job()
    [claim] = await store.job_claim(store_params.claim(clock.tick(), limit=1))
    seen: list[Job] = []

    def refuse(current: Job) -> JobUpdateParams:
        seen.append(current)
        raise errors.LeaseLost(current.id)

    with pytest.raises(errors.LeaseLost):
        await store.job_modify("alice", claim.job.id, refuse)

    assert len(seen) == 2 and seen[0] is claim.job and seen[1] is not claim.job
    assert seen[1] == claim.job and await store.job_get("alice", claim.job.id) == claim.job
