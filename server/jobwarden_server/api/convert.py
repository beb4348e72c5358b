"""Protobuf <-> domain conversion: the only server module that knows both shapes.

Decoding validates what the wire can get wrong (unknown enum values, unset timestamps); the domain's
limits check the rest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from jobwarden.v1 import job_pb2, job_service_pb2
from jobwarden_server.domain import limits, messages
from jobwarden_server.domain.errors import InvalidArgument
from jobwarden_server.domain.idempotency import ANONYMOUS, RequestKey
from jobwarden_server.domain.lifecycle import Lifecycle
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
from jobwarden_server.domain.stats import Percentiles
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.service.stats import Stats, TypeStats

E = TypeVar("E", JobStatus, StopReason)


# --- scalars -------------------------------------------------------------------------------------


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def timestamp(value: dt.datetime | None) -> timestamp_pb2.Timestamp | None:
    """A datetime as a Timestamp (None stays unset)."""
    if value is None:
        return None
    # Integer arithmetic on the microseconds: exact, and several times cheaper than FromDatetime's
    # calendar.timegm (a claim or a completion sends a job with up to ten times).
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)  # FromDatetime's reading of a naive time
    micros = (value - _EPOCH) // _MICROSECOND
    seconds, micros = divmod(micros, 1_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=micros * 1000)


def time_in(message: Any, field: str) -> dt.datetime | None:
    """An optional Timestamp field as an aware UTC datetime."""
    if not message.HasField(field):
        return None
    ts: timestamp_pb2.Timestamp = getattr(message, field)
    if not 0 <= ts.nanos < 1_000_000_000:
        raise InvalidArgument(field, "has out-of-range nanos")
    try:
        return ts.ToDatetime(tzinfo=dt.UTC)
    except (ValueError, OverflowError) as err:
        raise InvalidArgument(field, "is not a valid time") from err


def seconds_in(message: Any, field: str, default: float) -> float:
    """An optional Duration field in seconds (`default` when unset)."""
    seconds = seconds_or_none(message, field)
    return default if seconds is None else seconds


def seconds_or_none(message: Any, field: str) -> float | None:
    """An optional Duration field in seconds; None when unset."""
    if not message.HasField(field):
        return None
    duration: duration_pb2.Duration = getattr(message, field)
    return float(duration.seconds) + duration.nanos / 1e9


def request_of(message: Any) -> RequestKey:
    """The idempotency key of a request: its request_id and a fingerprint of everything else in it.

    The one fingerprint scheme for every mutating call (each CreateJobs item is a CreateJobRequest):
    SHA-256 of the message's deterministic encoding without its request_id (nor validate_only)."""
    request_id: str = message.request_id
    if not request_id:
        return ANONYMOUS
    if len(request_id) > limits.MAX_ID:
        raise InvalidArgument("request_id", f"is longer than {limits.MAX_ID} characters", reason="TOO_LARGE")
    rest = type(message)()
    rest.CopyFrom(message)
    rest.ClearField("request_id")
    if "validate_only" in rest.DESCRIPTOR.fields_by_name:
        # A dry run is the same request: it must get the answer a retry of the real call would get.
        rest.ClearField("validate_only")
    digest = hashlib.sha256(rest.SerializeToString(deterministic=True)).hexdigest()
    return RequestKey(id=request_id, fingerprint=digest)


def retry_in(request: Any) -> dict[str, float | None]:
    """CreateJobRequest.retry_policy as JobSpec keyword arguments (None: the server's default)."""
    if not request.HasField("retry_policy"):
        return {}
    policy = request.retry_policy
    return {
        "retry_initial_backoff_s": seconds_in(policy, "initial_backoff", 0.0)
        if policy.HasField("initial_backoff")
        else None,
        "retry_max_backoff_s": seconds_in(policy, "max_backoff", 0.0)
        if policy.HasField("max_backoff")
        else None,
        "retry_multiplier": policy.multiplier or None,
    }


