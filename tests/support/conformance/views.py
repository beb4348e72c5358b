"""SDK objects as the JSON shapes scenario expectations are written against (README: "Views").

Every runner builds the same shapes from its own SDK's objects; times and generated ids other than
the job's own are left out, since scenarios never pin them.
"""

from __future__ import annotations

from typing import Any

from jobwarden import errors
from jobwarden.client import Asset, Job, JobEvent


def job(value: Job, prefix: str) -> dict[str, Any]:
    """A job; its job type without the scenario's prefix (so "work", not "watch-resume.work")."""
    return {
        "id": value.id,
        "owner": value.owner,
        "job_type": value.job_type.removeprefix(prefix),
        "lifecycle": value.lifecycle,
        "status": value.status.value,
        "attempt": value.attempt,
        "max_attempts": value.max_attempts,
        "priority": value.priority,
        "cancel_requested": value.cancel_requested,
        "stop_reason": value.stop_reason.value,
        "progress": {
            "percent": value.progress.percent,
            "message": value.progress.message,
            "done": value.progress.done,
            "total": value.progress.total,
        },
        "parameters": value.parameters,
        "result": value.result,
        "error": None
        if value.error is None
        else {
            "message": value.error.message,
            "reason": value.error.reason,
            "retryable": value.error.retryable,
        },
        "labels": value.labels,
        "parent": value.parent_id,
        "retry_of": value.retry_of,
        "batch": None if value.batch is None else _batch(value),
        "message_count": value.message_count,
        "worker_id": value.worker_id,
        "callback": {"state": value.callback_state.value, "attempts": value.callback_attempts},
    }


def _batch(value: Job) -> dict[str, int]:
    counts = value.batch
    assert counts is not None
    names = (
        "total",
        "created",
        "queued",
        "running",
        "completed",
        "partial",
        "failed",
        "cancelled",
        "expired",
    )
    return {name: getattr(counts, name) for name in names}


def event(value: JobEvent) -> dict[str, Any]:
    """An event: what happened, without its time; keys that do not apply to its kind are left out."""
    view: dict[str, Any] = {"sequence": value.sequence, "kind": value.kind.value, "actor": value.actor}
    if value.from_status is not None:
        view["from"] = value.from_status.value
    if value.to_status is not None:
        view["to"] = value.to_status.value
    if value.reason:
        view["reason"] = value.reason
    if value.stop_reason is not None:
        view["stop_reason"] = value.stop_reason.value
    if value.progress is not None:
        view["percent"] = value.progress.percent
    if value.asset is not None:
        view["asset_type"] = value.asset.asset_type
    if value.level is not None:
        view["level"] = value.level.value
    if value.message:
        view["message"] = value.message
    if value.callback is not None:
        view["http_status"] = value.callback.http_status
    if value.forced or value.bypassed_table:
        view["forced"], view["bypassed_table"] = value.forced, value.bypassed_table
    return view


def asset(value: Asset) -> dict[str, Any]:
    """An asset, without its generated id and time."""
    return {
        "asset_type": value.asset_type,
        "uri": value.uri,
        "size_bytes": value.size_bytes,
        "content_type": value.content_type,
        "metadata": value.metadata,
    }


def error(err: errors.JobwardenError) -> dict[str, Any]:
    """A refused call: the gRPC code's name, the ErrorInfo reason and metadata."""
    return {"code": err.code.name, "reason": err.reason, "metadata": err.metadata, "message": err.message}
