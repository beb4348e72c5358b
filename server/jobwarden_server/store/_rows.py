"""Rows to domain records and back: the one place that knows how columns map onto fields."""

from __future__ import annotations

import datetime as dt
import enum
import functools
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from jobwarden_server.domain.changes import JobChanges, NewEvent
from jobwarden_server.domain.records import (
    Asset,
    BatchCounts,
    CallbackState,
    Event,
    EventKind,
    Job,
    JobError,
    Progress,
)
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.domain.trace import TraceContext
from jobwarden_server.store._protocol import JobCreateParams
from jobwarden_server.store._tables import BATCH_COUNT_COLUMNS

Row = Mapping[Any, Any]
"""A row as a mapping by column name (SQLAlchemy's RowMapping, or the dict a row was inserted from)."""

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)

E = TypeVar("E", bound=enum.Enum)


def _decoder(kind: type[E]) -> Callable[[Any], E]:
    """`kind(value)` for a stored value, by a table made once: calling an enum class looks the value
    up through several Python-level steps, and every row read converts a few. A value the enum does
    not know still raises as `kind(value)` does."""
    by_value = {member.value: member for member in kind}

    def decode(value: Any) -> E:
        member = by_value.get(value)
        return member if member is not None else kind(value)

    return decode


_status = _decoder(JobStatus)
_stop_reason = _decoder(StopReason)
_callback_state = _decoder(CallbackState)
_event_kind = _decoder(EventKind)

# The fields of an asset_added event's data: the whole asset, so a watcher can be sent the asset
# straight from the event row without a join (job_id, owner and create_time come from the event).
ASSET_EVENT_FIELDS = (
    "asset_id",
    "asset_type",
    "uri",
    "storage_path",
    "size_bytes",
    "content_type",
    "sha256",
    "metadata",
)


def to_us(value: dt.datetime) -> int:
    """Microseconds since the Unix epoch; refuses naive datetimes, whose zone would be a guess."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store takes timezone-aware times only")
    return (value - _EPOCH) // _MICROSECOND


def to_us_or_none(value: dt.datetime | None) -> int | None:
    """`to_us`, passing None through."""
    return None if value is None else to_us(value)


def from_us(value: int) -> dt.datetime:
    """A timezone-aware UTC datetime from microseconds since the Unix epoch."""
    return _EPOCH + dt.timedelta(0, 0, value)  # positional: a third cheaper than microseconds=value


def from_us_or_none(value: int | None) -> dt.datetime | None:
    """`from_us`, passing None through."""
    return None if value is None else from_us(value)


def new_lease_token() -> str:
    """A fresh fencing token: unguessable, so only the worker that claimed the job can act on it."""
    return secrets.token_urlsafe(24)


def job_from_row(row: Row) -> Job:
    """A Job from a `jobs` row mapping."""
    error = None
    if row["error_message"] is not None:
        error = JobError(
            message=row["error_message"],
            reason=row["error_reason"] or "",
            retryable=bool(row["error_retryable"]),
        )
    return Job(
        id=row["id"],
        owner=row["owner"],
        job_type=row["job_type"],
        lifecycle=row["lifecycle"],
        status=_status(row["status"]),
        progress=Progress(
            percent=row["progress_percent"],
            message=row["progress_message"],
            done=row["progress_done"],
            total=row["progress_total"],
        ),
        parameters=row["parameters"],
        result=row["result"],
        error=error,
        stop_reason=_stop_reason(row["stop_reason"]),
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        priority=row["priority"],
        labels=row["labels"],
        run_after=from_us_or_none(row["run_after_us"]),
        deadline=from_us_or_none(row["deadline_us"]),
        callback_url=row["callback_url"],
        cancel_requested=bool(row["cancel_requested"]),
        version=row["version"],
        create_time=from_us(row["create_us"]),
        update_time=from_us(row["update_us"]),
        start_time=from_us_or_none(row["start_us"]),
        complete_time=from_us_or_none(row["complete_us"]),
        worker_id=row["worker_id"],
        lease_token=row["lease_token"] or "",
        lease_expire_time=from_us_or_none(row["lease_expire_us"]),
        lease_duration_s=row["lease_duration_s"],
        last_sequence=row["last_sequence"],
        request_id=row["request_id"],
        retry=_retry_from_row(row),
        queue_timeout_s=row["queue_timeout_s"],
        queue_expire_time=from_us_or_none(row["queue_expire_us"]),
        callback_statuses=statuses_from_text(row["callback_statuses"]),
        callback_state=_callback_state(row["callback_state"]),
        callback_attempts=row["callback_attempts"],
        callback_error=row["callback_error"],
        retry_of=row["retry_of"],
        message_count=row["message_count"],
        parent_id=row["parent_id"] or "",
        batch=batch_from_row(row),
        trace=TraceContext(row["traceparent"], row["tracestate"]) if row["traceparent"] else None,
        progress_time=from_us_or_none(row["progress_us"]),
        stall_time=from_us_or_none(row["stall_us"]),
    )


def batch_from_row(row: Row) -> BatchCounts | None:
    """A parent's counts (None for a job that is not a batch parent)."""
    if row["batch_total"] is None:
        return None
    return BatchCounts(
        **{status.value.lower(): row[column] for status, column in BATCH_COUNT_COLUMNS.items()}
    )


