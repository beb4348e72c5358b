"""The reaper: the server loop that makes sure every accepted job reaches a terminal state.

Each tick it finds RUNNING jobs whose lease expired (the worker died, froze or lost the network) and
jobs past their deadline, and moves each with the same compare-and-set every other change uses. A job
that changed meanwhile (its worker completed it at the last moment) simply fails the compare-and-set,
so exactly one of the two wins, and several replicas reaping at once still change each job once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging

from jobwarden_server import store
from jobwarden_server.domain import errors
from jobwarden_server.domain.records import Job, JobError
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.service.attempts import end_attempt
from jobwarden_server.service.writer import JobWriter

logger = logging.getLogger(__name__)

SYSTEM = "system"
SINGLETON = "reaper"
BATCH = 200


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ReaperSettings:
    """How often the reaper looks."""

    interval_s: float = 1.0


class Reaper:
    """Rescues expired leases (retry or fail) and expires jobs past their deadline."""

    def __init__(self, writer: JobWriter, retry: RetryPolicy, settings: ReaperSettings) -> None:
        self._writer = writer
        self._retry = retry
        self._settings = settings

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set. A failing tick (database down) is logged and retried next time."""
        while not stop.is_set():
            try:
                while await self.tick_if_mine() >= BATCH:
                    pass  # a backlog: keep going without waiting
            except errors.StoreUnavailable as err:
                logger.warning("reaper: store unavailable (%s); retrying", err)
            except Exception:
                logger.exception("reaper: unexpected failure; retrying")
            try:
                await asyncio.wait_for(stop.wait(), self._settings.interval_s)
            except TimeoutError:
                pass

    async def tick_if_mine(self) -> int:
        """A tick, unless another replica is ticking right now (then 0).

        The compare-and-sets already make concurrent reapers safe; the lock makes them not wasteful:
        one replica does the pass, and whichever replica tries next after it dies takes over."""
        async with self._writer.store.singleton(SINGLETON) as mine:
            return await self.tick() if mine else 0

    async def tick(self) -> int:
        """One pass; returns how many jobs it dealt with (a job it failed on is logged, then left for
        the next pass: one bad job must not keep the others in the pass from being rescued)."""
        now = self._writer.clock()
        known = frozenset(self._writer.lifecycles.tables)
        due = await self._writer.store.job_due(store.JobDueParams(now=now, limit=BATCH, lifecycles=known))
        failed = 0
        for job in due:
            try:
                if job.deadline is not None and job.deadline <= now:
                    await self._expire(job, now)
                else:
                    await self._rescue(job)
            except (errors.InvalidTransition, errors.EtagMismatch, errors.NotFound) as err:
                # Someone else moved it first (its worker, a client, another replica): nothing to do.
                logger.debug("reaper: job %s not changed: %s", job.id, err)
            except errors.StoreUnavailable:
                raise  # the whole pass is off; the loop retries it
            except Exception:
                failed += 1
                logger.exception("reaper: failed on job %s; going on with the others", job.id)
        return len(due) - failed

    async def _expire(self, job: Job, now: dt.datetime) -> None:
        table = self._writer.lifecycles.named(job.lifecycle)
        if not table.allows(job.status, JobStatus.EXPIRED):
            return  # the table has no way to expire from here; create refuses deadlines it cannot honour
        await self._writer.transition(
            job,
            JobStatus.EXPIRED,
            actor=SYSTEM,
            reason="deadline passed",
            owner=None,
            stop_reason=StopReason.TIMEOUT_EXCEEDED,
            changes=store.JobChanges(complete_time=now, clear_lease=True),
        )

    async def _rescue(self, job: Job) -> None:
        lost = JobError(
            message=f"lease of worker {job.worker_id} expired", reason="LEASE_EXPIRED", retryable=True
        )
        await end_attempt(
            self._writer,
            self._retry,
            job,
            lost,
            actor=SYSTEM,
            owner=None,
            cancel_reason="cancel requested and the worker did not confirm in time",
            stop_reason=StopReason.LEASE_EXPIRED,
        )
