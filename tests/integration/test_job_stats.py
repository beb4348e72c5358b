"""GetJobStats through the SDK's Client.stats, on SQLite and PostgreSQL: counts per status of the jobs
created in the window, success rate, completion and run time percentiles, the queue now; owners see
only their own jobs unless an admin-global token asks for all; a malformed window is refused alike."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import flows, pg, rpc
from support.clock import MovedClock

from jobwarden import errors
from jobwarden.client import Client, DurationStats, JobStatus
from jobwarden_server import app
from jobwarden_server.domain.auth import Role
from jobwarden_server.settings import Settings

TOKENS = {
    "alice": ("alice", frozenset({Role.CLIENT, Role.WORKER})),
    "bob": ("bob", frozenset({Role.CLIENT, Role.ADMIN})),
    "root": ("ops", frozenset({Role.GLOBAL_ADMIN})),
}
S = dt.timedelta(seconds=1)


@pytest.fixture
async def served(tmp_path: Path, backend: str) -> AsyncIterator[tuple[str, MovedClock]]:
    clock = MovedClock(dt.datetime.now(dt.UTC).replace(microsecond=0))
    async with contextlib.AsyncExitStack() as stack:
        if backend == "postgres":
            database = await stack.enter_async_context(pg.throwaway_database())
        else:
            database = rpc.database_url(tmp_path)
        settings = Settings(
            listen="127.0.0.1:0", database=database, principals_by_hash=rpc.principals(TOKENS)
        )
        srv = await stack.enter_async_context(app.running(settings, clock=clock))
        yield srv.address, clock


async def test_stats_count_measure_and_stay_within_the_owner(served: tuple[str, MovedClock]) -> None:
    address, clock = served
    t0 = clock.now
    async with rpc.stubs(address, "alice") as alice, rpc.stubs(address, "bob") as bob:
        clock.now = t0 - dt.timedelta(hours=2)
        await flows.create(alice, "mail")  # waits, created before the window
        clock.now = t0
        for _ in range(4):
            await flows.create(alice, "render")
        await flows.create(bob, "render")
        clock.now = t0 + S
        first, second, third = await flows.claim(alice, ("render",), max_jobs=3)
        clock.now = t0 + 2 * S
        await flows.fail(alice, third)
        clock.now = t0 + 3 * S
        await flows.complete(alice, first)
        clock.now = t0 + 5 * S
        await flows.complete(alice, second)

    async with Client(address, token="alice") as client:
        stats = await client.stats()
        assert (stats.start_time, stats.end_time) == (clock.now - dt.timedelta(hours=1), clock.now)
        mail, render = stats.job_types
        assert render.job_type == "render" and render.total == 4
        assert {s: n for s, n in render.counts.items() if n} == {
            JobStatus.COMPLETED: 2,
            JobStatus.FAILED: 1,
            JobStatus.QUEUED: 1,
        }
        assert render.success_rate == 2 / 3
        assert render.completion_time == DurationStats(count=2, p50=3.0, p95=5.0, p99=5.0)
        assert render.run_time == DurationStats(count=2, p50=2.0, p95=4.0, p99=4.0)
        assert (render.queue_depth, render.oldest_queued_age, render.running) == (1, 5.0, 0)
        # Created before the window: not counted in it, but waiting now all the same.
        assert mail.job_type == "mail" and mail.total == 0 and mail.completion_time.count == 0
        assert (mail.queue_depth, mail.oldest_queued_age) == (1, 2 * 3600.0 + 5)

        # A shorter window holds none of them; the queue is the queue whatever the window.
        [recent] = (await client.stats(job_types=["render"], since=1.0)).job_types
        assert (recent.total, recent.queue_depth, recent.completion_time.count) == (0, 1, 0)
        # A type asked for by name is answered even with nothing to count.
        [none] = (await client.stats(job_types=["nothing"])).job_types
        assert (none.job_type, none.total, none.queue_depth, none.oldest_queued_age) == (
            "nothing",
            0,
            0,
            None,
        )

    async with Client(address, token="root") as root:
        [everyone] = (await root.stats(job_types=["render"], all_owners=True)).job_types
        assert (everyone.total, everyone.queue_depth) == (5, 2)
        assert (await root.stats(job_types=["render"])).job_types[0].total == 0  # its own owner's: none


async def test_a_malformed_request_is_refused_alike_on_every_store(served: tuple[str, MovedClock]) -> None:
    address, clock = served
    async with Client(address, token="alice") as client:
        for call, field in (
            (client.stats(since=60.0, start_time=clock.now - S), "window"),
            (client.stats(since=0.0), "window"),
            (client.stats(start_time=clock.now, end_time=clock.now - S), "end_time"),
            (client.stats(start_time=clock.now - dt.timedelta(days=400)), "start_time"),
            (client.stats(job_types=["no spaces"]), "job_types"),
        ):
            with pytest.raises(errors.InvalidArgument) as refused:
                await call
            assert refused.value.reason == "INVALID_ARGUMENT"
            assert [v.field for v in refused.value.field_violations] == [field]
        with pytest.raises(errors.PermissionDenied):
            await client.stats(all_owners=True)
    async with Client(address, token="bob") as admin:  # an admin of its own owner only
        with pytest.raises(errors.PermissionDenied):
            await admin.stats(all_owners=True)
