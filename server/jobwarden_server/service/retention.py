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

from jobwarden_server import store
from jobwarden_server.domain import errors
from jobwarden_server.domain.retention import Retention
from jobwarden_server.service.writer import Clock

logger = logging.getLogger(__name__)

SINGLETON = "retention"


class RetentionLoop:
    """Applies a Retention policy to every owner's finished jobs."""

    def __init__(self, db: store.Store, policy: Retention, clock: Clock) -> None:
        self._store = db
        self._policy = policy
        self._clock = clock

    @property
    def enabled(self) -> bool:
        """Whether the policy ever deletes anything (else the loop need not run)."""
        return self._policy.enabled

    async def run(self, stop: asyncio.Event) -> None:
        """A pass every interval until `stop` is set. A failing pass (database down) is logged and
        tried again at the next interval."""
        while not stop.is_set():
            try:
                await self.sweep_if_mine()
            except errors.StoreUnavailable as err:
                logger.warning("retention: store unavailable (%s); retrying", err)
            except Exception:
                logger.exception("retention: unexpected failure; retrying")
            try:
                await asyncio.wait_for(stop.wait(), self._policy.interval_s)
            except TimeoutError:
                pass

    async def sweep_if_mine(self) -> int:
        """A pass, unless another replica is making one right now (then 0)."""
        async with self._store.singleton(SINGLETON) as mine:
            return await self.sweep() if mine else 0

    async def sweep(self) -> int:
        """Delete every job due at this moment, batch by batch; how many were deleted. Safe to run
        concurrently with another sweep (each job is deleted once; the other skips it)."""
        deleted = 0
        for rule in self._policy.rules(self._clock()):
            while True:
                count = await self._store.job_delete_expired(rule, self._policy.batch)
                deleted += count
                if count < self._policy.batch:
                    break
                await asyncio.sleep(0)  # let the writes that queued meanwhile go first
        if deleted:
            logger.info("retention: deleted %d finished jobs", deleted)
        return deleted