def batch_values(counts: BatchCounts | None) -> dict[str, Any]:
    """The batch columns of a new job: a parent's counts, or none."""
    if counts is None:
        return {"batch_total": None, **{column: 0 for column in BATCH_COUNT_COLUMNS.values()}}
    return {
        "batch_total": counts.total,
        **{column: counts.of(status) for status, column in BATCH_COUNT_COLUMNS.items()},
    }


# Cached: every job row written or read converts its callback statuses, and there are few sets.
@functools.cache
def statuses_to_text(statuses: frozenset[JobStatus]) -> str:
    """callback_statuses as stored: comma-separated in the enum's order ('' for none)."""
    return ",".join(s.value for s in JobStatus if s in statuses)


@functools.cache
def statuses_from_text(text: str) -> frozenset[JobStatus]:
    """The inverse of statuses_to_text."""
    return frozenset(_status(s) for s in text.split(",") if s)


def _retry_from_row(row: Row) -> RetryPolicy | None:
    if row["retry_initial_backoff_s"] is None:
        return None
    return RetryPolicy(
        initial_backoff_s=row["retry_initial_backoff_s"],
        max_backoff_s=row["retry_max_backoff_s"],
        multiplier=row["retry_multiplier"],
    )


def asset_from_row(row: Row) -> Asset:
    """An Asset from an `assets` row mapping."""
    return Asset(
        id=row["id"],
        job_id=row["job_id"],
        owner=row["owner"],
        asset_type=row["asset_type"],
        uri=row["uri"],
        storage_path=row["storage_path"],
        size_bytes=row["size_bytes"],
        content_type=row["content_type"],
        sha256=row["sha256"],
        metadata=row["metadata"],
        create_time=from_us(row["create_us"]),
        sequence=row["position"],
    )


def asset_event_data(asset: Asset, request_fingerprint: str = "") -> dict[str, Any]:
    """The data of an asset_added event: every field of the asset the event row does not already hold
    (and the adding call's fingerprint, if it gave a request_id)."""
    return {
        **({"request_fingerprint": request_fingerprint} if request_fingerprint else {}),
        "asset_id": asset.id,
        "asset_type": asset.asset_type,
        "uri": asset.uri,
        "storage_path": asset.storage_path,
        "size_bytes": asset.size_bytes,
        "content_type": asset.content_type,
        "sha256": asset.sha256,
        "metadata": dict(asset.metadata),
    }


