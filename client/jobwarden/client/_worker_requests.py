"""The requests of a worker's writes, and what their answers mean: built once for both ways of
sending them (a unary call each, or a step of a Work session)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from jobwarden.client import _convert, _models
from jobwarden.client._calls import idempotency_key
from jobwarden.v1 import worker_service_pb2 as pb


def progress(
    job_id: str,
    lease_token: str,
    percent: float,
    message: str,
    done: int,
    total: int,
    request_id: str | None,
) -> pb.ReportProgressRequest:
    """A ReportProgress request (a request_id is made when none is given)."""
    return pb.ReportProgressRequest(
        job_id=job_id,
        lease_token=lease_token,
        progress=_convert.progress_to_pb(
            _models.Progress(percent=percent, message=message, done=done, total=total)
        ),
        request_id=idempotency_key(request_id),
    )


def progress_answer(response: pb.ReportProgressResponse) -> tuple[datetime | None, bool]:
    """The renewed lease expiry (if any) and whether a cancel was requested."""
    expire = (
        _convert.time_from_pb(response.lease_expire_time) if response.HasField("lease_expire_time") else None
    )
    return expire, response.cancel_requested


def asset(
    job_id: str,
    lease_token: str,
    asset_type: str,
    uri: str,
    *,
    storage_path: str,
    size_bytes: int,
    content_type: str,
    sha256: str,
    metadata: Mapping[str, str] | None,
    request_id: str | None,
) -> pb.AddAssetRequest:
    """An AddAsset request."""
    value = _models.Asset(
        asset_type=asset_type,
        uri=uri,
        storage_path=storage_path,
        size_bytes=size_bytes,
        content_type=content_type,
        sha256=sha256,
        metadata=dict(metadata or {}),
    )
    return pb.AddAssetRequest(
        job_id=job_id,
        lease_token=lease_token,
        asset=_convert.asset_to_pb(value),
        request_id=idempotency_key(request_id),
    )


def messages(
    job_id: str,
    lease_token: str,
    added: Iterable[_models.JobMessage | str],
    request_id: str | None,
) -> pb.AddMessagesRequest:
    """An AddMessages request; ValueError if a message cannot be sent (see _convert.message_to_pb)."""
    return pb.AddMessagesRequest(
        job_id=job_id,
        lease_token=lease_token,
        messages=[_convert.message_to_pb(m, f"messages[{i}]") for i, m in enumerate(added)],
        request_id=idempotency_key(request_id),
    )


def messages_answer(response: pb.AddMessagesResponse) -> list[_models.JobEvent]:
    """The log events the messages were recorded as, in order."""
    return [_convert.event_from_pb(e) for e in response.events]


def complete(
    job_id: str,
    lease_token: str,
    result: Mapping[str, Any] | None,
    partial: bool,
    error_message: str,
    request_id: str | None,
) -> pb.CompleteJobRequest:
    """A CompleteJob request; ValueError if `result` cannot be sent (see _convert.dict_to_struct)."""
    request = pb.CompleteJobRequest(
        job_id=job_id,
        lease_token=lease_token,
        result=_convert.dict_to_struct(result or {}, "result"),
        partial=partial,
        request_id=idempotency_key(request_id),
    )
    if partial or error_message:
        request.error.message = error_message
    return request


def fail(
    job_id: str,
    lease_token: str,
    message: str,
    reason: str,
    retryable: bool,
    stop_reason: _models.StopReason | str | None,
    request_id: str | None,
) -> pb.FailJobRequest:
    """A FailJob request."""
    request = pb.FailJobRequest(
        job_id=job_id, lease_token=lease_token, request_id=idempotency_key(request_id)
    )
    request.error.message = message
    request.error.reason = reason
    request.error.retryable = retryable
    if stop_reason is not None:
        request.stop_reason = _convert.stop_reason_to_pb(stop_reason)
    return request
