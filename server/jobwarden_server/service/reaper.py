"""The reaper: the server loop that makes sure every accepted job reaches a terminal state.

Each tick it finds RUNNING jobs whose lease expired (the worker died, froze or lost the network) and
jobs past their deadline, and moves each with the same compare-and-set every other change uses. A job
that changed meanwhile (its worker completed it at the last moment) simply fails the compare-and-set,
so exactly one of the two wins, and several replicas reaping at once still change each job once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from jobwarden_server import store
from jobwarden_server.domain import decisions, errors
from jobwarden_server.domain.lifecycle import Lifecycles
from jobwarden_server.domain.records import EventKind
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.stall import StallRules
from jobwarden_server.service import loops
from jobwarden_server.service.writer import Clock, JobWriter

logger = logging.getLogger(__name__)

SINGLETON = "reaper"
BATCH = 200


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ReaperSettings:
    """How often the reaper looks, and which job types it watches for stalls (domain/stall.py)."""

    interval_s: float = 1.0
    stall: StallRules = dataclasses.field(default_factory=dict)


class Reaper:
    """Rescues expired leases (retry or fail), expires jobs past their deadline and flags (or fails)
    stalled jobs (decisions.reap)."""

    def __init__(
        self,
        db: store.Store,
        writer: JobWriter,
        lifecycles: Lifecycles,
        clock: Clock,
        retry: RetryPolicy,
        settings: ReaperSettings,
    ) -> None:
        self._store = db
        self._writer = writer
        self._lifecycles = lifecycles
        self._clock = clock
        self._retry = retry
        self._settings = settings

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set. A failing tick (database down) is logged and retried next time."""

        async def tick_again() -> bool:
            return await self.tick_if_mine() >= BATCH  # a full batch: there may be more

        await loops.every(self._settings.interval_s, stop, "reaper", tick_again)

    async def tick_if_mine(self) -> int:
        """A tick, unless another replica is ticking right now (then 0).

        The compare-and-sets already make concurrent reapers safe; the lock makes them not wasteful:
        one replica does the pass, and whichever replica tries next after it dies takes over."""
        async with self._store.singleton(SINGLETON) as mine:
            return await self.tick() if mine else 0

    async def tick(self) -> int:
        """One pass; returns how many jobs it dealt with (a job it failed on is logged, then left for
        the next pass: one bad job must not keep the others in the pass from being rescued)."""
        now = self._clock()
        known = frozenset(self._lifecycles.tables)
        stall = self._settings.stall
        due = await self._store.job_due(
            store.JobDueParams(
                now=now,
                limit=BATCH,
                lifecycles=known,
                stall_after_s={job_type: rule.after_s for job_type, rule in stall.items()},
            )
        )
        failed = 0
        for job in due:
            try:
                decision = decisions.reap(
                    job,
                    self._lifecycles.named(job.lifecycle),
                    default_retry=self._retry,
                    now=now,
                    stall_rule=stall.get(job.job_type),
                )
                if decision is None:
                    continue
                if await self._writer.change_as_read(job, decision) is None:
                    # Someone else moved it first (its worker, a client, another replica): nothing to do.
                    logger.debug("reaper: job %s changed meanwhile; left as it is", job.id)
                elif any(event.kind is EventKind.STALLED for event in decision.events):
                    logger.warning("reaper: job %s (%s) stalled", job.id, job.job_type)
            except errors.StoreUnavailable:
                raise  # the whole pass is off; the loop retries it
            except Exception:
                failed += 1
                logger.exception("reaper: failed on job %s; going on with the others", job.id)
        return len(due) - failed
