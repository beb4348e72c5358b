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
from jobwarden.client import Client, Job, JobEvent

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
