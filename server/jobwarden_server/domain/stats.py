"""Job statistics (GetJobStats), the pure parts: which window a request means, and the figures made of
what the store counted (success rate, nearest-rank percentiles).

Definitions, one each:
- The window is [start, end) of create times: a job counts in the window it was created in, by its
  status now. So the counts of a window settle as its jobs finish; they never move between windows.
- Success rate: COMPLETED / finished (COMPLETED, PARTIAL, FAILED, CANCELLED, EXPIRED); 0 if none.
- Completion time: complete - create of COMPLETED jobs (queued to finished: what a client waits,
  retries and backoff included). Run time: complete - start of the same jobs (the last attempt only:
  what the worker took).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections.abc import Mapping, Sequence

from jobwarden_server.domain.errors import InvalidArgument
from jobwarden_server.domain.status import TERMINAL, JobStatus

DEFAULT_WINDOW_S = 3600.0
MAX_WINDOW_S = 366 * 86_400.0
SAMPLE = 1_000
"""Durations per job type the percentiles are taken from at most (the newest jobs)."""
PERCENTILES = (50, 95, 99)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """[start, end) of create times."""

    start: dt.datetime
    end: dt.datetime


def window(
    *, start: dt.datetime | None, end: dt.datetime | None, length_s: float | None, now: dt.datetime
) -> Window:
    """The window a request means: [start, end), or `length_s` before `end`; `end` defaults to now and
    the length to an hour. INVALID_ARGUMENT (naming the field) for both a start and a length, a length
    not above 0 or over 366 days, or an end not after the start."""
    if start is not None and length_s is not None:
        raise InvalidArgument("window", "give start_time or window, not both")
    if length_s is not None and not 0 < length_s <= MAX_WINDOW_S:
        raise InvalidArgument("window", "must be above 0 and at most 366 days")
    end = end if end is not None else now
    if start is None:
        try:
            start = end - dt.timedelta(seconds=DEFAULT_WINDOW_S if length_s is None else length_s)
        except OverflowError:
            raise InvalidArgument("end_time", "is too early for the window to fit before it") from None
    if end <= start:
        raise InvalidArgument("end_time", "must be after start_time")
    if (end - start).total_seconds() > MAX_WINDOW_S:
        raise InvalidArgument("start_time", "the window may span at most 366 days")
    return Window(start=start, end=end)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Percentiles:
    """Nearest-rank percentiles of a set of durations, in seconds (None when the set is empty)."""

    count: int
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    sampled: bool = False
    """The set was cut to its newest SAMPLE jobs."""


def percentiles(durations: Sequence[float], *, of_total: int | None = None) -> Percentiles:
    """p50, p95 and p99 of `durations` by nearest rank: the smallest value with at least p% of the
    values at or below it (always one of the values, never an interpolation). `of_total` is how many
    the full set held when `durations` is a sample of it."""
    if not durations:
        return Percentiles(count=0)
    ordered = sorted(durations)
    n = len(ordered)

    def rank(p: int) -> float:
        return ordered[max(1, math.ceil(p / 100 * n)) - 1]

    return Percentiles(
        count=n,
        p50=rank(50),
        p95=rank(95),
        p99=rank(99),
        sampled=of_total is not None and of_total > n,
    )


def success_rate(counts: Mapping[JobStatus, int]) -> float:
    """COMPLETED among finished jobs (0.0 when none has finished)."""
    finished = sum(count for status, count in counts.items() if status in TERMINAL)
    return counts.get(JobStatus.COMPLETED, 0) / finished if finished else 0.0
