"""GetJobStats' pure rules: the window a request means, nearest-rank percentiles, success rate."""

from __future__ import annotations

import datetime as dt

import pytest
from support.records import NOW

from jobwarden_server.domain import errors, stats
from jobwarden_server.domain.status import JobStatus

HOUR = dt.timedelta(hours=1)


def test_the_window_is_the_last_hour_by_default_or_as_given() -> None:
    assert stats.window(start=None, end=None, length_s=None, now=NOW) == stats.Window(
        start=NOW - HOUR, end=NOW
    )
    assert stats.window(start=None, end=None, length_s=60, now=NOW).start == NOW - dt.timedelta(minutes=1)
    end = NOW - HOUR
    assert stats.window(start=None, end=end, length_s=30, now=NOW) == stats.Window(
        start=end - dt.timedelta(seconds=30), end=end
    )
    start = NOW - 3 * HOUR
    assert stats.window(start=start, end=None, length_s=None, now=NOW) == stats.Window(start=start, end=NOW)


@pytest.mark.parametrize(
    ("start", "end", "length_s", "field"),
    [
        (NOW - HOUR, None, 60.0, "window"),  # both a start and a length
        (None, None, 0.0, "window"),
        (None, None, -5.0, "window"),
        (None, None, 367 * 86_400.0, "window"),
        (NOW, NOW, None, "end_time"),  # empty
        (NOW, NOW - HOUR, None, "end_time"),  # backwards
        (NOW - dt.timedelta(days=400), None, None, "start_time"),  # too long
        (None, dt.datetime(1, 1, 1, tzinfo=dt.UTC), None, "end_time"),  # no hour before the year 1
    ],
)
def test_a_malformed_window_is_refused_naming_its_field(
    start: dt.datetime | None, end: dt.datetime | None, length_s: float | None, field: str
) -> None:
    with pytest.raises(errors.InvalidArgument) as refused:
        stats.window(start=start, end=end, length_s=length_s, now=NOW)
    assert refused.value.field == field and refused.value.reason == "INVALID_ARGUMENT"


def test_percentiles_are_nearest_rank_values_of_the_set() -> None:
    hundred = [float(i) for i in range(100, 0, -1)]  # 100 .. 1, unsorted on purpose
    assert stats.percentiles(hundred) == stats.Percentiles(count=100, p50=50.0, p95=95.0, p99=99.0)
    assert stats.percentiles([7.0]) == stats.Percentiles(count=1, p50=7.0, p95=7.0, p99=7.0)
    assert stats.percentiles([1.0, 2.0, 3.0]) == stats.Percentiles(count=3, p50=2.0, p95=3.0, p99=3.0)
    assert stats.percentiles([]) == stats.Percentiles(count=0)
    assert stats.percentiles([1.0, 2.0], of_total=5).sampled
    assert not stats.percentiles([1.0, 2.0], of_total=2).sampled


def test_the_success_rate_is_completed_among_finished_jobs() -> None:
    counts = {JobStatus.COMPLETED: 3, JobStatus.FAILED: 1, JobStatus.PARTIAL: 1, JobStatus.RUNNING: 9}
    assert stats.success_rate(counts) == 3 / 5
    assert stats.success_rate({JobStatus.QUEUED: 4}) == 0.0
    assert stats.success_rate({}) == 0.0
