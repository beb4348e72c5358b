"""Conversion between protobuf messages and the SDK's dataclasses.

The only SDK module that touches both, so the rest of the SDK (and its users) never see pb types.
Unknown enum values from a newer server map to ``UNSPECIFIED`` instead of failing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2

from jobwarden.client import _models
from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2

_STATUS_PREFIX = "JOB_STATUS_"
_STOP_PREFIX = "STOP_REASON_"


# --- scalars -------------------------------------------------------------------------------------


def status_from_pb(value: job_pb2.JobStatus.ValueType | int) -> _models.JobStatus:
    """Maps a ``jobwarden.v1.JobStatus`` value to :class:`JobStatus`."""
    try:
        return _models.JobStatus(
            job_pb2.JobStatus.Name(cast(job_pb2.JobStatus.ValueType, value)).removeprefix(_STATUS_PREFIX)
        )
    except ValueError:
        return _models.JobStatus.UNSPECIFIED


def status_to_pb(status: _models.JobStatus | str) -> job_pb2.JobStatus.ValueType:
    """Maps a :class:`JobStatus` (or its name, any case) to ``jobwarden.v1.JobStatus``."""
    return job_pb2.JobStatus.Value(_STATUS_PREFIX + _models.JobStatus(str(status).upper()).value)


def stop_reason_from_pb(value: job_pb2.StopReason.ValueType | int) -> _models.StopReason:
    """Maps a ``jobwarden.v1.StopReason`` value to :class:`StopReason`."""
    try:
        return _models.StopReason(
            job_pb2.StopReason.Name(cast(job_pb2.StopReason.ValueType, value)).removeprefix(_STOP_PREFIX)
        )
    except ValueError:
        return _models.StopReason.UNSPECIFIED


def stop_reason_to_pb(reason: _models.StopReason | str) -> job_pb2.StopReason.ValueType:
    """Maps a :class:`StopReason` (or its name, any case) to ``jobwarden.v1.StopReason``."""
    return job_pb2.StopReason.Value(_STOP_PREFIX + _models.StopReason(str(reason).upper()).value)


def time_from_pb(ts: timestamp_pb2.Timestamp) -> datetime:
    """Converts a Timestamp to an aware UTC datetime."""
    return ts.ToDatetime(tzinfo=UTC)


def time_to_pb(value: datetime) -> timestamp_pb2.Timestamp:
    """Converts a datetime to a Timestamp; a naive datetime is taken as UTC, not local time."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value)
    return ts


def duration_to_pb(seconds: float) -> duration_pb2.Duration:
    """Converts seconds to a Duration."""
    d = duration_pb2.Duration()
    d.FromTimedelta(timedelta(seconds=seconds))
    return d


def retry_policy_to_pb(policy: _models.RetryPolicy) -> job_pb2.RetryPolicy:
    """Converts a RetryPolicy; an unset backoff stays unset (the server's default)."""
    msg = job_pb2.RetryPolicy(multiplier=policy.multiplier)
    if policy.initial_backoff is not None:
        msg.initial_backoff.CopyFrom(duration_to_pb(policy.initial_backoff))
    if policy.max_backoff is not None:
        msg.max_backoff.CopyFrom(duration_to_pb(policy.max_backoff))
    return msg


def new_job_to_pb(job: _models.NewJob, request_id: str) -> job_service_pb2.CreateJobRequest:
    """Converts a NewJob to the CreateJob request (also each item of CreateJobs), with ``request_id``.

    Raises:
        ValueError: ``parameters`` is not JSON-compatible or holds a number beyond ±(2**53 - 1).
    """
    request = job_service_pb2.CreateJobRequest(
        job_type=job.job_type,
        parameters=dict_to_struct(job.parameters or {}, "parameters"),
        priority=job.priority,
        labels=dict(job.labels or {}),
        max_attempts=job.max_attempts,
        callback_url=job.callback_url,
        callback_statuses=[status_to_pb(s) for s in job.callback_statuses],
        hold=job.hold,
        request_id=request_id,
    )
    if job.retry_policy is not None:
        request.retry_policy.CopyFrom(retry_policy_to_pb(job.retry_policy))
    if job.run_after is not None:
        request.run_after.CopyFrom(time_to_pb(job.run_after))
    if job.deadline is not None:
        request.deadline.CopyFrom(time_to_pb(job.deadline))
    if job.queue_timeout is not None:
        request.queue_timeout.CopyFrom(duration_to_pb(job.queue_timeout))
    return request


