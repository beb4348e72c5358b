"""LiveFeed: every change to an owner's jobs, as the jobs' new rows, for the dashboard's live list.

One pump per server process, whatever the number of browsers: it takes the ids of the jobs changed
(the bus's tap: this replica's commits, and other replicas' wake-ups), reads those jobs in one query,
and hands each follower the ones of its owner. Changes that arrive while a read is in flight gather
into the next read, so a burst of a thousand progress reports costs a few reads, not a thousand, and
no browser ever makes the server query the database on its own behalf. The pump runs only while
someone follows.

A follower that falls `queue_size` jobs behind, or a tap that overflowed, gets RESYNC instead of the
jobs it missed: it reloads what it shows (one page) and follows on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence

from jobwarden_server import store
from jobwarden_server.domain.auth import Principal
from jobwarden_server.domain.errors import ShuttingDown
from jobwarden_server.domain.records import Job
from jobwarden_server.events.bus import EventBus, Tap
from jobwarden_server.service.streams import StreamSlots

logger = logging.getLogger(__name__)

RESYNC: tuple[Job, ...] = ()
"""Yielded instead of jobs when some were missed: reload."""

READ_CHUNK = 500
RETRY_S = 1.0
"""After a failed read, the pause before the next (the store is likely down)."""


class _Follower:
    def __init__(self, owner: str, queue_size: int) -> None:
        self.owner = owner
        self.queue_size = queue_size
        self.pending: list[Job] = []
        self.resync = False
        self.ready = asyncio.Event()
        self.closed = False

    def offer(self, jobs: Sequence[Job]) -> None:
        if self.resync:
            return
        if len(self.pending) + len(jobs) > self.queue_size:
            self.pending.clear()
            self.resync = True
        else:
            self.pending.extend(jobs)
        self.ready.set()

    def force_resync(self) -> None:
        self.pending.clear()
        self.resync = True
        self.ready.set()


class LiveFeed:
    """Fans changed jobs out to their owners' followers (see the module docstring)."""

    def __init__(self, db: store.Store, bus: EventBus, slots: StreamSlots, *, queue_size: int = 2000) -> None:
        self._store = db
        self._bus = bus
        self._slots = slots
        self._queue_size = queue_size
        self._followers: set[_Follower] = set()
        self._pump: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def follow(self, who: Principal) -> Iterator[AsyncIterator[Sequence[Job]]]:
        """For the block: batches of the caller's jobs as they change (each job's latest row), or
        RESYNC; ending with ShuttingDown when the server stops. Every change committed after the block
        begins is delivered (the tap is open before this returns). Holds one of the owner's stream slots."""
        with self._slots.hold(who.owner):
            follower = _Follower(who.owner, self._queue_size)
            self._followers.add(follower)
            self._ensure_pump()
            try:
                yield self._batches(follower)
            finally:
                self._followers.discard(follower)
                if not self._followers and self._pump is not None:
                    self._pump.cancel()
                    self._pump = None

    async def _batches(self, follower: _Follower) -> AsyncIterator[Sequence[Job]]:
        while True:
            while not follower.pending and not follower.resync:
                if follower.closed or self._bus.closed:
                    raise ShuttingDown("server is shutting down")
                follower.ready.clear()
                await follower.ready.wait()
            if follower.resync:
                follower.resync = False
                yield RESYNC
                continue
            latest = {job.id: job for job in follower.pending}
            follower.pending.clear()
            yield list(latest.values())

    def _ensure_pump(self) -> None:
        if self._pump is not None and not self._pump.done():
            return
        # The tap opens now, not when the task first runs: nothing committed after `follow` returned
        # can be missed. It closes when the task ends, even a task cancelled before it ran.
        taps = contextlib.ExitStack()
        tap = taps.enter_context(self._bus.tap())
        self._pump = asyncio.get_running_loop().create_task(self._run(tap), name="jobwarden-live-feed")
        self._pump.add_done_callback(lambda _: taps.close())

    async def _run(self, tap: Tap) -> None:
        try:
            while True:
                ids = await tap.take()
                if ids is None:
                    self._resync_all()
                    continue
                try:
                    await self._deliver(sorted(ids))
                except Exception:
                    # Those changes are lost to the followers: they reload once reads work again.
                    logger.exception("live feed: reading %d changed jobs failed", len(ids))
                    self._resync_all()
                    await asyncio.sleep(RETRY_S)
        except ShuttingDown:
            pass
        finally:
            for follower in self._followers:
                follower.closed = self._bus.closed
                follower.ready.set()

    def _resync_all(self) -> None:
        for follower in self._followers:
            follower.force_resync()

    async def _deliver(self, ids: Sequence[str]) -> None:
        owners = {f.owner for f in self._followers}
        for start in range(0, len(ids), READ_CHUNK):
            jobs = [
                j
                for j in await self._store.job_get_many(ids[start : start + READ_CHUNK])
                if j.owner in owners
            ]
            if not jobs:
                continue
            by_owner: dict[str, list[Job]] = {}
            for job in jobs:
                by_owner.setdefault(job.owner, []).append(job)
            for follower in self._followers:
                mine = by_owner.get(follower.owner)
                if mine:
                    follower.offer(mine)
