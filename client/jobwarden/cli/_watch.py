"""``jobwarden jobs watch``: follow a job until it ends.

On a terminal it draws a live rich progress bar (status, bar, percent, units, elapsed time, rate and
the worker's message) with the other events printed above it; the bar stays, at its final state,
when the job ends. Piped, it prints one plain line per event instead. Either way it says when the
stream broke and it is reconnecting, and when it is back.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column
from rich.text import Text

from jobwarden.cli import _render
from jobwarden.client import Client, EventKind, Job, JobEvent, JobStatus, WatchReconnect
from jobwarden.client import Progress as JobProgress

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_NOT_COMPLETED = 4

MAX_BACKOFF_S = 2.0
"""Longest wait between two attempts to reach a server that went away: a person is watching, and
the SDK's default (growing to 30 s, on top of gRPC's own reconnect backoff) would leave them looking
at a frozen bar for most of a minute after the server is back."""

RESUME_ATTEMPTS = 60
"""Reopenings in a row without an event before giving up: with waits of at most MAX_BACKOFF_S, a
minute or two of outage, about as patient as the SDK's default."""


# --- the rate ---------------------------------------------------------------------------------------


class Rate:
    """How fast the current attempt advances: units per second when the worker reports units,
    percent per second otherwise, from the first to the latest progress report of the attempt.

    Measured by the server's clock (the events' times), so history replayed at once when the watch
    starts or reconnects counts at the pace it happened, not at the pace it arrived.
    """

    def __init__(self) -> None:
        """Starts with no reports."""
        self.reset()

    def reset(self) -> None:
        """Forgets the reports so far (a new attempt starts over)."""
        self._unit = ""
        self._first: tuple[datetime, float] | None = None
        self._last: tuple[datetime, float] | None = None

    def add(self, when: datetime | None, progress: JobProgress) -> None:
        """Counts one progress report made at ``when``."""
        if when is None:
            return
        unit = "" if progress.total or progress.done else "%"
        value = float(progress.done) if unit == "" else progress.percent
        if self._first is None or unit != self._unit:
            self._unit, self._first = unit, (when, value)
        self._last = (when, value)

    def text(self) -> str:
        """``"2.5/s"``, ``"12.0%/min"``…; empty until two reports that moved forward in time."""
        if self._first is None or self._last is None:
            return ""
        seconds = (self._last[0] - self._first[0]).total_seconds()
        amount = self._last[1] - self._first[1]
        if seconds <= 0 or amount <= 0:
            return ""
        return rate_text(amount / seconds, self._unit)


def rate_text(per_second: float, unit: str = "") -> str:
    """``per_second`` in the largest of per second, minute or hour that shows at least 1."""
    for scale, suffix in ((1, "s"), (60, "min")):
        if per_second * scale >= 1:
            return f"{per_second * scale:.1f}{unit}/{suffix}"
    return f"{per_second * 3600:.1f}{unit}/h"


# --- what a view is told ----------------------------------------------------------------------------


class View(Protocol):
    """Where ``jobs watch`` shows what it sees."""

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def snapshot(self, job: Job) -> None:
        """The job as the watch found it."""

    def event(self, event: JobEvent, status: JobStatus, progress: JobProgress) -> None:
        """One event, with the status and progress as they are after it."""

    def reconnect(self, info: WatchReconnect) -> None:
        """The stream broke and is being reopened, or is open again."""

    def end(self, job: Job) -> None:
        """The job as it ended."""


def reconnect_line(info: WatchReconnect, address: str) -> str:
    """``reconnecting to HOST:PORT… (attempt 2, UNAVAILABLE)``, or ``reconnected to HOST:PORT``."""
    if info.error is None:
        return f"reconnected to {address}"
    label = info.error.reason or info.error.code.name
    return f"reconnecting to {address}… (attempt {info.attempt}, {label})"


class PlainView:
    """Piped output: one line per event on stdout; reconnects on stderr, so stdout stays the history."""

    def __init__(self, address: str) -> None:
        """Reports reconnects to ``address``."""
        self.address = address

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def snapshot(self, job: Job) -> None:
        """``job ID (TYPE) STATUS PROGRESS``."""
        _out(snapshot_line(job))

    def event(self, event: JobEvent, status: JobStatus, progress: JobProgress) -> None:
        """The event's line."""
        _out(_render.event_line(event))

    def reconnect(self, info: WatchReconnect) -> None:
        """A line on stderr per attempt, and one when back."""
        print(reconnect_line(info, self.address), file=sys.stderr, flush=True)

    def end(self, job: Job) -> None:
        """Nothing more: the final line follows."""


class _StatusColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(str(task.fields["status"]), style=str(task.fields["style"]))