def event_from_row(row: Row) -> Event:
    """An Event from a `job_events` row mapping, with its asset rebuilt for asset_added events."""
    kind = _event_kind(row["kind"])
    data: Mapping[str, Any] = row["data"]
    create_time = from_us(row["create_us"])
    asset = None
    # Events written by other paths (or older versions) may lack the fields: then there is no asset.
    if kind is EventKind.ASSET_ADDED and all(field in data for field in ASSET_EVENT_FIELDS):
        asset = Asset(
            id=data["asset_id"],
            job_id=row["job_id"],
            owner=row["owner"],
            asset_type=data["asset_type"],
            uri=data["uri"],
            storage_path=data["storage_path"],
            size_bytes=data["size_bytes"],
            content_type=data["content_type"],
            sha256=data["sha256"],
            metadata=data["metadata"],
            create_time=create_time,
            sequence=row["sequence"],
        )
    return Event(
        job_id=row["job_id"],
        owner=row["owner"],
        sequence=row["sequence"],
        create_time=create_time,
        actor=row["actor"],
        kind=kind,
        data=data,
        asset=asset,
    )


def create_values(params: JobCreateParams, now_us: int) -> dict[str, Any]:
    """The `jobs` row of a new job: version 1, and last_sequence 1 for its CREATED event."""
    return {
        "id": params.id,
        "owner": params.owner,
        "job_type": params.job_type,
        "lifecycle": params.lifecycle,
        "status": params.status.value,
        "progress_percent": 0.0,
        "progress_message": "",
        "progress_done": 0,
        "progress_total": 0,
        "parameters": dict(params.parameters),
        "result": None,
        "error_message": None,
        "error_reason": None,
        "error_retryable": None,
        "stop_reason": "UNSPECIFIED",
        "attempt": 0,
        "max_attempts": params.max_attempts,
        "priority": params.priority,
        "labels": dict(params.labels),
        "run_after_us": to_us_or_none(params.run_after),
        "deadline_us": to_us_or_none(params.deadline),
        "callback_url": params.callback_url,
        "cancel_requested": False,
        "version": 1,
        "create_us": now_us,
        "update_us": now_us,
        "start_us": None,
        "complete_us": None,
        "worker_id": "",
        "lease_token": None,
        "lease_expire_us": None,
        "lease_duration_s": 0.0,
        "last_sequence": 1,
        "request_id": params.request_id,
        "request_fingerprint": params.request_fingerprint,
        "retry_initial_backoff_s": params.retry.initial_backoff_s if params.retry else None,
        "retry_max_backoff_s": params.retry.max_backoff_s if params.retry else None,
        "retry_multiplier": params.retry.multiplier if params.retry else None,
        "queue_timeout_s": params.queue_timeout_s,
        "queue_expire_us": to_us_or_none(params.queue_expire_time),
        "callback_statuses": statuses_to_text(params.callback_statuses),
        "callback_state": CallbackState.NONE.value,
        "callback_attempts": 0,
        "callback_error": "",
        "retry_of": params.retry_of,
        "message_count": 0,
        "parent_id": params.parent_id or None,
        "progress_us": None,
        "stall_us": None,
        **batch_values(params.batch),
        "traceparent": params.trace.traceparent if params.trace is not None else "",
        "tracestate": params.trace.tracestate if params.trace is not None else "",
    }


def created_event_row(params: JobCreateParams, now_us: int) -> dict[str, Any]:
    """The `job_events` row of a new job's CREATED event (sequence 1)."""
    return {
        "job_id": params.id,
        "sequence": 1,
        "owner": params.owner,
        "create_us": now_us,
        "actor": params.actor,
        "kind": EventKind.CREATED.value,
        "data": {"status": params.status.value},
    }


