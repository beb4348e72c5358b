"""LiveFeed (service/live.py) over a real store: one shared reader hands each follower its owner's
changed jobs, a follower that falls behind is told to reload, and the reader stops with the last one."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import pg, rpc, waiting

from jobwarden_server import store
from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.events.bus import EventBus
from jobwarden_server.service import live, wiring
from jobwarden_server.service.jobs import JobSpec
from jobwarden_server.service.streams import StreamSlots
from jobwarden_server.settings import Settings

ALICE = Principal(owner="alice", roles=frozenset({Role.CLIENT}))
BOB = Principal(owner="bob", roles=frozenset({Role.CLIENT}))


@pytest.fixture
async def opened(
    tmp_path: Path, backend: str
) -> AsyncIterator[tuple[wiring.Services, store.Store, EventBus]]:
    async with contextlib.AsyncExitStack() as stack:
        if backend == "postgres":
            url = await stack.enter_async_context(pg.throwaway_database())
        else:
            url = rpc.database_url(tmp_path)
        await store.migrate(url)
        db = store.open_store(url)
        stack.push_async_callback(db.close)
        bus = EventBus()
        defaults = Settings()
        yield wiring.build(db, bus, defaults.lifecycles, defaults.retry), db, bus


async def test_each_follower_gets_only_its_owners_changed_jobs(
    opened: tuple[wiring.Services, store.Store, EventBus],
) -> None:
    services, _, bus = opened
    async with asyncio.timeout(10):
        with services.live.follow(ALICE) as alice, services.live.follow(BOB) as bob:
            await services.jobs.create(BOB, JobSpec(job_type="demo"))
            mine = await services.jobs.create(ALICE, JobSpec(job_type="demo"))
            assert [j.id for j in await anext(alice)] == [mine.id]
            assert [j.owner for j in await anext(bob)] == ["bob"]
            await services.jobs.cancel(ALICE, mine.id, "done", "")
            [latest] = await anext(alice)
            assert (latest.id, latest.status.value) == (mine.id, "CANCELLED")
        # The last follower left: the shared reader stops and closes its tap on the bus.
        await waiting.until(lambda: bus.tap_count() == 0)


async def test_a_follower_that_falls_behind_is_told_to_reload_and_follows_on(
    opened: tuple[wiring.Services, store.Store, EventBus],
) -> None:
    services, db, bus = opened
    feed = live.LiveFeed(db, bus, StreamSlots(4), queue_size=2)
    async with asyncio.timeout(10):
        with feed.follow(ALICE) as alice:
            await services.jobs.create_many(ALICE, [JobSpec(job_type="demo") for _ in range(3)])
            assert await anext(alice) is live.RESYNC  # three changed jobs, room for two
            after = await services.jobs.create(ALICE, JobSpec(job_type="demo"))
            assert [j.id for j in await anext(alice)] == [after.id]
