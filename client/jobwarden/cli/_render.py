"""How the CLI shows jobs, events and assets: plain text lines, tables, JSON and the live bar."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from jobwarden.client import Asset, EventKind, Job, JobEvent, JobStatus, Progress, StopReason


def percent(value: float) -> str:
    """``50`` → ``"50%"``, ``42.5`` → ``"42.5%"``."""
    return f"{value:.0f}%" if float(value).is_integer() else f"{value:.1f}%"


def timestamp(value: datetime | None) -> str:
    """A UTC ISO 8601 time to the second, or ``"-"``."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def progress_text(progress: Progress) -> str:
    """``"50% halfway (5/10)"``: the percent, then the message and units when there are any."""
    parts = [percent(progress.percent)]
    if progress.message:
        parts.append(progress.message)
    if progress.total:
        parts.append(f"({progress.done}/{progress.total})")
    elif progress.done:
        parts.append(f"({progress.done})")
    return " ".join(parts)


def event_line(event: JobEvent) -> str:
    """One line per event, for ``jobs watch`` when piped and for ``jobs events``.

    Examples: ``#1 created QUEUED (client:alice)``, ``#3 transition QUEUED -> RUNNING (worker:w1)``,
    ``#4 progress 50% halfway``, ``#5 asset_added report s3://b/r.pdf``, ``#6 log retrying``,
    ``#7 cancel_requested "too slow" (client:alice)``.
    """
    head = f"#{event.sequence} {event.kind}"
    actor = f" ({event.actor})" if event.actor else ""
    kind = event.kind
    if kind == EventKind.CREATED:
        return f"{head} {event.to_status or JobStatus.UNSPECIFIED}{actor}"
    if kind == EventKind.TRANSITION:
        text = f"{head} {event.from_status or JobStatus.UNSPECIFIED} -> {event.to_status or JobStatus.UNSPECIFIED}"
        if event.stop_reason not in (None, StopReason.UNSPECIFIED):
            text += f" [{event.stop_reason}]"
        if event.reason:
            text += f": {event.reason}"
        return text + actor
    if kind == EventKind.PROGRESS:
        return f"{head} {progress_text(event.progress or Progress())}"
    if kind == EventKind.ASSET_ADDED:
        asset = event.asset
        return f"{head} {asset.asset_type} {asset.uri}" if asset else head
    if kind == EventKind.LOG:
        return f"{head} {event.message}"
    if kind == EventKind.CANCEL_REQUESTED:
        reason = f" {json.dumps(event.reason)}" if event.reason else ""
        return f"{head}{reason}{actor}"
    return f"{head}{actor}"


def live_line(status: JobStatus, progress: Progress, width: int) -> str:
    """The one-line bar ``jobs watch`` redraws on a terminal, cut to ``width`` characters."""
    bar_width = 24
    filled = round(bar_width * max(0.0, min(progress.percent, 100.0)) / 100)
    bar = "#" * filled + "." * (bar_width - filled)
    text = f"{status:<9} [{bar}] {progress_text(progress)}"
    return text[: max(width - 1, 10)]  # the last column would wrap on some terminals


def final_line(job: Job) -> str:
    """The line ``jobs watch`` ends with: ``job ID COMPLETED`` plus why, when it did not complete."""
    text = f"job {job.id} {job.status}"
    if job.stop_reason != StopReason.UNSPECIFIED:
        text += f" [{job.stop_reason}]"
    if job.error is not None and job.error.message:
        text += f": {job.error.message}"
    return text


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A left-aligned text table; the last column is not padded."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def fmt(cells: Sequence[str]) -> str:
        padded = [c.ljust(w) for c, w in zip(cells[:-1], widths[:-1], strict=True)]
        return "  ".join([*padded, cells[-1]]).rstrip()

    return "\n".join([fmt(headers), *(fmt(r) for r in rows)])


def jobs_table(jobs: Sequence[Job]) -> str:
    """The ``jobs list`` table."""
    rows = [
        [
            j.id,
            j.job_type,
            j.status + (" (cancel requested)" if j.cancel_requested and not j.is_terminal else ""),
            percent(j.progress.percent),
            f"{j.attempt}/{j.max_attempts}",
            timestamp(j.create_time),
        ]
        for j in jobs
    ]
    return table(["ID", "TYPE", "STATUS", "PROGRESS", "ATTEMPT", "CREATED"], rows)


def assets_table(assets: Sequence[Asset]) -> str:
    """The ``jobs assets`` table."""
    rows = [[a.id, a.asset_type, str(a.size_bytes), a.content_type or "-", a.uri] for a in assets]
    return table(["ID", "TYPE", "SIZE", "CONTENT-TYPE", "URI"], rows)


def job_details(job: Job) -> str:
    """The ``jobs get`` block: one ``name: value`` line per field worth showing."""
    status = str(job.status)
    if job.cancel_requested and not job.is_terminal:
        status += " (cancel requested)"
    fields: list[tuple[str, str]] = [
        ("id", job.id),
        ("type", job.job_type),
        ("status", status),
        ("progress", progress_text(job.progress)),
        ("attempt", f"{job.attempt} of {job.max_attempts}"),
        ("priority", str(job.priority)),
        ("lifecycle", job.lifecycle),
        ("owner", job.owner),
        ("worker", job.worker_id),
        ("labels", ", ".join(f"{k}={v}" for k, v in sorted(job.labels.items()))),
        ("created", timestamp(job.create_time)),
        ("updated", timestamp(job.update_time)),
        ("started", timestamp(job.start_time) if job.start_time else ""),
        ("completed", timestamp(job.complete_time) if job.complete_time else ""),
        ("run after", timestamp(job.run_after) if job.run_after else ""),
        ("deadline", timestamp(job.deadline) if job.deadline else ""),
        ("stop reason", "" if job.stop_reason == StopReason.UNSPECIFIED else str(job.stop_reason)),
        ("error", _error_text(job)),
        ("callback", job.callback_url),
        ("parameters", json.dumps(job.parameters, sort_keys=True)),
        ("result", "" if job.result is None else json.dumps(job.result, sort_keys=True)),
        ("etag", job.etag),
    ]
    return "\n".join(f"{name + ':':<12} {value}" for name, value in fields if value)


def _error_text(job: Job) -> str:
    if job.error is None:
        return ""
    text = job.error.message
    if job.error.reason:
        text += f" [{job.error.reason}]"
    return text


def to_json(value: Any) -> str:
    """Dataclasses (and lists of them) as indented JSON; times as ISO 8601, enums as their names."""
    return json.dumps(_plain(value), indent=2, sort_keys=True)


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | frozenset | set):
        return [_plain(v) for v in value]
    return value


class LiveLine:
    """A status line redrawn in place on a terminal; other lines are printed above it."""

    def __init__(self, out: TextIO) -> None:
        """Draws on ``out``, which should be a terminal."""
        self.out = out
        self.shown = False

    def draw(self, text: str) -> None:
        """Replaces the status line with ``text``."""
        self.out.write("\r\x1b[2K" + text)  # carriage return, then erase the line
        self.out.flush()
        self.shown = True

    def println(self, text: str) -> None:
        """Prints ``text`` as a line of its own where the status line was."""
        self.clear()
        self.out.write(text + "\n")
        self.out.flush()

    def clear(self) -> None:
        """Erases the status line."""
        if self.shown:
            self.out.write("\r\x1b[2K")
            self.out.flush()
            self.shown = False
