"""Domain records as JSON for the dashboard: plain names, ISO 8601 times, statuses as their names.

A job's lease token is left out: it is the worker's fencing credential, and nothing a viewer needs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from jobwarden_server.domain import queue_charts
from jobwarden_server.domain.records import Asset, Event, Job
from jobwarden_server.service.stats import TypeStats


def time(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC, or None."""
    return None if value is None else value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def job(value: Job) -> dict[str, Any]:
    """The fields the dashboard shows."""
    return {
        "id": value.id,
        "job_type": value.job_type,
        "lifecycle": value.lifecycle,
        "status": value.status.value,
        "terminal": value.status.terminal,
        "progress": {
            "percent": value.progress.percent,
            "message": value.progress.message,
            "done": value.progress.done,
            "total": value.progress.total,
        },
        "parameters": dict(value.parameters),
        "result": None if value.result is None else dict(value.result),
        "error": None
        if value.error is None
        else {
            "message": value.error.message,
            "reason": value.error.reason,
            "retryable": value.error.retryable,
        },
        "stop_reason": value.stop_reason.value,
        "attempt": value.attempt,
        "max_attempts": value.max_attempts,
        "priority": value.priority,
        "labels": dict(value.labels),
        "worker_id": value.worker_id,
        "cancel_requested": value.cancel_requested,
        "callback_url": value.callback_url,
        "callback_state": value.callback_state.value,
        "callback_attempts": value.callback_attempts,
        "retry_of": value.retry_of,
        "parent_id": value.parent_id,
        "message_count": value.message_count,
        "last_sequence": value.last_sequence,
        "create_time": time(value.create_time),
        "update_time": time(value.update_time),
        "start_time": time(value.start_time),
        "complete_time": time(value.complete_time),
        "run_after": time(value.run_after),
        "deadline": time(value.deadline),
        "lease_expire_time": time(value.lease_expire_time),
    }


def event(value: Event) -> dict[str, Any]:
    """One entry of a job's timeline."""
    return {
        "job_id": value.job_id,
        "sequence": value.sequence,
        "time": time(value.create_time),
        "actor": value.actor,
        "kind": value.kind.value,
        "data": dict(value.data),
    }


def asset(value: Asset) -> dict[str, Any]:
    """One output of a job."""
    return {
        "id": value.id,
        "asset_type": value.asset_type,
        "uri": value.uri,
        "size_bytes": value.size_bytes,
        "content_type": value.content_type,
        "create_time": time(value.create_time),
    }


def queues(
    window: queue_charts.StatsWindow, charts: list[queue_charts.QueueChart], stats: Mapping[str, TypeStats]
) -> dict[str, Any]:
    """The queue charts of one window, each with its type's GetJobStats figures over the same span
    (null where no job of the type was created in it, or none finished)."""
    return {
        "start": time(window.start),
        "end": time(window.end),
        "bucket_seconds": window.bucket_s,
        "queues": [_queue(chart, stats.get(chart.job_type)) for chart in charts],
    }


def _queue(chart: queue_charts.QueueChart, stats: TypeStats | None) -> dict[str, Any]:
    finished = 0 if stats is None else sum(n for s, n in stats.counts.items() if s.terminal)
    return {
        "job_type": chart.job_type,
        "waiting": chart.waiting,
        "running": chart.running,
        "depth": list(chart.depth),
        "completed": list(chart.completed),
        "failed": list(chart.failed),
        "success_rate": stats.success_rate if stats is not None and finished else None,
        "p95_seconds": None if stats is None else stats.completion.p95,
    }
