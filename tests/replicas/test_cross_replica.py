"""Wake-ups cross replicas: watchers and long-polling claimers on one replica see work done on another.

Watchers never re-read the table on their own and claimers are made to re-check only every 30 s
here, so each of these tests fails (by timing out) unless LISTEN/NOTIFY carries the wake-up over.
"""

from __future__ import annotations

import asyncio

import pytest
from support import flows, pg, rpc, waiting

from jobwarden.v1 import job_pb2, job_service_pb2
from jobwarden_server import app
from jobwarden_server.service import work
from jobwarden_server.store import _pg_notify

pytestmark = pytest.mark.postgres

Replicas = tuple[app.RunningServer, app.RunningServer]
TERMINAL = {"JOB_STATUS_COMPLETED", "JOB_STATUS_PARTIAL", "JOB_STATUS_FAILED", "JOB_STATUS_CANCELLED"}


def _is_terminal(event: job_pb2.JobEvent) -> bool:
    return event.HasField("transition") and job_pb2.JobStatus.Name(event.transition.to_status) in TERMINAL


async def _watch_after_snapshot(
    s: rpc.Stubs, job_id: str
) -> tuple[asyncio.Task[list[job_pb2.JobEvent]], job_pb2.Job]:
    """Open a watch and wait for its snapshot, so the server has subscribed before anything else happens."""
    call = s.jobs.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id))
    stream = aiter(call)
    snapshot = (await anext(stream)).job

    async def rest() -> list[job_pb2.JobEvent]:
        return [item.event async for item in stream]

    return asyncio.create_task(rest()), snapshot


async def test_a_watcher_on_a_sees_every_event_of_a_job_worked_through_b_in_order(replicas: Replicas) -> None:
    a, b = replicas
    async with rpc.stubs(a.address) as on_a, rpc.stubs(b.address) as on_b:
        job = await flows.create(on_b, "render")
        watched, snapshot = await _watch_after_snapshot(on_a, job.id)
        assert snapshot.id == job.id
        claim = await flows.claim_one(on_b, "render")
        for percent in (10, 40, 70):
            await flows.progress(on_b, claim, percent, f"{percent}%")
        await flows.add_asset(on_b, claim)
        await flows.complete(on_b, claim, frames=3)
        seen = await asyncio.wait_for(watched, 10)
        recorded = await flows.events(on_b, job.id)

    assert [e.sequence for e in seen] == list(range(1, len(recorded) + 1))
    assert seen == recorded
    assert _is_terminal(seen[-1])


async def test_a_long_poll_on_a_returns_a_job_created_on_b(
    replicas: Replicas, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(work, "RECHECK_S", 30.0)  # only a wake-up can end the wait within the test
    a, b = replicas
    async with rpc.stubs(a.address) as on_a, rpc.stubs(b.address) as on_b:
        polling = asyncio.create_task(flows.claim(on_a, ("poll",), worker_id="long-poller", wait_s=20))
        await waiting.until(lambda: a.bus.claimers_waiting == 1)
        job = await flows.create(on_b, "poll")
        claims = await asyncio.wait_for(polling, 10)
    assert [c.job.id for c in claims] == [job.id]


async def test_watchers_keep_receiving_after_the_listening_connections_are_killed(
    replicas: Replicas, database: str
) -> None:
    a, b = replicas
    async with rpc.stubs(a.address) as on_a, rpc.stubs(b.address) as on_b:
        job = await flows.create(on_b, "render")
        watched, _ = await _watch_after_snapshot(on_a, job.id)
        claim = await flows.claim_one(on_b, "render")
        # Both replicas' listeners go; anything committed before they are back is found by the
        # re-read every watcher does after a reconnection.
        assert await pg.terminate_backends(database, _pg_notify.LISTENER_NAME) == 2
        await flows.progress(on_b, claim, 50)
        await flows.complete(on_b, claim)
        seen = await asyncio.wait_for(watched, 10)
        recorded = await flows.events(on_b, job.id)
    assert seen == recorded
    assert _is_terminal(seen[-1])