class LiveView:
    """A terminal: a live bar, with the snapshot, the other events and reconnects printed above it."""

    def __init__(
        self,
        console: Console,
        address: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        auto_refresh: bool = True,
    ) -> None:
        """Draws on ``console``; ``clock`` times the elapsed column, which ``auto_refresh`` redraws
        ten times a second (every change redraws the bar at once anyway)."""
        self.address = address
        self.rate = Rate()
        self.progress = Progress(
            _StatusColumn(table_column=Column(min_width=len("COMPLETED"))),
            BarColumn(bar_width=30),
            TextColumn("{task.fields[percent]:>6}", markup=False),
            TextColumn("{task.fields[units]}", markup=False),
            TimeElapsedColumn(),
            TextColumn("{task.fields[rate]}", markup=False),
            TextColumn("{task.fields[message]}", markup=False),
            console=console,
            get_time=clock,
            auto_refresh=auto_refresh,
        )
        self.task: TaskID | None = None
        self.status = JobStatus.UNSPECIFIED

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # The bar is not transient: it stays on the screen as it last was.
        self.progress.stop()

    def _print(self, line: str) -> None:
        self.progress.console.print(Text(line))

    def _draw(self, status: JobStatus, progress: JobProgress) -> None:
        if self.task is None:
            # Every field the columns read, at once: the refresh thread may draw before the update.
            self.task = self.progress.add_task(
                "", total=100, visible=False, status="", style="", percent="", units="", rate="", message=""
            )
        self.progress.update(
            self.task,
            completed=max(0.0, min(progress.percent, 100.0)),
            status=str(status),
            style=_render.STATUS_STYLES.get(status, ""),
            percent=_render.percent(progress.percent),
            units=_render.units_text(progress),
            rate=self.rate.text(),
            message=progress.message,
            visible=True,
            refresh=True,  # now, not at the next tick: a line printed above must not show a stale bar
        )

    def snapshot(self, job: Job) -> None:
        """Prints the snapshot line and draws the bar."""
        self.status = job.status
        self._print(snapshot_line(job))
        self._draw(job.status, job.progress)

    def event(self, event: JobEvent, status: JobStatus, progress: JobProgress) -> None:
        """Progress moves the bar; anything else is also worth a line of its own."""
        if event.kind == EventKind.TRANSITION and event.to_status == JobStatus.RUNNING:
            self.rate.reset()  # a new attempt starts over
        if event.kind == EventKind.PROGRESS and event.progress is not None:
            self.rate.add(event.create_time, event.progress)
        else:
            self._print(_render.event_line(event))
        self.status = status
        self._draw(status, progress)

    def reconnect(self, info: WatchReconnect) -> None:
        """The status column says "reconnecting…" until the stream is back; a line above says why."""
        if info.error is None or info.attempt == 1:
            self._print(reconnect_line(info, self.address))
        if self.task is None:
            return
        if info.error is None:
            style = _render.STATUS_STYLES.get(self.status, "")
            self.progress.update(self.task, status=str(self.status), style=style, refresh=True)
        else:
            self.progress.update(self.task, status="reconnecting…", style="yellow", refresh=True)

    def end(self, job: Job) -> None:
        """Draws the final state and stops the clock; a completed job's bar is full."""
        progress = job.progress
        if job.status == JobStatus.COMPLETED:
            progress = JobProgress(
                percent=100, message=progress.message, done=progress.done, total=progress.total
            )
        self._draw(job.status, progress)
        if self.task is not None:
            self.progress.stop_task(self.task)


def snapshot_line(job: Job) -> str:
    """``job ID (TYPE) STATUS PROGRESS``: the first line of a watch."""
    return f"job {job.id} ({job.job_type}) {job.status} {_render.progress_text(job.progress)}"


def _out(text: str) -> None:
    print(text, file=sys.stdout, flush=True)


# --- the command ------------------------------------------------------------------------------------


def make_view(address: str) -> View:
    """A live bar on an interactive terminal, plain lines otherwise (a pipe, a file, TERM=dumb)."""
    console = _render.console(sys.stdout)
    if sys.stdout.isatty() and console.is_interactive:
        return LiveView(console, address)
    return PlainView(address)


async def watch(client: Client, args: argparse.Namespace) -> int:
    """Follows a job until it ends; exit 0 if it COMPLETED, 4 if it ended otherwise."""
    status = JobStatus.UNSPECIFIED
    progress = JobProgress()
    snapshot_sequence = 0
    with make_view(args.address) as view:
        stream = client.watch_job(
            args.job_id,
            after_sequence=args.after,
            max_backoff=MAX_BACKOFF_S,
            resume_attempts=RESUME_ATTEMPTS,
            on_reconnect=view.reconnect,
        )
        async for item in stream:
            if isinstance(item, Job):
                status, progress, snapshot_sequence = item.status, item.progress, item.last_sequence
                view.snapshot(item)
                continue
            if item.sequence > snapshot_sequence:  # replayed history must not move the bar backwards
                status = item.to_status or status
                progress = item.progress or progress
            view.event(item, status, progress)
        # The stream carries neither the error message nor the result: read the job once more to sum up.
        job = await client.get_job(args.job_id)
        view.end(job)
    if not job.is_terminal:
        print(f"error: the watch of job {job.id} ended while it is {job.status}", file=sys.stderr)
        return EXIT_ERROR
    _out(_render.final_line(job))
    return EXIT_OK if job.status == JobStatus.COMPLETED else EXIT_NOT_COMPLETED