def change_values(changes: JobChanges) -> dict[str, Any]:
    """The SET clause for JobChanges; None fields are left out so the column keeps its value."""
    values: dict[str, Any] = {}
    if changes.status is not None:
        values["status"] = changes.status.value
    if changes.progress is not None:
        values["progress_percent"] = changes.progress.percent
        values["progress_message"] = changes.progress.message
        values["progress_done"] = changes.progress.done
        values["progress_total"] = changes.progress.total
    if changes.result is not None:
        values["result"] = dict(changes.result)
    if changes.error is not None:
        values["error_message"] = changes.error.message
        values["error_reason"] = changes.error.reason
        values["error_retryable"] = changes.error.retryable
    if changes.stop_reason is not None:
        values["stop_reason"] = changes.stop_reason.value
    if changes.cancel_requested is not None:
        values["cancel_requested"] = changes.cancel_requested
    if changes.run_after is not None:
        values["run_after_us"] = to_us(changes.run_after)
    if changes.complete_time is not None:
        values["complete_us"] = to_us(changes.complete_time)
    elif changes.clear_complete_time:
        values["complete_us"] = None
    if changes.queue_expire_time is not None:
        values["queue_expire_us"] = to_us(changes.queue_expire_time)
    values.update(attempt_values(changes))
    values.update(stall_values(changes))
    values.update(lease_values(changes))
    return values


def attempt_values(changes: JobChanges) -> dict[str, Any]:
    """The attempt columns JobChanges sets: when it started, and its number (a claim taken back)."""
    values: dict[str, Any] = {}
    if changes.start_time is not None:
        values["start_us"] = to_us(changes.start_time)
    if changes.attempt is not None:
        values["attempt"] = changes.attempt
    return values


def stall_values(changes: JobChanges) -> dict[str, Any]:
    """The stall detection columns JobChanges sets: progress moved, flagged, or unflagged."""
    if changes.stall_time is not None and changes.clear_stall:
        raise ValueError("JobChanges: set stall_time or clear_stall, not both")
    values: dict[str, Any] = {}
    if changes.progress_time is not None:
        values["progress_us"] = to_us(changes.progress_time)
    if changes.stall_time is not None:
        values["stall_us"] = to_us(changes.stall_time)
    elif changes.clear_stall:
        values["stall_us"] = None
    return values


def lease_values(changes: JobChanges) -> dict[str, Any]:
    """The lease columns JobChanges sets: a new lease, a renewed expiry, or none at all."""
    lease, expire, clear = changes.lease, changes.lease_expire_time, changes.clear_lease
    if sum((lease is not None, expire is not None, clear)) > 1:
        # Which one should win is not obvious, so the caller must say exactly one thing.
        raise ValueError("JobChanges: set at most one of lease, lease_expire_time and clear_lease")
    if lease is not None:
        return {
            "worker_id": lease.worker_id,
            "lease_token": lease.token,
            "lease_expire_us": to_us(lease.expire_time),
            "lease_duration_s": lease.duration_s,
        }
    if expire is not None:
        return {"lease_expire_us": to_us(expire)}
    if clear:
        # worker_id stays: it records who ran the job last, which is still worth showing.
        return {"lease_token": None, "lease_expire_us": None}
    return {}


def event_rows(job_row: Row, events: Sequence[NewEvent], now_us: int) -> list[dict[str, Any]]:
    """Rows for events appended by an UPDATE that already advanced last_sequence by len(events)."""
    first = job_row["last_sequence"] - len(events) + 1
    return [
        {
            "job_id": job_row["id"],
            "sequence": first + offset,
            "owner": job_row["owner"],
            "create_us": now_us,
            "actor": event.actor,
            "kind": event.kind.value,
            "data": dict(event.data),
            "request_id": event.request_id,
        }
        for offset, event in enumerate(events)
    ]


def asset_values(asset: Asset, position: int, now_us: int) -> dict[str, Any]:
    """The `assets` row of an asset whose asset_added event has sequence `position`."""
    return {
        "id": asset.id,
        "job_id": asset.job_id,
        "owner": asset.owner,
        "position": position,
        "asset_type": asset.asset_type,
        "uri": asset.uri,
        "storage_path": asset.storage_path,
        "size_bytes": asset.size_bytes,
        "content_type": asset.content_type,
        "sha256": asset.sha256,
        "metadata": dict(asset.metadata),
        "create_us": now_us,
    }
