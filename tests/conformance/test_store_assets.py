"""Assets: added under the lease only, ordered by their event's sequence, deleted with their job."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa

from jobwarden_server.domain import errors
from jobwarden_server.domain.records import EventKind, Job
from jobwarden_server.store import AssetAddParams, JobClaimParams, PageParams, Replayed, SqlStore

CreateJob = Callable[..., Awaitable[Job]]


async def _running(store: SqlStore, create_job: CreateJob, now: dt.datetime, owner: str = "alice") -> Job:
    job = await create_job(owner=owner)
    [change] = await store.job_claim(
        JobClaimParams(
            owner=owner,
            worker_id="w",
            job_types=frozenset({job.job_type}),
            limit=1,
            lease_duration_s=60,
            now=now,
        )
    )
    assert change.job.id == job.id
    return change.job


def _asset(job: Job, n: int, now: dt.datetime, **overrides: Any) -> AssetAddParams:
    values: dict[str, Any] = {
        "id": f"asset-{job.id}-{n}",
        "job_id": job.id,
        "owner": job.owner,
        "lease_token": job.lease_token,
        "asset_type": "image",
        "uri": f"s3://bucket/{n}.png",
        "storage_path": f"bucket/{n}.png",
        "size_bytes": 1000 + n,
        "content_type": "image/png",
        "sha256": "ab" * 32,
        "metadata": {"n": str(n)},
        "now": now,
    }
    values.update(overrides)
    return AssetAddParams(**values)


async def test_add_records_the_asset_and_its_event(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    job = await _running(store, create_job, clock.tick())
    now = clock.tick()
    added = await store.asset_add(_asset(job, 1, now))

    assert added is not None
    asset, change = added
    assert (asset.id, asset.job_id, asset.owner, asset.uri, asset.size_bytes) == (
        f"asset-{job.id}-1",
        job.id,
        "alice",
        "s3://bucket/1.png",
        1001,
    )
    assert (asset.metadata, asset.create_time) == ({"n": "1"}, now)
    assert (change.job.version, change.job.last_sequence) == (job.version + 1, job.last_sequence + 1)
    [event] = change.events
    assert (event.sequence, event.kind, event.actor) == (
        job.last_sequence + 1,
        EventKind.ASSET_ADDED,
        "worker:w",
    )
    assert event.asset == asset
    assert event.data["asset_id"] == asset.id

    assert await store.asset_get("alice", asset.id) == asset
    [stored_event] = await store.event_list(
        PageParams(owner="alice", job_id=job.id, after=job.last_sequence, limit=10)
    )
    assert stored_event == event and stored_event.asset == asset


ASSET_MISSES: dict[str, tuple[dict[str, Any], type[Exception] | None]] = {
    "stale lease": ({"lease_token": "stale"}, None),
    "other owner": ({"owner": "bob"}, errors.NotFound),
    "missing job": ({"job_id": "no-such-job"}, errors.NotFound),
}


@pytest.mark.parametrize(("miss", "refusal"), ASSET_MISSES.values(), ids=ASSET_MISSES.keys())
async def test_add_without_the_lease_changes_nothing(
    store: SqlStore,
    create_job: CreateJob,
    clock: Any,
    count_rows: Callable[[str], Awaitable[int]],
    miss: dict[str, Any],
    refusal: type[Exception] | None,
) -> None:
    """A stale lease is None (LEASE_LOST); a job the caller cannot see is NotFound, like a missing one."""
    job = await _running(store, create_job, clock.tick())
    events_before = await count_rows("job_events")
    if refusal is None:
        assert await store.asset_add(_asset(job, 1, clock.tick(), **miss)) is None
    else:
        with pytest.raises(refusal):
            await store.asset_add(_asset(job, 1, clock.tick(), **miss))
    assert await store.job_get(None, job.id) == job
    assert (await count_rows("assets"), await count_rows("job_events")) == (0, events_before)


async def test_add_with_a_request_id_already_recorded_is_a_replay_and_writes_nothing(
    store: SqlStore, create_job: CreateJob, clock: Any, count_rows: Callable[[str], Awaitable[int]]
) -> None:
    job = await _running(store, create_job, clock.tick())
    keyed = {"request_id": "r1", "request_fingerprint": "f1"}
    added = await store.asset_add(_asset(job, 1, clock.tick(), **keyed))
    assert added is not None
    [event] = added[1].events
    assert event.data["request_fingerprint"] == "f1"
    counts = (await count_rows("assets"), await count_rows("job_events"))
    with pytest.raises(Replayed) as replay:
        await store.asset_add(_asset(job, 2, clock.tick(), **keyed))
    assert replay.value.event == event and replay.value.job.id == job.id
    assert (await count_rows("assets"), await count_rows("job_events")) == counts


async def test_add_to_a_job_that_is_not_running_changes_nothing(
    store: SqlStore, create_job: CreateJob, clock: Any, count_rows: Callable[[str], Awaitable[int]]
) -> None:
    job = await create_job()
    assert await store.asset_add(_asset(job, 1, clock.tick(), lease_token="")) is None
    assert await count_rows("assets") == 0


async def test_assets_list_in_the_order_added_and_page_by_position(
    store: SqlStore, create_job: CreateJob, clock: Any
) -> None:
    job = await _running(store, create_job, clock.tick())
    other = await _running(store, create_job, clock.tick())
    added = []
    for n in range(5):
        result = await store.asset_add(_asset(job, n, clock.tick()))
        assert result is not None
        added.append(result[0])
        assert await store.asset_add(_asset(other, n, clock.tick())) is not None

    listed = await store.asset_list(PageParams(owner="alice", job_id=job.id, after=0, limit=100))
    assert list(listed) == added

    # `after` is a position, which is the sequence of the asset's event: page with those.
    events = await store.event_list(PageParams(owner="alice", job_id=job.id, after=0, limit=100))
    positions = [e.sequence for e in events if e.kind is EventKind.ASSET_ADDED]
    assert [a.sequence for a in added] == positions  # each asset knows its position
    assert [e.asset for e in events if e.kind is EventKind.ASSET_ADDED] == added
    page = await store.asset_list(PageParams(owner="alice", job_id=job.id, after=positions[1], limit=2))
    assert list(page) == added[2:4]
    assert (
        await store.asset_list(PageParams(owner="alice", job_id=job.id, after=positions[-1], limit=2)) == []
    )


async def test_assets_are_scoped_to_the_owner(store: SqlStore, create_job: CreateJob, clock: Any) -> None:
    job = await _running(store, create_job, clock.tick())
    added = await store.asset_add(_asset(job, 1, clock.tick()))
    assert added is not None
    with pytest.raises(errors.NotFound):
        await store.asset_get("bob", added[0].id)
    with pytest.raises(errors.NotFound):
        await store.asset_get("alice", "no-such-asset")
    assert await store.asset_list(PageParams(owner="bob", job_id=job.id, after=0, limit=10)) == []


async def test_deleting_a_job_deletes_its_events_and_assets(
    store: SqlStore, create_job: CreateJob, clock: Any, count_rows: Callable[[str], Awaitable[int]]
) -> None:
    doomed = await _running(store, create_job, clock.tick())
    kept = await _running(store, create_job, clock.tick())
    for job in (doomed, kept):
        for n in range(2):
            assert await store.asset_add(_asset(job, n, clock.tick())) is not None
    assert (await count_rows("assets"), await count_rows("job_events")) == (4, 8)

    # Through the store's own write engine: on SQLite the cascade needs the connection's foreign_keys.
    async with store.write_engine.begin() as conn:
        await conn.execute(sa.text("DELETE FROM jobs WHERE id = :id"), {"id": doomed.id})

    assert (await count_rows("assets"), await count_rows("job_events")) == (2, 4)
    remaining = await store.asset_list(PageParams(owner="alice", job_id=kept.id, after=0, limit=10))
    assert len(remaining) == 2