def retry_policy_from_pb(msg: job_pb2.RetryPolicy) -> _models.RetryPolicy:
    """Converts a RetryPolicy message."""
    return _models.RetryPolicy(
        initial_backoff=msg.initial_backoff.ToTimedelta().total_seconds(),
        max_backoff=msg.max_backoff.ToTimedelta().total_seconds(),
        multiplier=msg.multiplier,
    )


MAX_SAFE_INTEGER = 2**53 - 1
"""The largest magnitude a number in parameters or results may have (JavaScript's
``Number.MAX_SAFE_INTEGER``): numbers travel as IEEE doubles, exact for every integer up to here only."""

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Converts a Struct to a plain dict; integral numbers come back as ints, others as floats.

    Struct holds only doubles, so ``{"width": 640}`` arrives as 640.0: an integral double within
    ±:data:`MAX_SAFE_INTEGER` can only have been sent as an integer (or as a float equal to one), and
    handlers doing ``range(width)`` need the int.
    """
    return {key: _value_to_python(value) for key, value in struct.fields.items()}


def _value_to_python(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = value.number_value
        # Beyond the safe range (only possible in data stored before the server refused it) the
        # double is not the integer that was sent: keep it a float rather than pretend it is exact.
        if number.is_integer() and -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return {key: _value_to_python(item) for key, item in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_value_to_python(item) for item in value.list_value.values]
    return None  # null_value, or a Value with no kind set


def event_kind_to_pb(kind: _models.EventKind | str) -> job_pb2.JobEventKind.ValueType:
    """Maps an :class:`EventKind` (or its name, any case) to ``jobwarden.v1.JobEventKind``.

    Raises:
        ValueError: An unknown kind (or ``UNKNOWN``, which names no kind the server has).
    """
    value = _models.EventKind(str(kind).lower())
    if value is _models.EventKind.UNKNOWN:
        raise ValueError("UNKNOWN is not a kind of event to filter by")
    return job_pb2.JobEventKind.Value(f"JOB_EVENT_KIND_{value.value.upper()}")


def message_from_pb(msg: job_pb2.JobLog) -> _models.JobMessage:
    """Converts a JobLog (UNSPECIFIED, or a level newer than this SDK, is INFO)."""
    try:
        name = job_pb2.MessageLevel.Name(msg.level)
        level = _models.MessageLevel(name.removeprefix("MESSAGE_LEVEL_"))
    except ValueError:
        level = _models.MessageLevel.INFO
    data = _value_to_python(msg.data) if msg.HasField("data") else None
    return _models.JobMessage(text=msg.message, level=level, data=data)


def message_level(level: _models.MessageLevel | str) -> _models.MessageLevel:
    """A :class:`MessageLevel` from itself or its name, any case.

    Raises:
        ValueError: An unknown level (the message names the known ones).
    """
    try:
        return _models.MessageLevel(str(level).upper())
    except ValueError:
        known = ", ".join(_models.MessageLevel)
        raise ValueError(f"unknown message level {level!r} (one of {known})") from None


def message_to_pb(message: _models.JobMessage | str, field: str = "message") -> job_pb2.JobLog:
    """Converts a message (a plain string is an INFO message with that text).

    Raises:
        ValueError: The level is unknown, or ``data`` is not JSON-compatible or holds a number that
            is not finite or beyond ±(2**53 - 1) (named by its path, e.g. ``messages[0].data.n``).
    """
    if isinstance(message, str):
        message = _models.JobMessage(text=message)
    level = message_level(message.level)
    msg = job_pb2.JobLog(
        message=message.text, level=job_pb2.MessageLevel.Value(f"MESSAGE_LEVEL_{level.value}")
    )
    if message.data is not None:
        _check_numbers(f"{field}.data", message.data)
        try:
            json_format.ParseDict(message.data, msg.data)
        except json_format.ParseError as err:
            raise ValueError(f"{field}.data: not a JSON value: {err}") from err
    return msg


def dict_to_struct(value: Mapping[str, Any], field: str = "value") -> struct_pb2.Struct:
    """Converts a JSON-compatible mapping to a Struct.

    Args:
        value: The mapping.
        field: Its name in error messages (``parameters``, ``result``).

    Raises:
        ValueError: A value is not JSON-compatible (str, number, bool, None, list, dict), or a number
            is not finite or beyond ±:data:`MAX_SAFE_INTEGER`, which a double cannot hold exactly
            (send such values as strings); the message names its path, e.g. ``parameters.ids[3]``.
    """
    _check_numbers(field, value)
    struct = struct_pb2.Struct()
    try:
        struct.update(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"not a JSON object: {err}") from err
    return struct


def _check_numbers(path: str, value: Any) -> None:
    """Refuses what the server would refuse (or silently round): checked here, before anything is sent."""
    if isinstance(value, bool):  # bool is an int subclass: never a number here
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            plain = isinstance(key, str) and _PLAIN_KEY.match(key)
            _check_numbers(path + (f".{key}" if plain else f"[{json.dumps(str(key))}]"), item)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_numbers(f"{path}[{index}]", item)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path}: {value!r} is not a JSON number (numbers must be finite)")
    elif isinstance(value, int | float) and abs(value) > MAX_SAFE_INTEGER:
        shown = repr(value) if len(repr(value)) <= 24 else f"{repr(value)[:20]}..."
        raise ValueError(
            f"{path}: {shown} is beyond ±{MAX_SAFE_INTEGER} (2**53 - 1), the largest integer a JSON "
            "number (an IEEE double) holds exactly; send such values as strings"
        )


# --- messages to models --------------------------------------------------------------------------


def progress_from_pb(msg: job_pb2.Progress) -> _models.Progress:
    """Converts a Progress message."""
    return _models.Progress(percent=msg.percent, message=msg.message, done=msg.done, total=msg.total)


def job_from_pb(msg: job_pb2.Job) -> _models.Job:
    """Converts a Job message."""
    return _models.Job(
        id=msg.id,
        owner=msg.owner,
        job_type=msg.job_type,
        lifecycle=msg.lifecycle,
        status=status_from_pb(msg.status),
        progress=progress_from_pb(msg.progress),
        parameters=struct_to_dict(msg.parameters),
        result=struct_to_dict(msg.result) if msg.HasField("result") else None,
        error=(
            _models.JobError(
                message=msg.error.message, reason=msg.error.reason, retryable=msg.error.retryable
            )
            if msg.HasField("error")
            else None
        ),
        stop_reason=stop_reason_from_pb(msg.stop_reason),
        attempt=msg.attempt,
        max_attempts=msg.max_attempts,
        priority=msg.priority,
        labels=dict(msg.labels),
        run_after=time_from_pb(msg.run_after) if msg.HasField("run_after") else None,
        deadline=time_from_pb(msg.deadline) if msg.HasField("deadline") else None,
        callback_url=msg.callback_url,
        cancel_requested=msg.cancel_requested,
        etag=msg.etag,
        create_time=time_from_pb(msg.create_time) if msg.HasField("create_time") else None,
        update_time=time_from_pb(msg.update_time) if msg.HasField("update_time") else None,
        start_time=time_from_pb(msg.start_time) if msg.HasField("start_time") else None,
        complete_time=time_from_pb(msg.complete_time) if msg.HasField("complete_time") else None,
        worker_id=msg.worker_id,
        retry_policy=retry_policy_from_pb(msg.retry_policy) if msg.HasField("retry_policy") else None,
        last_sequence=msg.last_sequence,
        queue_timeout=(
            msg.queue_timeout.ToTimedelta().total_seconds() if msg.HasField("queue_timeout") else None
        ),
        queue_expire_time=time_from_pb(msg.queue_expire_time) if msg.HasField("queue_expire_time") else None,
        callback_statuses=tuple(status_from_pb(s) for s in msg.callback_statuses),
        callback_state=callback_state_from_pb(msg.callback_state),
        callback_attempts=msg.callback_attempts,
        callback_error=msg.callback_error,
        retry_of=msg.retry_of,
        message_count=msg.message_count,
        parent_id=msg.parent_id,
        batch=batch_from_pb(msg.batch) if msg.HasField("batch") else None,
        traceparent=msg.traceparent,
        tracestate=msg.tracestate,
        stalled=msg.stalled,
        stall_time=time_from_pb(msg.stall_time) if msg.HasField("stall_time") else None,
        progress_time=time_from_pb(msg.progress_time) if msg.HasField("progress_time") else None,
    )


def batch_from_pb(msg: job_pb2.BatchCounts) -> _models.BatchCounts:
    """Converts a BatchCounts message."""
    return _models.BatchCounts(
        total=msg.total,
        created=msg.created,
        queued=msg.queued,
        running=msg.running,
        completed=msg.completed,
        partial=msg.partial,
        failed=msg.failed,
        cancelled=msg.cancelled,
        expired=msg.expired,
    )


def callback_state_from_pb(value: job_pb2.CallbackState.ValueType | int) -> _models.CallbackState:
    """Converts a CallbackState (UNSPECIFIED, or a value newer than this SDK, is NONE)."""
    try:
        name = job_pb2.CallbackState.Name(cast(job_pb2.CallbackState.ValueType, value))
        return _models.CallbackState(name.removeprefix("CALLBACK_STATE_"))
    except ValueError:
        return _models.CallbackState.NONE


def callback_attempt_from_pb(msg: job_pb2.CallbackAttempt) -> _models.CallbackAttempt:
    """Converts a CallbackAttempt event payload."""
    return _models.CallbackAttempt(
        webhook_id=msg.webhook_id,
        attempt=msg.attempt,
        http_status=msg.http_status,
        error=msg.error,
        duration=msg.duration.ToTimedelta().total_seconds(),
        state=callback_state_from_pb(msg.state),
        next_attempt_time=time_from_pb(msg.next_attempt_time) if msg.HasField("next_attempt_time") else None,
    )


def asset_from_pb(msg: job_pb2.Asset) -> _models.Asset:
    """Converts an Asset message."""
    return _models.Asset(
        id=msg.id,
        job_id=msg.job_id,
        owner=msg.owner,
        asset_type=msg.asset_type,
        uri=msg.uri,
        storage_path=msg.storage_path,
        size_bytes=msg.size_bytes,
        content_type=msg.content_type,
        sha256=msg.sha256,
        metadata=dict(msg.metadata),
        create_time=time_from_pb(msg.create_time) if msg.HasField("create_time") else None,
    )


def event_from_pb(msg: job_pb2.JobEvent) -> _models.JobEvent:
    """Converts a JobEvent message; the oneof ``kind`` becomes :attr:`JobEvent.kind`."""
    common: dict[str, Any] = {
        "job_id": msg.job_id,
        "sequence": msg.sequence,
        "create_time": time_from_pb(msg.create_time) if msg.HasField("create_time") else None,
        "actor": msg.actor,
    }
    which = msg.WhichOneof("kind")
    if which == "created":
        return _models.JobEvent(
            kind=_models.EventKind.CREATED, to_status=status_from_pb(msg.created.status), **common
        )
    if which == "transition":
        t = msg.transition
        return _models.JobEvent(
            kind=_models.EventKind.TRANSITION,
            from_status=status_from_pb(t.from_status),
            to_status=status_from_pb(t.to_status),
            reason=t.reason,
            stop_reason=stop_reason_from_pb(t.stop_reason),
            forced=t.forced,
            bypassed_table=t.bypassed_table,
            **common,
        )
    if which == "progress":
        return _models.JobEvent(
            kind=_models.EventKind.PROGRESS, progress=progress_from_pb(msg.progress), **common
        )
    if which == "asset_added":
        return _models.JobEvent(
            kind=_models.EventKind.ASSET_ADDED, asset=asset_from_pb(msg.asset_added), **common
        )
    if which == "log":
        message = message_from_pb(msg.log)
        return _models.JobEvent(
            kind=_models.EventKind.LOG, message=message.text, level=message.level, data=message.data, **common
        )
    if which == "cancel_requested":
        return _models.JobEvent(
            kind=_models.EventKind.CANCEL_REQUESTED, reason=msg.cancel_requested.reason, **common
        )
    if which == "callback_attempt":
        return _models.JobEvent(
            kind=_models.EventKind.CALLBACK_ATTEMPT,
            callback=callback_attempt_from_pb(msg.callback_attempt),
            **common,
        )
    if which == "stalled":
        return _models.JobEvent(kind=_models.EventKind.STALLED, stall=stall_from_pb(msg.stalled), **common)
    # A kind added to the API after this SDK was built: keep the envelope rather than fail the watch.
    return _models.JobEvent(kind=_models.EventKind.UNKNOWN, **common)


def stall_from_pb(msg: job_pb2.JobStalled) -> _models.Stall:
    """Converts a JobStalled message."""
    return _models.Stall(
        since=time_from_pb(msg.since) if msg.HasField("since") else None,
        progress=progress_from_pb(msg.progress),
        stall_after=msg.stall_after.ToTimedelta().total_seconds(),
        failed=msg.failed,
    )


def _seconds_or_none(msg: Any, field: str) -> float | None:
    if not msg.HasField(field):
        return None
    seconds: float = getattr(msg, field).ToTimedelta().total_seconds()
    return seconds


def duration_stats_from_pb(msg: job_service_pb2.DurationStats) -> _models.DurationStats:
    """Converts a DurationStats message."""
    return _models.DurationStats(
        count=msg.count,
        p50=_seconds_or_none(msg, "p50"),
        p95=_seconds_or_none(msg, "p95"),
        p99=_seconds_or_none(msg, "p99"),
        sampled=msg.sampled,
    )


def job_stats_from_pb(msg: job_service_pb2.GetJobStatsResponse) -> _models.JobStats:
    """Converts a GetJobStats answer."""
    return _models.JobStats(
        start_time=time_from_pb(msg.start_time) if msg.HasField("start_time") else None,
        end_time=time_from_pb(msg.end_time) if msg.HasField("end_time") else None,
        job_types=tuple(
            _models.JobTypeStats(
                job_type=t.job_type,
                counts={
                    status: getattr(t.counts, status.value.lower())
                    for status in _models.JobStatus
                    if status is not _models.JobStatus.UNSPECIFIED
                },
                success_rate=t.success_rate,
                completion_time=duration_stats_from_pb(t.completion_time),
                run_time=duration_stats_from_pb(t.run_time),
                queue_depth=t.queue_depth,
                oldest_queued_age=_seconds_or_none(t, "oldest_queued_age"),
                running=t.running,
                stalled=t.stalled,
            )
            for t in msg.job_types
        ),
    )


def claim_from_pb(msg: worker_service_pb2.JobClaim) -> _models.Claim:
    """Converts a JobClaim message."""
    return _models.Claim(
        job=job_from_pb(msg.job),
        lease_token=msg.lease_token,
        lease_expire_time=time_from_pb(msg.lease_expire_time) if msg.HasField("lease_expire_time") else None,
    )


def lifecycle_from_pb(msg: job_pb2.Lifecycle) -> _models.Lifecycle:
    """Converts a Lifecycle message."""
    return _models.Lifecycle(
        name=msg.name,
        initial_status=status_from_pb(msg.initial_status),
        statuses=tuple(status_from_pb(s) for s in msg.statuses),
        terminal_statuses=frozenset(status_from_pb(s) for s in msg.terminal_statuses),
        transitions=frozenset(
            (status_from_pb(t.from_status), status_from_pb(t.to_status)) for t in msg.transitions
        ),
    )


# --- models to messages --------------------------------------------------------------------------


def progress_to_pb(progress: _models.Progress) -> job_pb2.Progress:
    """Converts a Progress."""
    return job_pb2.Progress(
        percent=progress.percent, message=progress.message, done=progress.done, total=progress.total
    )


def asset_to_pb(asset: _models.Asset) -> job_pb2.Asset:
    """Converts an Asset (server-set fields included when present)."""
    msg = job_pb2.Asset(
        id=asset.id,
        job_id=asset.job_id,
        owner=asset.owner,
        asset_type=asset.asset_type,
        uri=asset.uri,
        storage_path=asset.storage_path,
        size_bytes=asset.size_bytes,
        content_type=asset.content_type,
        sha256=asset.sha256,
        metadata=asset.metadata,
    )
    if asset.create_time is not None:
        msg.create_time.CopyFrom(time_to_pb(asset.create_time))
    return msg


def job_to_pb(job: _models.Job) -> job_pb2.Job:
    """Converts a Job; used by tests and fakes, since clients never send whole jobs."""
    msg = job_pb2.Job(
        id=job.id,
        owner=job.owner,
        job_type=job.job_type,
        lifecycle=job.lifecycle,
        status=status_to_pb(job.status),
        progress=progress_to_pb(job.progress),
        parameters=dict_to_struct(job.parameters, "parameters"),
        stop_reason=stop_reason_to_pb(job.stop_reason),
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        priority=job.priority,
        labels=job.labels,
        callback_url=job.callback_url,
        cancel_requested=job.cancel_requested,
        etag=job.etag,
        worker_id=job.worker_id,
        last_sequence=job.last_sequence,
        callback_statuses=[status_to_pb(s) for s in job.callback_statuses],
        callback_attempts=job.callback_attempts,
        callback_error=job.callback_error,
        retry_of=job.retry_of,
        parent_id=job.parent_id,
        traceparent=job.traceparent,
        tracestate=job.tracestate,
        stalled=job.stalled,
    )
    if job.batch is not None:
        msg.batch.CopyFrom(job_pb2.BatchCounts(**dataclasses.asdict(job.batch)))
    if job.callback_state is not _models.CallbackState.NONE:
        msg.callback_state = job_pb2.CallbackState.Value(f"CALLBACK_STATE_{job.callback_state.value}")
    if job.result is not None:
        msg.result.CopyFrom(dict_to_struct(job.result, "result"))
    if job.retry_policy is not None:
        msg.retry_policy.CopyFrom(retry_policy_to_pb(job.retry_policy))
    if job.queue_timeout is not None:
        msg.queue_timeout.CopyFrom(duration_to_pb(job.queue_timeout))
    if job.error is not None:
        msg.error.CopyFrom(
            job_pb2.JobError(
                message=job.error.message, reason=job.error.reason, retryable=job.error.retryable
            )
        )
    times = (
        "run_after",
        "deadline",
        "create_time",
        "update_time",
        "start_time",
        "complete_time",
        "queue_expire_time",
        "stall_time",
        "progress_time",
    )
    for name in times:
        value: datetime | None = getattr(job, name)
        if value is not None:
            getattr(msg, name).CopyFrom(time_to_pb(value))
    return msg


def event_to_pb(event: _models.JobEvent) -> job_pb2.JobEvent:
    """Converts a JobEvent; used by tests and fakes."""
    msg = job_pb2.JobEvent(job_id=event.job_id, sequence=event.sequence, actor=event.actor)
    if event.create_time is not None:
        msg.create_time.CopyFrom(time_to_pb(event.create_time))
    kind = event.kind
    if kind == _models.EventKind.CREATED:
        msg.created.status = status_to_pb(event.to_status or _models.JobStatus.UNSPECIFIED)
    elif kind == _models.EventKind.TRANSITION:
        msg.transition.from_status = status_to_pb(event.from_status or _models.JobStatus.UNSPECIFIED)
        msg.transition.to_status = status_to_pb(event.to_status or _models.JobStatus.UNSPECIFIED)
        msg.transition.reason = event.reason
        msg.transition.stop_reason = stop_reason_to_pb(event.stop_reason or _models.StopReason.UNSPECIFIED)
        msg.transition.forced = event.forced
        msg.transition.bypassed_table = event.bypassed_table
    elif kind == _models.EventKind.PROGRESS:
        msg.progress.CopyFrom(progress_to_pb(event.progress or _models.Progress()))
    elif kind == _models.EventKind.ASSET_ADDED and event.asset is not None:
        msg.asset_added.CopyFrom(asset_to_pb(event.asset))
    elif kind == _models.EventKind.LOG:
        msg.log.CopyFrom(
            message_to_pb(
                _models.JobMessage(
                    text=event.message, level=event.level or _models.MessageLevel.INFO, data=event.data
                )
            )
        )
    elif kind == _models.EventKind.CANCEL_REQUESTED:
        msg.cancel_requested.reason = event.reason
    elif kind == _models.EventKind.CALLBACK_ATTEMPT and event.callback is not None:
        msg.callback_attempt.CopyFrom(callback_attempt_to_pb(event.callback))
    elif kind == _models.EventKind.STALLED and event.stall is not None:
        msg.stalled.CopyFrom(
            job_pb2.JobStalled(
                progress=progress_to_pb(event.stall.progress),
                stall_after=duration_to_pb(event.stall.stall_after),
                failed=event.stall.failed,
            )
        )
        if event.stall.since is not None:
            msg.stalled.since.CopyFrom(time_to_pb(event.stall.since))
    return msg


def callback_attempt_to_pb(attempt: _models.CallbackAttempt) -> job_pb2.CallbackAttempt:
    """Converts a CallbackAttempt; used by tests and fakes."""
    msg = job_pb2.CallbackAttempt(
        webhook_id=attempt.webhook_id,
        attempt=attempt.attempt,
        http_status=attempt.http_status,
        error=attempt.error,
        duration=duration_to_pb(attempt.duration),
    )
    if attempt.state is not _models.CallbackState.NONE:
        msg.state = job_pb2.CallbackState.Value(f"CALLBACK_STATE_{attempt.state.value}")
    if attempt.next_attempt_time is not None:
        msg.next_attempt_time.CopyFrom(time_to_pb(attempt.next_attempt_time))
    return msg
