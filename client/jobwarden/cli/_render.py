"""How the CLI shows jobs, events and assets: plain text lines, tables and JSON.

Tables are rich tables: on a terminal they fit its width, in colour unless ``NO_COLOR`` is set;
piped, they are plain text as wide as they need, so scripts can split their lines.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from jobwarden.client import Asset, CallbackState, EventKind, Job, JobEvent, JobStatus, Progress, StopReason

STATUS_STYLES: dict[JobStatus, str] = {
    JobStatus.CREATED: "dim",
    JobStatus.QUEUED: "",
    JobStatus.RUNNING: "cyan",
    JobStatus.COMPLETED: "green",
    JobStatus.PARTIAL: "yellow",
    JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "yellow",
    JobStatus.EXPIRED: "red",
}

# Piped output is never wrapped or cut: a line is as long as its content.
_UNLIMITED_WIDTH = 1_000_000


def console(file: TextIO) -> Console:
    """A rich console writing to ``file``.

    Rich decides from ``file`` whether it is a terminal (colour, width) and honours ``NO_COLOR``,
    ``FORCE_COLOR`` and ``COLUMNS``. Data is never read as markup, emoji codes or highlighted.
    """
    return Console(file=file, highlight=False, markup=False, emoji=False)


def plain(renderable: RenderableType) -> str:
    """``renderable`` as plain text without colour, as wide as it needs, without trailing blanks."""
    out = Console(
        file=io.StringIO(),
        width=_UNLIMITED_WIDTH,
        color_system=None,
        force_terminal=False,
        highlight=False,
        markup=False,
        emoji=False,
    )
    with out.capture() as captured:
        out.print(renderable)
    return "\n".join(line.rstrip() for line in captured.get().splitlines())


def show(target: Console, renderable: RenderableType) -> None:
    """Prints ``renderable``: styled on a terminal, as :func:`plain` text otherwise."""
    if target.is_terminal:
        target.print(renderable)
    else:
        target.file.write(plain(renderable) + "\n")
        target.file.flush()


def status_text(status: JobStatus, suffix: str = "") -> Text:
    """A status name in its colour."""
    return Text(str(status) + suffix, style=STATUS_STYLES.get(status, ""))


def percent(value: float) -> str:
    """``50`` → ``"50%"``, ``42.5`` → ``"42.5%"``."""
    return f"{value:.0f}%" if float(value).is_integer() else f"{value:.1f}%"


def timestamp(value: datetime | None) -> str:
    """A UTC ISO 8601 time to the second, or ``"-"``."""
    if value is None:
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def seconds(value: float | None) -> str:
    """A duration for people: ``"850ms"``, ``"12.5s"``, ``"4m10s"``, ``"2h05m"``, ``"3d04h"``; ``"-"``
    for None."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.1f}s".replace(".0s", "s")
    whole = round(value)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s"


def units_text(progress: Progress) -> str:
    """``"5/10"`` (or ``"5"`` without a total); empty when there are no units, or when the message
    already says them (a worker reporting "step 1/4" with done=1, total=4)."""
    if progress.total:
        text = f"{progress.done}/{progress.total}"
    elif progress.done:
        text = str(progress.done)
    else:
        return ""
    return "" if text in progress.message else text


def progress_text(progress: Progress) -> str:
    """``"50% halfway (5/10)"``: the percent, then the message and units when there are any."""
    parts = [percent(progress.percent)]
    if progress.message:
        parts.append(progress.message)
    units = units_text(progress)
    if units:
        parts.append(f"({units})")
    return " ".join(parts)


def event_line(event: JobEvent) -> str:
    """One line per event, for ``jobs watch`` when piped and for ``jobs events``.

    Examples: ``#1 created QUEUED (client:alice)``, ``#3 transition QUEUED -> RUNNING (worker:w1)``,
    ``#4 progress 50% halfway``, ``#5 asset_added report s3://b/r.pdf``, ``#6 log WARNING retrying``,
    ``#7 cancel_requested "too slow" (client:alice)``,
    ``#9 callback_attempt 1 HTTP 503 -> DELIVERING: HTTP 503``.
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
        if event.bypassed_table or event.forced:
            text += " [forced, outside the table]" if event.bypassed_table else " [forced]"
        if event.reason:
            text += f": {event.reason}"
        return text + actor
    if kind == EventKind.PROGRESS:
        return f"{head} {progress_text(event.progress or Progress())}"
    if kind == EventKind.ASSET_ADDED:
        asset = event.asset
        return f"{head} {asset.asset_type} {asset.uri}" if asset else head
    if kind == EventKind.LOG:
        return f"{head} {_message_text(event)}"
    if kind == EventKind.CANCEL_REQUESTED:
        reason = f" {json.dumps(event.reason)}" if event.reason else ""
        return f"{head}{reason}{actor}"
    if kind == EventKind.CALLBACK_ATTEMPT and event.callback is not None:
        attempt = event.callback
        answer = f"HTTP {attempt.http_status}" if attempt.http_status else "no answer"
        text = f"{head} {attempt.attempt} {answer} -> {attempt.state}"
        return text + (f": {attempt.error}" if attempt.error else "")
    if kind == EventKind.STALLED and event.stall is not None:
        stall = event.stall
        action = ", attempt failed" if stall.failed else ""
        return (
            f"{head} at {progress_text(stall.progress)} since {timestamp(stall.since)}"
            f" (limit {seconds(stall.stall_after)}{action}){actor}"
        )
    return f"{head}{actor}"


def message_line(event: JobEvent) -> str:
    """A message for ``jobs messages``: sequence, time, level, text and data (compact JSON), e.g.
    ``#6 2026-12-06T12:00:01Z WARNING retrying {"attempt": 2}``. A text with line breaks (a traceback)
    keeps them."""
    return f"#{event.sequence} {timestamp(event.create_time)} {_message_text(event)}"


def _message_text(event: JobEvent) -> str:
    """A message's level, text and data (as compact JSON), for one line."""
    parts = [str(event.level or "INFO")]
    if event.message:
        parts.append(event.message)
    if event.data is not None:
        parts.append(json.dumps(event.data, sort_keys=True))
    return " ".join(parts)


