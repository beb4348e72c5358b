"""GetJobStats: per job type, the counts, rates and durations of a window of jobs, and the queue now.

The store counts and fetches (store/_stats.py, one read transaction, bounded by a sample per type);
the figures are derived here with the pure rules of domain/stats.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from jobwarden_server import store
from jobwarden_server.domain import errors
from jobwarden_server.domain import stats as rules
from jobwarden_server.domain.admin import scope
from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.service.writer import Clock


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StatsQuery:
    """What a caller asks GetJobStats for (decoded; the window is checked by `JobStats.stats`)."""

    job_types: frozenset[str] = frozenset()
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    length_s: float | None = None
    all_owners: bool = False


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TypeStats:
    """One job type's statistics."""

    job_type: str
    counts: dict[JobStatus, int]
    success_rate: float
    completion: rules.Percentiles
    run: rules.Percentiles
    queued: int
    oldest_queued_age_s: float | None
    running: int
    stalled: int


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Stats:
    """The answer: the window as resolved, and a TypeStats per job type, sorted by type."""

    window: rules.Window
    types: Sequence[TypeStats]


class JobStats:
    """Statistics of the caller's jobs (every owner's for an admin-global token that asks)."""

    def __init__(self, db: store.Store, clock: Clock, *, sample: int = rules.SAMPLE) -> None:
        self._store = db
        self._clock = clock
        self._sample = sample

    async def stats(self, who: Principal, query: StatsQuery) -> Stats:
        """Counts per status, success rate and duration percentiles of the jobs created in the window,
        per type; and the queue depth, oldest queued age, running and stalled jobs now.
        INVALID_ARGUMENT for a malformed window; PERMISSION_DENIED for all_owners without the
        admin-global role."""
        now = self._clock()
        window = rules.window(start=query.start, end=query.end, length_s=query.length_s, now=now)
        owner: str | None = who.owner
        if query.all_owners:
            if not who.has(Role.GLOBAL_ADMIN):
                raise errors.PermissionDenied("all_owners needs an admin-global token")
            owner = scope(who)
        figures = await self._store.job_stats(
            store.JobStatsParams(
                owner=owner,
                start=window.start,
                end=window.end,
                job_types=query.job_types,
                sample=self._sample,
            )
        )
        return Stats(window=window, types=[_type_stats(f, now) for f in figures])


def _type_stats(figures: store.JobTypeFigures, now: dt.datetime) -> TypeStats:
    completed = figures.counts.get(JobStatus.COMPLETED, 0)
    oldest = figures.oldest_queued
    return TypeStats(
        job_type=figures.job_type,
        counts=dict(figures.counts),
        success_rate=rules.success_rate(figures.counts),
        completion=rules.percentiles(figures.completion_s, of_total=completed),
        run=rules.percentiles(figures.run_s, of_total=completed),
        queued=figures.queued,
        oldest_queued_age_s=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
        running=figures.running,
        stalled=figures.stalled,
    )
