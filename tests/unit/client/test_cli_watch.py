"""`jobs watch`'s live bar (drawn on a fake terminal with a fake clock), its rate and its reconnect lines."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console

from jobwarden import errors
from jobwarden.cli import _watch
from jobwarden.client import EventKind, Job, JobEvent, JobStatus, Progress, WatchReconnect

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _progress_event(sequence: int, seconds: float, progress: Progress) -> JobEvent:
    return JobEvent(
        job_id="j1",
        sequence=sequence,
        create_time=T0 + timedelta(seconds=seconds),
        kind=EventKind.PROGRESS,
        progress=progress,
    )


def _frames(out: io.StringIO) -> list[str]:
    """Each line printed and each redraw of the bar, without the terminal's control sequences."""
    text = out.getvalue().replace("\x1b[?25l", "").replace("\x1b[?25h", "").replace("\n", "\r\x1b[2K")
    return [f.rstrip() for f in text.split("\r\x1b[2K") if f.strip()]


def test_the_bar_shows_units_once_elapsed_time_and_rate_and_stays_full_at_the_end() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system=None, width=120)
    clock = Clock()
    job = Job(id="j1", job_type="resize", status=JobStatus.RUNNING)
    with _watch.LiveView(console, "h:1", clock=clock, auto_refresh=False) as view:
        view.snapshot(job)
        for n in range(1, 4):
            clock.now += 4
            progress = Progress(percent=25 * n, message=f"step {n}/4", done=n, total=4)
            view.event(_progress_event(n + 2, 4.0 * n, progress), JobStatus.RUNNING, progress)
        clock.now += 3
        view.end(Job(id="j1", job_type="resize", status=JobStatus.COMPLETED, progress=progress))
        clock.now += 60  # the clock stopped with the job
    frames = _frames(out)
    assert frames[0] == "job j1 (resize) RUNNING 0%"
    # The message says the units, so they are not shown again; the rate is steps per second.
    assert frames[-1].split() == ["COMPLETED", "━" * 30, "100%", "0:00:15", "15.0/min", "step", "3/4"]
    running = [f for f in frames if f.startswith("RUNNING") and "50%" in f]
    assert running[-1].split() == ["RUNNING", "━" * 15, "50%", "0:00:08", "15.0/min", "step", "2/4"]


def test_a_job_that_did_not_complete_keeps_its_last_percent() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, color_system=None, width=120)
    with _watch.LiveView(console, "h:1", clock=Clock(), auto_refresh=False) as view:
        view.snapshot(Job(id="j1", job_type="resize", status=JobStatus.RUNNING))
        failed = Job(
            id="j1", job_type="resize", status=JobStatus.FAILED, progress=Progress(percent=40, done=2)
        )
        view.end(failed)
    assert _frames(out)[-1].split() == ["FAILED", "━" * 12, "40%", "2", "0:00:00"]


def test_rate() -> None:
    rate = _watch.Rate()
    assert rate.text() == ""
    rate.add(T0, Progress(percent=10))
    assert rate.text() == ""  # one report says nothing about speed
    rate.add(T0 + timedelta(seconds=4), Progress(percent=20))
    assert rate.text() == "2.5%/s"
    rate.add(T0 + timedelta(seconds=5), Progress(done=3, total=100))  # units from now on
    rate.add(T0 + timedelta(seconds=605), Progress(done=33, total=100))
    assert rate.text() == "3.0/min"
    rate.reset()
    assert rate.text() == ""
    rate.add(None, Progress(percent=50))  # no time: not counted
    assert rate.text() == ""
    assert [_watch.rate_text(v) for v in (2.0, 0.05, 0.0001)] == ["2.0/s", "3.0/min", "0.4/h"]


@pytest.mark.parametrize(
    ("info", "line"),
    [
        (
            WatchReconnect(attempt=1, error=errors.Unavailable("refused"), delay=0.7),
            "reconnecting to h:1… (attempt 1, UNAVAILABLE)",
        ),
        (
            WatchReconnect(attempt=3, error=errors.ShuttingDown("bye"), delay=1.0),
            "reconnecting to h:1… (attempt 3, SHUTTING_DOWN)",
        ),
        (WatchReconnect(attempt=3, error=None), "reconnected to h:1"),
    ],
)
def test_reconnect_lines(info: WatchReconnect, line: str) -> None:
    assert _watch.reconnect_line(info, "h:1") == line
