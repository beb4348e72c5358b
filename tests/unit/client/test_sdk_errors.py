"""Decoding failed calls into typed errors, from real serialized google.rpc.Status trailers."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from jobwarden import errors
from jobwarden.v1 import error_reason_pb2


def _status(
    code: grpc.StatusCode,
    message: str,
    *,
    reason: str | None = None,
    domain: str = errors.DOMAIN,
    metadata: dict[str, str] | None = None,
    violations: dict[str, str] | None = None,
    retry_seconds: int | None = None,
) -> status_pb2.Status:
    status = status_pb2.Status(code=code.value[0], message=message)
    if reason is not None:
        status.details.add().Pack(
            error_details_pb2.ErrorInfo(domain=domain, reason=reason, metadata=metadata or {})
        )
    if violations:
        bad = error_details_pb2.BadRequest()
        for field, description in violations.items():
            bad.field_violations.add(field=field, description=description)
        status.details.add().Pack(bad)
    if retry_seconds is not None:
        status.details.add().Pack(
            error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_seconds))
        )
    return status


def _aio_error(status: status_pb2.Status | None, code: grpc.StatusCode, message: str) -> grpc.aio.AioRpcError:
    trailing = grpc.aio.Metadata()
    if status is not None:
        trailing.add("grpc-status-details-bin", status.SerializeToString())
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailing, details=message)


def _error(code: grpc.StatusCode, message: str = "boom", **kwargs: object) -> errors.JobwardenError:
    return errors.from_rpc_error(_aio_error(_status(code, message, **kwargs), code, message))  # type: ignore[arg-type]


REASONS = [
    ("INVALID_ARGUMENT", grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidArgument),
    ("NOT_FOUND", grpc.StatusCode.NOT_FOUND, errors.NotFound),
    ("INVALID_TRANSITION", grpc.StatusCode.FAILED_PRECONDITION, errors.InvalidTransition),
    ("LEASE_LOST", grpc.StatusCode.ABORTED, errors.LeaseLost),
    ("PROGRESS_OUT_OF_RANGE", grpc.StatusCode.INVALID_ARGUMENT, errors.ProgressOutOfRange),
    ("REQUEST_ID_MISMATCH", grpc.StatusCode.ALREADY_EXISTS, errors.RequestIdMismatch),
    ("UNAUTHENTICATED", grpc.StatusCode.UNAUTHENTICATED, errors.Unauthenticated),
    ("PERMISSION_DENIED", grpc.StatusCode.PERMISSION_DENIED, errors.PermissionDenied),
    ("TOO_LARGE", grpc.StatusCode.INVALID_ARGUMENT, errors.TooLarge),
    ("CALLBACK_TARGET_REFUSED", grpc.StatusCode.INVALID_ARGUMENT, errors.CallbackTargetRefused),
    ("INVALID_PAGE_TOKEN", grpc.StatusCode.INVALID_ARGUMENT, errors.InvalidPageToken),
    ("ETAG_MISMATCH", grpc.StatusCode.ABORTED, errors.EtagMismatch),
    ("STORE_UNAVAILABLE", grpc.StatusCode.UNAVAILABLE, errors.StoreUnavailable),
    ("SHUTTING_DOWN", grpc.StatusCode.UNAVAILABLE, errors.ShuttingDown),
    ("RESOURCE_EXHAUSTED", grpc.StatusCode.RESOURCE_EXHAUSTED, errors.ResourceExhausted),
    ("WATCHER_TOO_SLOW", grpc.StatusCode.UNAVAILABLE, errors.WatcherTooSlow),
    ("LIFECYCLE_NOT_CONFIGURED", grpc.StatusCode.FAILED_PRECONDITION, errors.LifecycleNotConfigured),
    ("JOB_NOT_FINISHED", grpc.StatusCode.FAILED_PRECONDITION, errors.JobNotFinished),
    ("INTERNAL", grpc.StatusCode.INTERNAL, errors.Internal),
]


@pytest.mark.parametrize(("reason", "code", "cls"), REASONS)
def test_each_reason_decodes_to_its_class(
    reason: str, code: grpc.StatusCode, cls: type[errors.JobwardenError]
) -> None:
    err = _error(code, "it went wrong", reason=reason, metadata={"job_id": "j1"})
    assert type(err) is cls
    assert cls.reason == reason
    assert err.reason == reason
    assert err.code == code
    assert err.message == "it went wrong"
    assert err.metadata == {"job_id": "j1"}
    assert isinstance(err, errors.JobwardenError)


def test_every_error_reason_of_the_proto_has_a_class() -> None:
    names = {
        name.removeprefix("ERROR_REASON_")
        for name in error_reason_pb2.ErrorReason.DESCRIPTOR.values_by_name
        if name != "ERROR_REASON_UNSPECIFIED"
    }
    assert names == {reason for reason, _, _ in REASONS}


def test_invalid_transition_names_from_and_to() -> None:
    err = _error(
        grpc.StatusCode.FAILED_PRECONDITION,
        "job j1 cannot go from COMPLETED to CANCELLED",
        reason="INVALID_TRANSITION",
        metadata={"from": "COMPLETED", "to": "CANCELLED"},
    )
    assert isinstance(err, errors.InvalidTransition)
    assert isinstance(err, errors.FailedPrecondition)
    assert (err.from_status, err.to_status) == ("COMPLETED", "CANCELLED")
    assert str(err) == "INVALID_TRANSITION: job j1 cannot go from COMPLETED to CANCELLED"


def test_bad_request_field_violations_are_kept() -> None:
    err = _error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid request",
        reason="INVALID_ARGUMENT",
        metadata={"field": "job_type"},
        violations={"job_type": "must not be empty", "priority": "must be in -1000..1000"},
    )
    assert isinstance(err, errors.InvalidArgument)
    assert err.metadata["field"] == "job_type"
    assert err.field_violations == (
        errors.FieldViolation(field="job_type", description="must not be empty"),
        errors.FieldViolation(field="priority", description="must be in -1000..1000"),
    )


def test_retry_info_and_retryable() -> None:
    err = _error(grpc.StatusCode.UNAVAILABLE, "busy", reason="STORE_UNAVAILABLE", retry_seconds=2)
    assert isinstance(err, errors.Unavailable)
    assert err.retry_delay == 2.0
    assert err.retryable
    assert not _error(grpc.StatusCode.ABORTED, reason="LEASE_LOST").retryable


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        (grpc.StatusCode.UNAVAILABLE, errors.Unavailable),
        (grpc.StatusCode.DEADLINE_EXCEEDED, errors.DeadlineExceeded),
        (grpc.StatusCode.CANCELLED, errors.Cancelled),
        (grpc.StatusCode.UNKNOWN, errors.Unknown),
        (grpc.StatusCode.UNIMPLEMENTED, errors.Unimplemented),
        (grpc.StatusCode.NOT_FOUND, errors.NotFound),
        (grpc.StatusCode.ABORTED, errors.Aborted),
        (grpc.StatusCode.DATA_LOSS, errors.DataLoss),
    ],
)
def test_without_error_info_the_code_decides(code: grpc.StatusCode, cls: type[errors.JobwardenError]) -> None:
    err = errors.from_rpc_error(_aio_error(None, code, "failed to connect"))
    assert type(err) is cls
    assert err.code == code
    assert err.message == "failed to connect"
    assert err.metadata == {}


def test_deadline_exceeded_is_not_retryable() -> None:
    err = errors.from_rpc_error(_aio_error(None, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
    assert not err.retryable
    assert errors.from_rpc_error(_aio_error(None, grpc.StatusCode.UNAVAILABLE, "down")).retryable


def test_a_foreign_domain_does_not_pick_our_classes() -> None:
    err = _error(grpc.StatusCode.ABORTED, "proxy", reason="LEASE_LOST", domain="proxy.example")
    assert type(err) is errors.Aborted
    assert err.reason == "LEASE_LOST"


def test_an_unknown_reason_falls_back_to_the_code() -> None:
    err = _error(grpc.StatusCode.NOT_FOUND, "gone", reason="SOMETHING_NEWER")
    assert type(err) is errors.NotFound
    assert err.reason == "SOMETHING_NEWER"


def test_a_status_message_differing_from_the_call_still_decodes() -> None:
    # A proxy may rewrite the call's message; grpc_status.from_call refuses such a pair.
    status = _status(grpc.StatusCode.ABORTED, "lease lost", reason="LEASE_LOST")
    err = errors.from_rpc_error(_aio_error(status, grpc.StatusCode.ABORTED, "rewritten"))
    assert isinstance(err, errors.LeaseLost)
    assert err.message == "lease lost"


def test_a_garbage_trailer_does_not_hide_the_error() -> None:
    trailing = grpc.aio.Metadata(("grpc-status-details-bin", b"\xff\xff not a status"))
    err = errors.from_rpc_error(
        grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), trailing, details="oops")
    )
    assert type(err) is errors.Internal
    assert err.message == "oops"


class _SyncError(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """Shaped like the errors of synchronous stubs: metadata as a tuple of pairs."""

    def __init__(self, status: status_pb2.Status) -> None:
        self._status = status

    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.NOT_FOUND

    def details(self) -> str:
        return str(self._status.message)

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return (("grpc-status-details-bin", self._status.SerializeToString()),)

    def initial_metadata(self) -> tuple[tuple[str, bytes], ...]:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> float | None:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: object) -> bool:
        return False


def test_sync_errors_decode_too() -> None:
    status = _status(grpc.StatusCode.NOT_FOUND, "job j9 not found", reason="NOT_FOUND")
    err = errors.from_rpc_error(_SyncError(status))
    assert isinstance(err, errors.NotFound)
    assert err.message == "job j9 not found"


def test_a_bare_rpc_error_is_unknown() -> None:
    err = errors.from_rpc_error(grpc.RpcError("no call attached"))
    assert type(err) is errors.Unknown
    assert err.code == grpc.StatusCode.UNKNOWN


def test_code_level_classes_catch_their_reasons() -> None:
    assert issubclass(errors.ShuttingDown, errors.Unavailable)
    assert issubclass(errors.TooLarge, errors.InvalidArgument)
    assert issubclass(errors.LeaseLost, errors.Aborted)
    assert issubclass(errors.RequestIdMismatch, errors.AlreadyExists)


@pytest.mark.parametrize(("reason", "code", "cls"), REASONS)
def test_a_status_inside_a_reply_decodes_like_the_same_status_ending_a_call(
    reason: str, code: grpc.StatusCode, cls: type[errors.JobwardenError]
) -> None:
    status = _status(
        code,
        "item refused",
        reason=reason,
        metadata={"job_id": "j1"},
        violations={"f": "bad"},
        retry_seconds=2,
    )
    item = errors.from_status(status)
    call = errors.from_rpc_error(_aio_error(status, code, "item refused"))
    assert type(item) is type(call) is cls
    assert (item.code, item.reason, item.message, item.metadata) == (
        call.code,
        call.reason,
        call.message,
        call.metadata,
    )
    assert (item.field_violations, item.retry_delay) == (call.field_violations, call.retry_delay)


def test_a_status_without_our_error_info_decodes_by_its_code() -> None:
    foreign = errors.from_status(
        _status(grpc.StatusCode.ALREADY_EXISTS, "x", reason="REQUEST_ID_MISMATCH", domain="proxy")
    )
    assert type(foreign) is errors.AlreadyExists
    assert type(errors.from_status(status_pb2.Status(code=99, message="?"))) is errors.Unknown
