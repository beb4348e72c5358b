"""Queue statistics from grouped counts: p95 from the duration histogram, depth rebuilt backwards."""

from __future__ import annotations

import datetime as dt

from jobwarden_server.domain import stats
from jobwarden_server.domain.status import JobStatus

WINDOW = stats.StatsWindow(end=dt.datetime(2030, 1, 1, 1, tzinfo=dt.UTC), bucket_s=60, buckets=4)


def test_duration_buckets_and_their_quantile() -> None:
    assert stats.duration_bucket(0.05) == 0
    assert stats.duration_bucket(1) == stats.DURATION_BOUNDS_S.index(1)
    assert stats.duration_bucket(10**7) == len(stats.DURATION_BOUNDS_S)
    # 19 fast jobs and one slow: the 95th percentile is still among the fast ones, the 99th is not.
    histogram = {stats.duration_bucket(0.4): 19, stats.duration_bucket(50): 1}
    assert stats.quantile(histogram, 0.95) == 0.5
    assert stats.quantile(histogram, 0.99) == 60
    assert stats.quantile({}, 0.95) is None
    assert stats.quantile({len(stats.DURATION_BOUNDS_S): 3}, 0.95) == float("inf")


def test_depth_is_rebuilt_backwards_from_the_current_depth() -> None:
    counts = stats.StatsCounts(
        depth={
            ("render", JobStatus.QUEUED): 2,
            ("render", JobStatus.CREATED): 1,
            ("render", JobStatus.RUNNING): 4,
        },
        arrived={("render", 1): 5, ("render", 3): 1},
        left={("render", 2): 3},
        ended={
            ("render", 2, JobStatus.COMPLETED, stats.duration_bucket(2)): 3,
            ("render", 3, JobStatus.FAILED, stats.duration_bucket(20)): 1,
        },
    )
    [render] = stats.queue_stats(counts, WINDOW)
    assert (render.waiting, render.running) == (3, 4)
    # end of bucket 3: 3; before its one arrival: 2; bucket 2 lost 3: 5 before; bucket 1 had 5 arrive.
    assert list(render.depth) == [0, 5, 2, 3]
    assert list(render.completed) == [0, 0, 3, 0]
    assert list(render.failed) == [0, 0, 0, 1]
    assert render.success_rate == 0.75
    assert render.p95_s == 30


def test_a_type_with_nothing_ended_has_no_rate_and_no_p95() -> None:
    counts = stats.StatsCounts(depth={("encode", JobStatus.QUEUED): 1}, arrived={}, left={}, ended={})
    [encode] = stats.queue_stats(counts, WINDOW)
    assert (encode.success_rate, encode.p95_s, list(encode.depth)) == (None, None, [1, 1, 1, 1])
    assert WINDOW.start == dt.datetime(2030, 1, 1, 0, 56, tzinfo=dt.UTC)
