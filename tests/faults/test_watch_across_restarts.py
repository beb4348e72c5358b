"""The SDK's watch_job outlives its server: across a graceful restart (the stream ends SHUTTING_DOWN)
and a kill -9 (the connection drops), it reopens after the last sequence it saw, so the caller gets
one unbroken stream: the snapshot once, then every event once, in order.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import faultproc, flows, waiting

from jobwarden import errors
from jobwarden.client import Client, Job, JobEvent, WatchReconnect

WAIT_S = 30.0


@pytest.mark.timeout(90)
@pytest.mark.parametrize("outage", ["sigterm", "sigkill"])
async def test_sdk_watch_sees_every_event_once_across_a_server_restart(tmp_path: Path, outage: str) -> None:
    server = faultproc.ServerProcess(tmp_path, faultproc.write_config(tmp_path / "server.toml", settings={}))
    with faultproc.cleanup(server):
        await server.start()
        async with faultproc.stubs(server.address) as s, Client(server.address) as client:
            job = await flows.create(s)
            claim = await flows.claim_one(s)
            seen: list[Job | JobEvent] = []

            async def consume() -> None:
                async for item in client.watch_job(job.id):
                    seen.append(item)

            watcher = asyncio.create_task(consume())
            await flows.progress(s, claim, 10)
            await waiting.until(lambda: len(seen) == 4)  # snapshot, created, claimed, progress 10

            if outage == "sigterm":
                assert server.stop() == 0
            else:
                server.kill()
            await server.start()

            await flows.progress(s, claim, 20)
            await flows.add_asset(s, claim)
            await flows.complete(s, claim)
            async with asyncio.timeout(WAIT_S):
                await watcher
            recorded = await flows.events(s, job.id)

    snapshot, events = seen[0], seen[1:]
    assert isinstance(snapshot, Job) and snapshot.id == job.id
    assert all(isinstance(e, JobEvent) for e in events)
    assert [e.sequence for e in events if isinstance(e, JobEvent)] == [e.sequence for e in recorded]
    assert len(recorded) == 6  # created, claimed, progress 10, progress 20, asset, completed
    assert flows.kinds(recorded)[-1] == "RUNNING->COMPLETED"


async def test_a_watch_that_cannot_start_fails_at_once_instead_of_resuming() -> None:
    async with Client(f"127.0.0.1:{faultproc.free_port()}") as client:  # nobody listens there
        async with asyncio.timeout(WAIT_S / 3):
            with pytest.raises(errors.Unavailable):
                await anext(client.watch_job("0" * 32))


@pytest.mark.timeout(90)
async def test_sdk_watch_tells_on_reconnect_and_waits_at_most_max_backoff(tmp_path: Path) -> None:
    server = faultproc.ServerProcess(tmp_path, faultproc.write_config(tmp_path / "server.toml", settings={}))
    max_backoff = 0.5
    with faultproc.cleanup(server):
        await server.start()
        async with (
            faultproc.stubs(server.address) as s,
            Client(server.address, max_reconnect_backoff=max_backoff) as client,
        ):
            job = await flows.create(s)
            claim = await flows.claim_one(s)
            seen: list[Job | JobEvent] = []
            reports: list[WatchReconnect] = []

            async def consume() -> None:
                stream = client.watch_job(job.id, max_backoff=max_backoff, on_reconnect=reports.append)
                async for item in stream:
                    seen.append(item)

            watcher = asyncio.create_task(consume())
            await waiting.until(lambda: len(seen) == 3)  # snapshot, created, claimed
            server.kill()
            # Several reopenings fail while the server is down, each after a short wait.
            await waiting.until(lambda: len(reports) >= 4, within_s=WAIT_S)
            await server.start()
            await waiting.until(lambda: any(r.resumed for r in reports), within_s=WAIT_S)
            await flows.complete(s, claim)
            async with asyncio.timeout(WAIT_S):
                await watcher

    *broken, back = reports
    assert all(r.error is not None and r.error.retryable for r in broken)
    assert [r.attempt for r in broken] == list(range(1, len(broken) + 1))
    assert all(0 < r.delay <= max_backoff for r in broken)
    assert back.resumed and back.error is None and back.attempt == len(broken)
    assert isinstance(seen[0], Job)
    assert [e.sequence for e in seen[1:] if isinstance(e, JobEvent)] == [1, 2, 3]