def final_line(job: Job) -> str:
    """The line ``jobs watch`` ends with: ``job ID COMPLETED`` plus why, when it did not complete."""
    text = f"job {job.id} {job.status}"
    if job.stop_reason != StopReason.UNSPECIFIED:
        text += f" [{job.stop_reason}]"
    if job.error is not None and job.error.message:
        text += f": {job.error.message}"
    return text


def _table(*headers: str) -> Table:
    # No borders: the columns line up as plain text, so piped output splits on whitespace. On a narrow
    # terminal the other columns wrap first: an id or a time cut short is of no use.
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for header in headers:
        table.add_column(header, no_wrap=header in ("ID", "CREATED"), overflow="fold")
    return table


def jobs_table(jobs: Sequence[Job]) -> Table:
    """The ``jobs list`` table."""
    table = _table("ID", "TYPE", "STATUS", "PROGRESS", "ATTEMPT", "CREATED")
    for j in jobs:
        cancel = " (cancel requested)" if j.cancel_requested and not j.is_terminal else ""
        table.add_row(
            Text(j.id),
            Text(j.job_type),
            status_text(j.status, cancel),
            Text(percent(j.progress.percent)),
            Text(f"{j.attempt}/{j.max_attempts}"),
            Text(timestamp(j.create_time)),
        )
    return table


def assets_table(assets: Sequence[Asset]) -> Table:
    """The ``jobs assets`` table."""
    table = _table("ID", "TYPE", "SIZE", "CONTENT-TYPE", "URI")
    for a in assets:
        table.add_row(
            *(Text(c) for c in (a.id, a.asset_type, str(a.size_bytes), a.content_type or "-", a.uri))
        )
    return table


def job_details(job: Job) -> str:
    """The ``jobs get`` block: one ``name: value`` line per field worth showing."""
    status = str(job.status)
    if job.cancel_requested and not job.is_terminal:
        status += " (cancel requested)"
    if job.stalled:
        status += f" (stalled since {timestamp(job.stall_time)})"
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
        ("queue limit", timestamp(job.queue_expire_time) if job.queue_expire_time else ""),
        ("stop reason", "" if job.stop_reason == StopReason.UNSPECIFIED else str(job.stop_reason)),
        ("error", _error_text(job)),
        ("callback", _callback_text(job)),
        ("retry of", job.retry_of),
        ("messages", str(job.message_count) if job.message_count else ""),
        ("batch", _batch_text(job)),
        ("parent", job.parent_id),
        ("traceparent", job.traceparent),  # its trace id finds the job's spans in a tracing backend
        ("parameters", json.dumps(job.parameters, sort_keys=True)),
        ("result", "" if job.result is None else json.dumps(job.result, sort_keys=True)),
        ("etag", job.etag),
    ]
    return "\n".join(f"{name + ':':<12} {value}" for name, value in fields if value)


def _callback_text(job: Job) -> str:
    if not job.callback_url:
        return ""
    text = job.callback_url
    if job.callback_statuses:
        text += f" (on {', '.join(str(s) for s in job.callback_statuses)})"
    if job.callback_state != CallbackState.NONE:
        text += f" {job.callback_state}, {job.callback_attempts} attempt(s)"
    if job.callback_error:
        text += f": {job.callback_error}"
    return text


def _batch_text(job: Job) -> str:
    """A parent's children by status: the total, then each status that has any."""
    if job.batch is None:
        return ""
    counts = job.batch
    parts = [
        f"{n} {name}"
        for name, n in (
            ("created", counts.created),
            ("queued", counts.queued),
            ("running", counts.running),
            ("completed", counts.completed),
            ("partial", counts.partial),
            ("failed", counts.failed),
            ("cancelled", counts.cancelled),
            ("expired", counts.expired),
        )
        if n
    ]
    return f"{counts.total} children: {', '.join(parts)}"


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
