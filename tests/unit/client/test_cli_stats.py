"""`jobwarden stats` and `top`: their arguments and how they show durations and empty answers."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from jobwarden.cli import _render, _stats
from jobwarden.client import JobStats

START = datetime(2030, 1, 1, 11, tzinfo=UTC)
END = datetime(2030, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90.0), ("45s", 45.0), ("30m", 1800.0), ("1.5h", 5400.0), ("7d", 604_800.0)]
)
def test_since_takes_seconds_or_a_unit(text: str, seconds: float) -> None:
    assert _stats.since(text) == seconds


@pytest.mark.parametrize("text", ["", "0", "0m", "-1h", "1w", "soon", "1h30m"])
def test_since_refuses_anything_else(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected a duration such as 90, 30m, 1h or 7d"):
        _stats.since(text)


def test_interval_is_at_least_a_fifth_of_a_second() -> None:
    assert _stats.interval("0.5") == 0.5
    for text in ("0.1", "fast"):
        with pytest.raises(argparse.ArgumentTypeError):
            _stats.interval(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "-"),
        (0.0123, "12ms"),
        (2.0, "2s"),
        (12.5, "12.5s"),
        (250.0, "4m10s"),
        (7500.0, "2h05m"),
        (3 * 86_400 + 4 * 3600.0, "3d04h"),
    ],
)
def test_durations_read_as_people_say_them(value: float | None, text: str) -> None:
    assert _render.seconds(value) == text


def test_a_window_without_jobs_says_so() -> None:
    empty = JobStats(start_time=START, end_time=END)
    assert (
        _render.plain(_stats.stats_view(empty))
        == "jobs created 2030-01-01T11:00:00Z .. 2030-01-01T12:00:00Z: no jobs"
    )
    assert _render.plain(_stats.top_view(empty, END)).splitlines() == [
        "jobwarden top  2030-01-01T12:00:00Z  jobs created in the last 1h00m",
        "no jobs",
    ]
