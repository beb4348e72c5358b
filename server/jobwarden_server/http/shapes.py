"""Domain records as JSON for the dashboard: plain names, ISO 8601 times, statuses as their names.

A job's lease token is left out: it is the worker's fencing credential, and nothing a viewer needs.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from jobwarden_server.domain import stats
from jobwarden_server.domain.records import Asset, Event, Job


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


def queues(window: stats.StatsWindow, found: list[stats.QueueStats]) -> dict[str, Any]:
    """The queue statistics of one window (p95 beyond the last bound is reported as null with
    `p95_over` set)."""
    return {
        "start": time(window.start),
        "end": time(window.end),
        "bucket_seconds": window.bucket_s,
        "queues": [
            {
                "job_type": q.job_type,
                "waiting": q.waiting,
                "running": q.running,
                "depth": list(q.depth),
                "completed": list(q.completed),
                "failed": list(q.failed),
                "success_rate": q.success_rate,
                "p95_seconds": None if q.p95_s is None or q.p95_s == float("inf") else q.p95_s,
                "p95_over": stats.DURATION_BOUNDS_S[-1] if q.p95_s == float("inf") else None,
            }
            for q in found
        ],
    }
