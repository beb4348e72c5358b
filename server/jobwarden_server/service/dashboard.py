"""The dashboard's use cases beyond JobsService: queue statistics, counting a filter's matches, and
cancelling every job a filter matches. All scoped to the caller's owner, like every client call."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging

from jobwarden_server import store
from jobwarden_server.domain import errors, stats
from jobwarden_server.domain.auth import Principal
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.service.jobs import JobQuery, JobsService
from jobwarden_server.service.writer import Clock

logger = logging.getLogger(__name__)

COUNT_LIMIT = 10_000
"""A filter's matches are counted up to here ("10,000 or more"): a bounded walk of the index."""
BULK_LIMIT = 10_000
"""A bulk cancel touches at most this many jobs; the dashboard says how many are left."""
BULK_CONCURRENCY = 64
"""Cancels in flight at once: they share the writer's group commits."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BulkOutcome:
    """What a bulk cancel did."""

    matched: int
    cancelled: int
    """Now CANCELLED, or cancel requested of a running job."""
    refused: int
    """Ended or changed meanwhile, or their lifecycle cannot cancel them where they are."""


class DashboardService:
    """Aggregates and bulk actions over the caller's jobs."""

    def __init__(self, db: store.Store, jobs: JobsService, clock: Clock) -> None:
        self._store = db
        self._jobs = jobs
        self._clock = clock

    async def queue_stats(
        self, who: Principal, *, bucket_s: int, buckets: int
    ) -> tuple[stats.StatsWindow, list[stats.QueueStats]]:
        """Depth, throughput, success rate and p95 per job type over the last `buckets` buckets."""
        if not stats.MIN_BUCKET_S <= bucket_s <= 86_400:
            raise errors.InvalidArgument("bucket_seconds", "must be between 1 and 86400")
        if not 1 <= buckets <= stats.MAX_BUCKETS:
            raise errors.InvalidArgument("buckets", f"must be between 1 and {stats.MAX_BUCKETS}")
        now = self._clock()
        # Bucket edges on whole multiples of the bucket size, so one chart redrawn later lines up.
        epoch_s = int(now.timestamp()) // bucket_s * bucket_s + bucket_s
        end = dt.datetime.fromtimestamp(epoch_s, dt.UTC)
        window = stats.StatsWindow(end=end, bucket_s=bucket_s, buckets=buckets)
        counts = await self._store.job_stats(who.owner, window)
        return window, stats.queue_stats(counts, window)

    async def count(self, who: Principal, query: JobQuery, limit: int = COUNT_LIMIT) -> int:
        """How many of the caller's jobs match, up to `limit`."""
        return await self._store.job_count(query.params(who.owner, limit))

    async def cancel_matching(self, who: Principal, query: JobQuery, reason: str) -> BulkOutcome:
        """Cancel the caller's unfinished jobs that match `query` (at most BULK_LIMIT), each as
        CancelJob would; a job that ended meanwhile is counted as refused, never an error."""
        unfinished = frozenset(s for s in JobStatus if not s.terminal)
        wanted = query.statuses & unfinished if query.statuses else unfinished
        if not wanted:
            return BulkOutcome(matched=0, cancelled=0, refused=0)
        query = dataclasses.replace(query, statuses=wanted)
        found = await self._store.job_list(query.params(who.owner, BULK_LIMIT))
        gate = asyncio.Semaphore(BULK_CONCURRENCY)

        async def one(job_id: str) -> bool:
            async with gate:
                try:
                    await self._jobs.cancel(who, job_id, reason, "")
                    return True
                except errors.DomainError:
                    return False

        done = await asyncio.gather(*(one(job.id) for job in found))
        cancelled = sum(done)
        logger.info("bulk cancel owner=%s matched=%d cancelled=%d", who.owner, len(found), cancelled)
        return BulkOutcome(matched=len(found), cancelled=cancelled, refused=len(found) - cancelled)
