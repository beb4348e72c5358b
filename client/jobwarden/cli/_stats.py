"""``jobwarden stats`` and ``jobwarden top``: statistics per job type, once or refreshing.

Both read GetJobStats (:meth:`Client.stats`): the counts per status of the jobs created in a window
(``--since``, default an hour), their success rate and completion and run time percentiles, and what
waits and runs now. ``top`` redraws every ``--interval`` seconds until Ctrl-C; ``--once`` draws one
frame and exits, which is also what scripts and tests use.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from jobwarden.cli import _jobs, _render
from jobwarden.client import Client, DurationStats, JobStats, JobStatus, JobTypeStats

_SINCE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
_COUNTED = [s for s in JobStatus if s is not JobStatus.UNSPECIFIED]


def since(text: str) -> float:
    """Parses ``--since``: seconds, or a number with s, m, h or d (``90``, ``30m``, ``1.5h``, ``7d``)."""
    match = _SINCE.fullmatch(text.strip())
    seconds = float(match[1]) * _UNITS[match[2]] if match else 0.0
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration such as 90, 30m, 1h or 7d, got {text!r}")
    return seconds


def interval(text: str) -> float:
    """Parses ``--interval``: seconds, at least 0.2."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value < 0.2:
        raise argparse.ArgumentTypeError(f"expected a number of seconds of at least 0.2, got {text!r}")
    return value


def add_parser(subparsers: Any, common: argparse.ArgumentParser) -> None:
    """Adds ``stats`` and ``top``; ``common`` carries the connection options."""
    for name, fn, help_text in (
        ("stats", _stats, "statistics per job type over a window of time"),
        ("top", _top, "live counts per job type and status, redrawn until Ctrl-C"),
    ):
        p = subparsers.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(func=fn)
        p.add_argument(
            "--type",
            dest="job_types",
            action="append",
            default=[],
            metavar="T",
            help="only this job type; repeatable",
        )
        p.add_argument(
            "--since",
            type=since,
            default=3600.0,
            metavar="DURATION",
            help="count the jobs created this long ago or later: 90, 30m, 1h, 7d (default 1h)",
        )
        p.add_argument(
            "--all-owners", action="store_true", help="every owner's jobs (needs an admin-global token)"
        )
        if name == "stats":
            p.add_argument("--json", action="store_true", help="print JSON instead of tables")
        else:
            p.add_argument(
                "--interval",
                type=interval,
                default=2.0,
                metavar="SECONDS",
                help="redraw every SECONDS (default 2)",
            )
            p.add_argument("--once", action="store_true", help="draw one frame and exit")


async def _fetch(client: Client, args: argparse.Namespace) -> JobStats:
    return await client.stats(job_types=args.job_types, since=args.since, all_owners=args.all_owners)


async def _stats(client: Client, args: argparse.Namespace) -> int:
    stats = await _fetch(client, args)
    if args.json:
        print(_render.to_json(stats))
        return _jobs.EXIT_OK
    _render.show(_render.console(sys.stdout), stats_view(stats))
    return _jobs.EXIT_OK


async def _top(client: Client, args: argparse.Namespace) -> int:
    out = _render.console(sys.stdout)
    frame = top_view(await _fetch(client, args), datetime.now(UTC))
    if args.once:
        _render.show(out, frame)
        return _jobs.EXIT_OK
    if not out.is_terminal:  # piped: one frame after another, each ending in a blank line
        while True:
            _render.show(out, Group(frame, Text("")))
            await asyncio.sleep(args.interval)  # the refresh rate the user chose
            frame = top_view(await _fetch(client, args), datetime.now(UTC))
    # On a terminal the frame is redrawn in place; Ctrl-C ends it (the CLI exits 130).
    with Live(frame, console=out, auto_refresh=False) as live:
        while True:
            await asyncio.sleep(args.interval)
            live.update(top_view(await _fetch(client, args), datetime.now(UTC)), refresh=True)


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def _window(stats: JobStats) -> str:
    return f"jobs created {_render.timestamp(stats.start_time)} .. {_render.timestamp(stats.end_time)}"


def _table(*headers: str) -> Table:
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, no_wrap=header == "TYPE", justify="left" if header == "TYPE" else "right")
    return table


def _times(value: DurationStats) -> list[str]:
    return [_render.seconds(value.p50), _render.seconds(value.p95), _render.seconds(value.p99)]


def stats_view(stats: JobStats) -> RenderableType:
    """``jobwarden stats``: the window, then two tables with a row per job type: the jobs created in
    the window by status with their success rate; then their durations and the queue now."""
    counts = _table("TYPE", "TOTAL", *(str(s) for s in _COUNTED), "SUCCESS")
    times = _table(
        "TYPE",
        "DONE P50",
        "P95",
        "P99",
        "RUN P50",
        "P95",
        "P99",
        "SAMPLE",
        "QUEUED",
        "OLDEST",
        "RUNNING",
        "STALLED",
    )
    for t in stats.job_types:
        counts.add_row(
            t.job_type, str(t.total), *(str(t.counts.get(s, 0)) for s in _COUNTED), _finished_rate(t)
        )
        sample = str(t.completion_time.count) + ("+" if t.completion_time.sampled else "")
        times.add_row(
            t.job_type,
            *_times(t.completion_time),
            *_times(t.run_time),
            sample,
            str(t.queue_depth),
            _render.seconds(t.oldest_queued_age),
            str(t.running),
            str(t.stalled),
        )
    if not stats.job_types:
        return Text(f"{_window(stats)}: no jobs")
    return Group(Text(_window(stats)), counts, Text(""), times)


def _finished_rate(t: JobTypeStats) -> str:
    finished = sum(n for s, n in t.counts.items() if s.is_terminal)
    return _percent(t.success_rate) if finished else "-"


def top_view(stats: JobStats, now: datetime) -> RenderableType:
    """One frame of ``jobwarden top``: what waits, runs and stalls now per type, and how the jobs of
    the window ended."""
    table = _table(
        "TYPE",
        "QUEUED",
        "OLDEST",
        "RUNNING",
        "STALLED",
        "COMPLETED",
        "FAILED",
        "OTHER",
        "SUCCESS",
        "DONE P95",
    )
    for t in stats.job_types:
        completed = t.counts.get(JobStatus.COMPLETED, 0)
        failed = t.counts.get(JobStatus.FAILED, 0)
        other = sum(t.counts.get(s, 0) for s in (JobStatus.PARTIAL, JobStatus.CANCELLED, JobStatus.EXPIRED))
        table.add_row(
            t.job_type,
            str(t.queue_depth),
            _render.seconds(t.oldest_queued_age),
            str(t.running),
            Text(str(t.stalled), style="red" if t.stalled else ""),
            str(completed),
            str(failed),
            str(other),
            _finished_rate(t),
            _render.seconds(t.completion_time.p95),
        )
    span = (
        (stats.end_time - stats.start_time).total_seconds() if stats.start_time and stats.end_time else None
    )
    head = Text(f"jobwarden top  {_render.timestamp(now)}  jobs created in the last {_render.seconds(span)}")
    parts: Sequence[RenderableType] = [head, table] if stats.job_types else [head, Text("no jobs")]
    return Group(*parts)