def struct_in(field: str, value: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as a plain dict; NaN and infinities (which JSON cannot hold) are INVALID_ARGUMENT."""
    try:
        return json_format.MessageToDict(value)
    except ValueError as err:
        raise InvalidArgument(field, "numbers must be finite (no NaN or Infinity)") from err


def duration(seconds: float) -> duration_pb2.Duration:
    """Seconds as a Duration."""
    out = duration_pb2.Duration()
    out.FromNanoseconds(round(seconds * 1e9))
    return out


def struct_out(value: Mapping[str, Any] | None) -> struct_pb2.Struct | None:
    """A dict as a Struct (None stays unset)."""
    if value is None:
        return None
    out = struct_pb2.Struct()
    out.update(value)
    return out


def _enum_in(kind: type[E], pb_enum: Any, prefix: str, field: str, value: int) -> E:
    try:
        name = pb_enum.Name(value)
    except ValueError as err:
        raise InvalidArgument(field, f"unknown value {value}") from err
    if name == f"{prefix}UNSPECIFIED":
        raise InvalidArgument(field, "must be set")
    return kind(name.removeprefix(prefix))


def status_in(field: str, value: int) -> JobStatus:
    """A wire JobStatus (unknown or UNSPECIFIED is INVALID_ARGUMENT)."""
    return _enum_in(JobStatus, job_pb2.JobStatus, "JOB_STATUS_", field, value)


def stop_reason_in(field: str, value: int, *, allow_unspecified: bool = False) -> StopReason:
    """A wire StopReason."""
    if allow_unspecified and value == 0:
        return StopReason.UNSPECIFIED
    return _enum_in(StopReason, job_pb2.StopReason, "STOP_REASON_", field, value)


# The wire's number of each domain value, looked up once: every job sent carries several of them.
_STATUSES_OUT = {s: job_pb2.JobStatus.Value(f"JOB_STATUS_{s.value}") for s in JobStatus}
_CALLBACK_STATES_OUT = {
    s: job_pb2.CallbackState.Value(f"CALLBACK_STATE_{s.value or 'UNSPECIFIED'}") for s in CallbackState
}
_STOP_REASONS_OUT = {r: job_pb2.StopReason.Value(f"STOP_REASON_{r.value}") for r in StopReason}


def status_out(value: JobStatus) -> job_pb2.JobStatus.ValueType:
    """A JobStatus on the wire."""
    return _STATUSES_OUT[value]


def callback_state_out(value: CallbackState) -> job_pb2.CallbackState.ValueType:
    """A CallbackState on the wire (NONE is UNSPECIFIED)."""
    return _CALLBACK_STATES_OUT[value]


def stop_reason_out(value: StopReason) -> job_pb2.StopReason.ValueType:
    """A StopReason on the wire."""
    return _STOP_REASONS_OUT[value]


_WAITING = (JobStatus.CREATED, JobStatus.QUEUED)
"""The statuses a job waits to start in: only there does its queue_expire_time mean anything."""


# --- records -------------------------------------------------------------------------------------


def progress_in(value: job_pb2.Progress) -> Progress:
    """Wire progress (range checks are the domain's)."""
    return Progress(percent=value.percent, message=value.message, done=value.done, total=value.total)


def progress_out(value: Progress) -> job_pb2.Progress:
    """Progress on the wire."""
    return job_pb2.Progress(percent=value.percent, message=value.message, done=value.done, total=value.total)


def error_in(value: job_pb2.JobError) -> JobError:
    """A wire JobError."""
    return JobError(message=value.message, reason=value.reason, retryable=value.retryable)


def job_out(job: Job) -> job_pb2.Job:
    """A job on the wire. The lease token is never part of it: only the claimer gets it."""
    out = job_pb2.Job(
        id=job.id,
        owner=job.owner,
        job_type=job.job_type,
        lifecycle=job.lifecycle,
        status=status_out(job.status),
        progress=progress_out(job.progress),
        parameters=struct_out(job.parameters),
        result=struct_out(job.result),
        stop_reason=stop_reason_out(job.stop_reason),
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        priority=job.priority,
        labels=dict(job.labels),
        run_after=timestamp(job.run_after),
        deadline=timestamp(job.deadline),
        queue_timeout=None if job.queue_timeout_s is None else duration(job.queue_timeout_s),
        queue_expire_time=timestamp(job.queue_expire_time) if job.status in _WAITING else None,
        callback_url=job.callback_url,
        cancel_requested=job.cancel_requested,
        etag=job.etag,
        create_time=timestamp(job.create_time),
        update_time=timestamp(job.update_time),
        start_time=timestamp(job.start_time),
        complete_time=timestamp(job.complete_time),
        worker_id=job.worker_id,
        last_sequence=job.last_sequence,
        callback_statuses=[_STATUSES_OUT[s] for s in _STATUSES_OUT if s in job.callback_statuses]
        if job.callback_statuses
        else None,
        callback_state=callback_state_out(job.callback_state),
        callback_attempts=job.callback_attempts,
        callback_error=job.callback_error,
        retry_of=job.retry_of,
        message_count=job.message_count,
        parent_id=job.parent_id,
        batch=batch_out(job.batch),
        traceparent=job.trace.traceparent if job.trace is not None else "",
        tracestate=job.trace.tracestate if job.trace is not None else "",
        stalled=job.stalled,
        stall_time=timestamp(job.stall_time),
        progress_time=timestamp(job.progress_time),
    )
    if job.retry is not None:
        out.retry_policy.CopyFrom(
            job_pb2.RetryPolicy(
                initial_backoff=duration(job.retry.initial_backoff_s),
                max_backoff=duration(job.retry.max_backoff_s),
                multiplier=job.retry.multiplier,
            )
        )
    if job.error is not None:
        out.error.CopyFrom(
            job_pb2.JobError(
                message=job.error.message, reason=job.error.reason, retryable=job.error.retryable
            )
        )
    return out


def batch_out(counts: BatchCounts | None) -> job_pb2.BatchCounts | None:
    """A parent's counts on the wire (None stays unset: not a parent)."""
    if counts is None:
        return None
    return job_pb2.BatchCounts(
        total=counts.total,
        created=counts.created,
        queued=counts.queued,
        running=counts.running,
        completed=counts.completed,
        partial=counts.partial,
        failed=counts.failed,
        cancelled=counts.cancelled,
        expired=counts.expired,
    )


def asset_out(asset: Asset) -> job_pb2.Asset:
    """An asset on the wire."""
    return job_pb2.Asset(
        id=asset.id,
        job_id=asset.job_id,
        owner=asset.owner,
        asset_type=asset.asset_type,
        uri=asset.uri,
        storage_path=asset.storage_path,
        size_bytes=asset.size_bytes,
        content_type=asset.content_type,
        sha256=asset.sha256,
        metadata=dict(asset.metadata),
        create_time=timestamp(asset.create_time),
    )


def event_out(event: Event) -> job_pb2.JobEvent:
    """An event on the wire, its payload in the oneof that matches its kind."""
    out = job_pb2.JobEvent(
        job_id=event.job_id,
        sequence=event.sequence,
        create_time=timestamp(event.create_time),
        actor=event.actor,
    )
    data = event.data
    match event.kind:
        case EventKind.CREATED:
            out.created.status = status_out(JobStatus(data["status"]))
        case EventKind.TRANSITION:
            out.transition.CopyFrom(
                job_pb2.JobTransition(
                    from_status=status_out(JobStatus(data["from"])),
                    to_status=status_out(JobStatus(data["to"])),
                    reason=str(data.get("reason", "")),
                    stop_reason=stop_reason_out(StopReason(data.get("stop_reason", "UNSPECIFIED"))),
                    forced=bool(data.get("forced", False)),
                    bypassed_table=bool(data.get("bypassed_table", False)),
                )
            )
        case EventKind.PROGRESS:
            out.progress.CopyFrom(
                progress_out(
                    Progress(
                        percent=float(data.get("percent", 0.0)),
                        message=str(data.get("message", "")),
                        done=int(data.get("done", 0)),
                        total=int(data.get("total", 0)),
                    )
                )
            )
        case EventKind.ASSET_ADDED:
            if event.asset is not None:
                out.asset_added.CopyFrom(asset_out(event.asset))
        case EventKind.LOG:
            out.log.CopyFrom(message_out(messages.from_event_data(data)))
        case EventKind.CANCEL_REQUESTED:
            out.cancel_requested.reason = str(data.get("reason", ""))
        case EventKind.CALLBACK_ATTEMPT:
            out.callback_attempt.CopyFrom(_callback_attempt_out(data))
        case EventKind.STALLED:
            out.stalled.CopyFrom(_stalled_out(data))
    return out


def _stalled_out(data: Mapping[str, Any]) -> job_pb2.JobStalled:
    since = data.get("since")
    return job_pb2.JobStalled(
        since=timestamp(dt.datetime.fromisoformat(since)) if isinstance(since, str) else None,
        progress=progress_out(
            Progress(
                percent=float(data.get("percent", 0.0)),
                message=str(data.get("message", "")),
                done=int(data.get("done", 0)),
                total=int(data.get("total", 0)),
            )
        ),
        stall_after=duration(float(data.get("stall_after_s", 0.0))),
        failed=bool(data.get("failed", False)),
    )


def _callback_attempt_out(data: Mapping[str, Any]) -> job_pb2.CallbackAttempt:
    out = job_pb2.CallbackAttempt(
        webhook_id=str(data.get("webhook_id", "")),
        attempt=int(data.get("attempt", 0)),
        http_status=int(data.get("http_status", 0)),
        error=str(data.get("error", "")),
        duration=duration(float(data.get("duration_s", 0.0))),
        state=callback_state_out(CallbackState(data.get("state", ""))),
    )
    next_us = data.get("next_attempt_us")
    if next_us is not None:
        out.next_attempt_time.FromMicroseconds(int(next_us))
    return out


def message_in(field: str, value: job_pb2.JobLog) -> messages.JobMessage:
    """A wire JobLog as a message (UNSPECIFIED level: INFO; bounds are the domain's)."""
    level = messages.MessageLevel.INFO
    if value.level:
        try:
            name = job_pb2.MessageLevel.Name(value.level)
        except ValueError as err:
            raise InvalidArgument(f"{field}.level", f"unknown value {value.level}") from err
        level = messages.MessageLevel(name.removeprefix("MESSAGE_LEVEL_"))
    data: Any = None
    if value.HasField("data"):
        try:
            data = json_format.MessageToDict(value.data)
        except ValueError as err:
            raise InvalidArgument(f"{field}.data", "numbers must be finite (no NaN or Infinity)") from err
    return messages.JobMessage(text=value.message, level=level, data=data)


def message_out(value: messages.JobMessage) -> job_pb2.JobLog:
    """A message on the wire."""
    out = job_pb2.JobLog(
        message=value.text, level=job_pb2.MessageLevel.Value(f"MESSAGE_LEVEL_{value.level.value}")
    )
    if value.data is not None:
        json_format.ParseDict(value.data, out.data)
    return out


_EVENT_KINDS = {f"JOB_EVENT_KIND_{kind.name}": kind for kind in EventKind}


def event_kinds_in(field: str, values: Iterable[job_pb2.JobEventKind.ValueType]) -> frozenset[EventKind]:
    """A repeated JobEventKind filter (UNSPECIFIED or unknown: INVALID_ARGUMENT)."""
    kinds = set()
    for value in values:
        try:
            name = job_pb2.JobEventKind.Name(value)
        except ValueError as err:
            raise InvalidArgument(field, f"unknown value {value}") from err
        if name not in _EVENT_KINDS:
            raise InvalidArgument(field, f"{name} is not a kind of event")
        kinds.add(_EVENT_KINDS[name])
    return frozenset(kinds)


def lifecycle_out(table: Lifecycle) -> job_pb2.Lifecycle:
    """A lifecycle table on the wire, in a stable order."""
    order = list(JobStatus)
    return job_pb2.Lifecycle(
        name=table.name,
        initial_status=status_out(table.initial),
        statuses=[status_out(s) for s in order if s in table.statuses],
        terminal_statuses=[status_out(s) for s in order if s in table.statuses and s.terminal],
        transitions=[
            job_pb2.LifecycleTransition(from_status=status_out(a), to_status=status_out(b))
            for a, b in sorted(table.transitions, key=lambda e: (order.index(e[0]), order.index(e[1])))
        ],
    )


def statuses_in(field: str, values: Iterable[int]) -> frozenset[JobStatus]:
    """A repeated JobStatus filter."""
    return frozenset(status_in(field, v) for v in values)


def stop_reasons_in(field: str, values: Iterable[int]) -> frozenset[StopReason]:
    """A repeated StopReason filter."""
    return frozenset(stop_reason_in(field, v) for v in values)


# --- statistics ----------------------------------------------------------------------------------


def stats_out(stats: Stats) -> job_service_pb2.GetJobStatsResponse:
    """GetJobStats' answer on the wire."""
    return job_service_pb2.GetJobStatsResponse(
        start_time=timestamp(stats.window.start),
        end_time=timestamp(stats.window.end),
        job_types=[_type_stats_out(t) for t in stats.types],
    )


def _type_stats_out(stats: TypeStats) -> job_service_pb2.JobTypeStats:
    counts = {status.value.lower(): stats.counts.get(status, 0) for status in JobStatus}
    return job_service_pb2.JobTypeStats(
        job_type=stats.job_type,
        counts=job_service_pb2.JobStatusCounts(total=sum(counts.values()), **counts),
        success_rate=stats.success_rate,
        completion_time=_percentiles_out(stats.completion),
        run_time=_percentiles_out(stats.run),
        queue_depth=stats.queued,
        oldest_queued_age=None if stats.oldest_queued_age_s is None else duration(stats.oldest_queued_age_s),
        running=stats.running,
        stalled=stats.stalled,
    )


def _percentiles_out(value: Percentiles) -> job_service_pb2.DurationStats:
    def at(seconds: float | None) -> duration_pb2.Duration | None:
        return None if seconds is None else duration(seconds)

    return job_service_pb2.DurationStats(
        count=value.count, p50=at(value.p50), p95=at(value.p95), p99=at(value.p99), sampled=value.sampled
    )
