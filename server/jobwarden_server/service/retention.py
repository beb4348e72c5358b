"""The retention loop: deletes finished jobs whose retention (per status and job type, from the config)
has passed since they ended, with their events, assets and callback outbox rows.

It works like the reaper: one replica at a time (store.singleton), a pass every `interval_s`. Each
batch of at most `batch` jobs is one short write, and the loop yields between batches, so the
client and worker writes queued meanwhile go in between: a backlog of a million expired jobs slows
nothing down, it only takes a while to clear.
"""

from __future__ import annotations

import asyncio
import logging
import time

from jobwarden_server import store
from jobwarden_server.domain.retention import Retention
from jobwarden_server.service import loops
from jobwarden_server.service.writer import Clock

logger = logging.getLogger(__name__)

SINGLETON = "retention"
PASS_S = 20.0
"""A pass ends after this long even with jobs left; the next one starts at once."""


class RetentionLoop:
    """Applies a Retention policy to every owner's finished jobs."""

    def __init__(self, db: store.Store, policy: Retention, clock: Clock) -> None:
        self._store = db
        self._policy = policy
        self._clock = clock
        self._unfinished = False

    @property
    def enabled(self) -> bool:
        """Whether the policy ever deletes anything (else the loop need not run)."""
        return self._policy.enabled

    async def run(self, stop: asyncio.Event) -> None:
        """A pass every interval until `stop` is set. A failing pass (database down) is logged and
        tried again at the next interval."""

        async def sweep_again() -> bool:
            # A backlog (the pass stopped with jobs left): go on at once, under a fresh hold of the lock.
            return bool(await self.sweep_if_mine()) and self._unfinished

        await loops.every(self._policy.interval_s, stop, "retention", sweep_again)

    async def sweep_if_mine(self) -> int:
        """A pass, unless another replica is making one right now (then 0)."""
        async with self._store.singleton(SINGLETON) as mine:
            return await self.sweep() if mine else 0

    async def sweep(self) -> int:
        """Delete the jobs due at this moment, batch by batch, for at most PASS_S; how many were
        deleted (`_unfinished` says whether the time ran out first). Safe to run concurrently with
        another sweep: each job is deleted once, and neither waits for the rows the other holds."""
        deleted = 0
        self._unfinished = False
        give_up = time.monotonic() + PASS_S
        for rule in self._policy.rules(self._clock()):
            while True:
                count = await self._store.job_delete_expired(rule, self._policy.batch)
                deleted += count
                if count < self._policy.batch:
                    break
                if time.monotonic() >= give_up:
                    # Bounded passes: the lock's holder stays well within PostgreSQL's idle limit
                    # for it (its connection idles while the batches run on others).
                    self._unfinished = True
                    break
                await asyncio.sleep(0)  # let the writes that queued meanwhile go first
            if self._unfinished:
                break
        if deleted:
            logger.info("retention: deleted %d finished jobs", deleted)
        return deleted
