"""Queue charts from grouped counts: throughput per bucket, depth rebuilt backwards from the current one."""

from __future__ import annotations

import datetime as dt

from jobwarden_server.domain import queue_charts
from jobwarden_server.domain.status import JobStatus

WINDOW = queue_charts.StatsWindow(end=dt.datetime(2030, 1, 1, 1, tzinfo=dt.UTC), bucket_s=60, buckets=4)


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
            ("render", 2, JobStatus.COMPLETED): 3,
            ("render", 3, JobStatus.FAILED): 1,
            ("render", 9, JobStatus.FAILED): 7,  # outside the window's buckets: not drawn
        },
    )
    [render] = queue_charts.queue_charts(counts, WINDOW)
    assert (render.waiting, render.running) == (3, 4)
    # end of bucket 3: 3; before its one arrival: 2; bucket 2 lost 3: 5 before; bucket 1 had 5 arrive.
    assert list(render.depth) == [0, 5, 2, 3]
    assert list(render.completed) == [0, 0, 3, 0]
    assert list(render.failed) == [0, 0, 0, 1]


def test_a_type_with_only_waiting_jobs_is_flat() -> None:
    counts = queue_charts.StatsCounts(depth={("encode", JobStatus.QUEUED): 1}, arrived={}, left={}, ended={})
    [encode] = queue_charts.queue_charts(counts, WINDOW)
    assert (list(encode.depth), list(encode.completed), list(encode.failed)) == ([1] * 4, [0] * 4, [0] * 4)
    assert WINDOW.start == dt.datetime(2030, 1, 1, 0, 56, tzinfo=dt.UTC)
