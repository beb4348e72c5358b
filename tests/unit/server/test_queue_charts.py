"""Queue statistics from grouped counts: p95 from the duration histogram, depth rebuilt backwards."""

from __future__ import annotations

import datetime as dt

from jobwarden_server.domain import queue_charts
from jobwarden_server.domain.status import JobStatus

WINDOW = queue_charts.StatsWindow(end=dt.datetime(2030, 1, 1, 1, tzinfo=dt.UTC), bucket_s=60, buckets=4)


def test_duration_buckets_and_their_quantile() -> None:
    assert queue_charts.duration_bucket(0.05) == 0
    assert queue_charts.duration_bucket(1) == queue_charts.DURATION_BOUNDS_S.index(1)
    assert queue_charts.duration_bucket(10**7) == len(queue_charts.DURATION_BOUNDS_S)
    # 19 fast jobs and one slow: the 95th percentile is still among the fast ones, the 99th is not.
    histogram = {queue_charts.duration_bucket(0.4): 19, queue_charts.duration_bucket(50): 1}
    assert queue_charts.quantile(histogram, 0.95) == 0.5
    assert queue_charts.quantile(histogram, 0.99) == 60
    assert queue_charts.quantile({}, 0.95) is None
    assert queue_charts.quantile({len(queue_charts.DURATION_BOUNDS_S): 3}, 0.95) == float("inf")


def test_depth_is_rebuilt_backwards_from_the_current_depth() -> None:
    counts = queue_charts.StatsCounts(
        depth={
            ("render", JobStatus.QUEUED): 2,
            ("render", JobStatus.CREATED): 1,
            ("render", JobStatus.RUNNING): 4,
        },
        arrived={("render", 1): 5, ("render", 3): 1},
        left={("render", 2): 3},
        ended={
            ("render", 2, JobStatus.COMPLETED, queue_charts.duration_bucket(2)): 3,
            ("render", 3, JobStatus.FAILED, queue_charts.duration_bucket(20)): 1,
        },
    )
    [render] = queue_charts.queue_stats(counts, WINDOW)
    assert (render.waiting, render.running) == (3, 4)
    # end of bucket 3: 3; before its one arrival: 2; bucket 2 lost 3: 5 before; bucket 1 had 5 arrive.
    assert list(render.depth) == [0, 5, 2, 3]
    assert list(render.completed) == [0, 0, 3, 0]
    assert list(render.failed) == [0, 0, 0, 1]
    assert render.success_rate == 0.75
    assert render.p95_s == 30


def test_a_type_with_nothing_ended_has_no_rate_and_no_p95() -> None:
    counts = queue_charts.StatsCounts(depth={("encode", JobStatus.QUEUED): 1}, arrived={}, left={}, ended={})
    [encode] = queue_charts.queue_stats(counts, WINDOW)
    assert (encode.success_rate, encode.p95_s, list(encode.depth)) == (None, None, [1, 1, 1, 1])
    assert WINDOW.start == dt.datetime(2030, 1, 1, 0, 56, tzinfo=dt.UTC)
