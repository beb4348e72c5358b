"""Queue statistics for the dashboard: depth and throughput per job type over time, success rate and
p95 completion time, computed from a handful of grouped counts (store `job_stats`).

The store answers with counts per (job type, time bucket, ...), never with rows, so the cost of a
query does not grow with how many jobs it covers beyond the index range it scans. Depth over time is
rebuilt from today's exact depth backwards: before each bucket the queue held what it holds after it,
minus the jobs that arrived in it, plus the jobs that left it (started, or ended without starting).
A job retried into the queue again is not an arrival, so the past depth of types with many retries is
an approximation; the current depth is exact.

Completion times are counted in buckets with fixed upper bounds (DURATION_BOUNDS_S), as a Prometheus
histogram is, so p95 is the upper bound of the bucket holding the 95th percentile: exact enough to see
a queue slow down, and computable with a portable GROUP BY on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

from jobwarden_server.domain.status import JobStatus

DURATION_BOUNDS_S: tuple[float, ...] = (
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    120,
    300,
    600,
    1800,
    3600,
    3 * 3600,
    12 * 3600,
    24 * 3600,
)
"""Upper bounds of the completion-time buckets; one more bucket holds everything longer."""

WAITING = (JobStatus.CREATED, JobStatus.QUEUED)
MAX_BUCKETS = 120
MIN_BUCKET_S = 1


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StatsWindow:
    """The time covered: `buckets` buckets of `bucket_s` seconds ending at `end`."""

    end: dt.datetime
    bucket_s: int
    buckets: int

    @property
    def start(self) -> dt.datetime:
        """When the first bucket begins."""
        return self.end - dt.timedelta(seconds=self.bucket_s * self.buckets)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class StatsCounts:
    """What the store counted for one owner within a window; every key holds a job type first.

    `ended` keys: (job type, bucket of the end, terminal status, duration bucket index).
    `left` keys: (job type, bucket): jobs that left the queue in the bucket (started, or ended unstarted).
    """

    depth: Mapping[tuple[str, JobStatus], int]
    arrived: Mapping[tuple[str, int], int]
    left: Mapping[tuple[str, int], int]
    ended: Mapping[tuple[str, int, JobStatus, int], int]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class QueueStats:
    """One job type's numbers for the dashboard."""

    job_type: str
    waiting: int
    """CREATED and QUEUED now."""
    running: int
    depth: Sequence[int]
    """Jobs waiting at the end of each bucket (the last is `waiting`)."""
    completed: Sequence[int]
    """Jobs that ended COMPLETED in each bucket."""
    failed: Sequence[int]
    """Jobs that ended any other way in each bucket."""
    success_rate: float | None
    """COMPLETED / ended within the window; None when none ended."""
    p95_s: float | None
    """95% of the jobs ended within the window took at most this long from creation; None when none
    ended, infinity when more than 5% took longer than the last bound."""


def duration_bucket(seconds: float) -> int:
    """Index of the completion-time bucket for `seconds` (len(DURATION_BOUNDS_S) past the last)."""
    for index, bound in enumerate(DURATION_BOUNDS_S):
        if seconds <= bound:
            return index
    return len(DURATION_BOUNDS_S)


def quantile(histogram: Mapping[int, int], q: float) -> float | None:
    """The upper bound of the bucket holding the q-quantile of `histogram` (bucket index -> count)."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            return DURATION_BOUNDS_S[index] if index < len(DURATION_BOUNDS_S) else float("inf")
    return float("inf")


def queue_stats(counts: StatsCounts, window: StatsWindow) -> list[QueueStats]:
    """Every job type seen in `counts`, by name."""
    types = sorted(
        {k[0] for k in counts.depth}
        | {k[0] for k in counts.arrived}
        | {k[0] for k in counts.left}
        | {k[0] for k in counts.ended}
    )
    return [_one(job_type, counts, window) for job_type in types]


def _one(job_type: str, counts: StatsCounts, window: StatsWindow) -> QueueStats:
    n = window.buckets
    waiting = sum(counts.depth.get((job_type, s), 0) for s in WAITING)
    running = counts.depth.get((job_type, JobStatus.RUNNING), 0)
    completed = [0] * n
    failed = [0] * n
    histogram: dict[int, int] = {}
    for (kind, bucket, status, duration), count in counts.ended.items():
        if kind != job_type or not 0 <= bucket < n:
            continue
        (completed if status is JobStatus.COMPLETED else failed)[bucket] += count
        histogram[duration] = histogram.get(duration, 0) + count
    depth = [0] * n
    level = waiting
    for bucket in range(n - 1, -1, -1):
        depth[bucket] = level
        arrived = counts.arrived.get((job_type, bucket), 0)
        left = counts.left.get((job_type, bucket), 0)
        level = max(0, level - arrived + left)
    ended = sum(completed) + sum(failed)
    return QueueStats(
        job_type=job_type,
        waiting=waiting,
        running=running,
        depth=depth,
        completed=completed,
        failed=failed,
        success_rate=sum(completed) / ended if ended else None,
        p95_s=quantile(histogram, 0.95),
    )
