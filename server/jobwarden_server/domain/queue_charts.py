"""Queue charts for the dashboard: depth and throughput per job type over time, from a handful of
grouped counts (store `queue_counts`). The success rate and completion-time percentiles beside them
come from GetJobStats's rules (domain/stats.py), so the dashboard and the API give one answer.

The store answers with counts per (job type, time bucket, ...), never with rows, so the cost of a
query does not grow with how many jobs it covers beyond the index range it scans. Depth over time is
rebuilt from today's exact depth backwards: before each bucket the queue held what it holds after it,
minus the jobs that arrived in it, plus the jobs that left it (started, or ended without starting).
A job retried into the queue again is not an arrival, so the past depth of types with many retries is
an approximation; the current depth is exact.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence

from jobwarden_server.domain.status import JobStatus

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

    `ended` keys: (job type, bucket of the end, terminal status).
    `left` keys: (job type, bucket): jobs that left the queue in the bucket (started, or ended unstarted).
    """

    depth: Mapping[tuple[str, JobStatus], int]
    arrived: Mapping[tuple[str, int], int]
    left: Mapping[tuple[str, int], int]
    ended: Mapping[tuple[str, int, JobStatus], int]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class QueueChart:
    """One job type's charts for the dashboard."""

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


def queue_charts(counts: StatsCounts, window: StatsWindow) -> list[QueueChart]:
    """Every job type seen in `counts`, by name."""
    types = sorted(
        {k[0] for k in counts.depth}
        | {k[0] for k in counts.arrived}
        | {k[0] for k in counts.left}
        | {k[0] for k in counts.ended}
    )
    return [_one(job_type, counts, window) for job_type in types]


def _one(job_type: str, counts: StatsCounts, window: StatsWindow) -> QueueChart:
    n = window.buckets
    waiting = sum(counts.depth.get((job_type, s), 0) for s in WAITING)
    running = counts.depth.get((job_type, JobStatus.RUNNING), 0)
    completed = [0] * n
    failed = [0] * n
    for (kind, bucket, status), count in counts.ended.items():
        if kind == job_type and 0 <= bucket < n:
            (completed if status is JobStatus.COMPLETED else failed)[bucket] += count
    depth = [0] * n
    level = waiting
    for bucket in range(n - 1, -1, -1):
        depth[bucket] = level
        arrived = counts.arrived.get((job_type, bucket), 0)
        left = counts.left.get((job_type, bucket), 0)
        level = max(0, level - arrived + left)
    return QueueChart(
        job_type=job_type,
        waiting=waiting,
        running=running,
        depth=depth,
        completed=completed,
        failed=failed,
    )
