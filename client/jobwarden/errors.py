"""The exceptions the jobwarden SDK raises, decoded from gRPC errors.

Every call of the SDK turns a failed RPC into one :class:`JobwardenError`. The server attaches a
``google.rpc.ErrorInfo`` (domain ``jobwarden.dev``) to every non-OK status; its ``reason`` picks the
subclass, so callers catch what happened, not a status code::

    try:
        await client.complete_job(job_id, lease_token, result)
    except errors.LeaseLost:
        ...  # another worker owns the job now

When no ErrorInfo is present (a proxy, a client-side deadline, a refused connection) the class is
chosen by the status code instead (:class:`Unavailable`, :class:`DeadlineExceeded`, ...). Reason
classes subclass their code's class where the two differ, so ``except Unavailable`` also catches
:class:`ShuttingDown` and ``except InvalidArgument`` also catches :class:`TooLarge`.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import grpc
import grpc.aio
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "DOMAIN",
    "Aborted",
    "AlreadyExists",
    "CallbackTargetRefused",
    "Cancelled",
    "DataLoss",
    "DeadlineExceeded",
    "EtagMismatch",
    "FailedPrecondition",
    "FieldViolation",
    "Internal",
    "InvalidArgument",
    "InvalidPageToken",
    "InvalidTransition",
    "JobNotTerminal",
    "JobwardenError",
    "LeaseLost",
    "LifecycleNotConfigured",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ProgressOutOfRange",
    "RequestIdMismatch",
    "ResourceExhausted",
    "ShuttingDown",
    "StoreUnavailable",
    "TooLarge",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "WatcherTooSlow",
    "from_rpc_error",
    "from_status",
]

logger = logging.getLogger(__name__)

DOMAIN = "jobwarden.dev"
"""The ``ErrorInfo.domain`` of every error the jobwarden server sends."""

_DETAILS_KEY = "grpc-status-details-bin"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FieldViolation:
    """One invalid request field, from ``google.rpc.BadRequest``.

    Attributes:
        field: Path of the field, for example ``"parameters"`` or ``"labels.team"``.
        description: Why the value was refused.
    """

    field: str
    description: str


class JobwardenError(Exception):
    """Root of every error raised by the jobwarden SDK.

    Attributes:
        code: The gRPC status code of the failed call.
        reason: ``ErrorInfo.reason`` as sent by the server (an ``ErrorReason`` name without its
            prefix), or the class default when the server sent none.
        message: The status message.
        metadata: ``ErrorInfo.metadata``, for example ``{"from": "QUEUED", "to": "COMPLETED"}``.
        field_violations: The ``BadRequest`` field violations, for invalid arguments.
        retry_delay: Seconds the server asked the caller to wait before retrying
            (``google.rpc.RetryInfo``), if it said.
    """

    reason: str = ""
    default_code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str = "",
        *,
        code: grpc.StatusCode | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        field_violations: Iterable[FieldViolation] = (),
        retry_delay: float | None = None,
    ) -> None:
        """Builds an error; normally done by :func:`from_rpc_error`, also usable in tests and fakes."""
        super().__init__(message)
        self.message = message
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        if reason is not None:
            self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})
        self.field_violations: tuple[FieldViolation, ...] = tuple(field_violations)
        self.retry_delay = retry_delay

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later unchanged.

        True for the UNAVAILABLE family (store busy, shutting down, watcher cut off, no connection).
        DEADLINE_EXCEEDED is not: the call may have taken effect, so retrying it blindly is only
        safe for idempotent calls, which the caller knows and this class does not.
        """
        return self.code == grpc.StatusCode.UNAVAILABLE

    def __str__(self) -> str:
        label = self.reason or self.code.name
        return f"{label}: {self.message}" if self.message else label

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code.name}, reason={self.reason!r}, message={self.message!r})"
        )


# Code-level classes: chosen by status code when there is no ErrorInfo (or an unknown reason). Where a
# reason has the same meaning as its code (NOT_FOUND, ...), one class serves as both.


class Cancelled(JobwardenError):
    """The call was cancelled, usually by the caller."""

    default_code = grpc.StatusCode.CANCELLED


class Unknown(JobwardenError):
    """The server or the transport failed without saying why."""

    default_code = grpc.StatusCode.UNKNOWN


class InvalidArgument(JobwardenError):
    """A request field is malformed; ``field_violations`` names it."""

    reason = "INVALID_ARGUMENT"
    default_code = grpc.StatusCode.INVALID_ARGUMENT


class DeadlineExceeded(JobwardenError):
    """The call's deadline passed before the server answered; it may or may not have taken effect."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class NotFound(JobwardenError):
    """The job, asset or lifecycle does not exist, or belongs to another owner."""

    reason = "NOT_FOUND"
    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(JobwardenError):
    """The resource already exists."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(JobwardenError):
    """The caller's role does not allow this call."""

    reason = "PERMISSION_DENIED"
    default_code = grpc.StatusCode.PERMISSION_DENIED


class ResourceExhausted(JobwardenError):
    """A server-side limit is exhausted (or a message exceeded the size limit)."""

    reason = "RESOURCE_EXHAUSTED"
    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(JobwardenError):
    """The system is not in a state that allows the call."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(JobwardenError):
    """The call lost a race; re-read and try again."""

    default_code = grpc.StatusCode.ABORTED


class OutOfRange(JobwardenError):
    """A value is outside its valid range."""

    default_code = grpc.StatusCode.OUT_OF_RANGE


class Unimplemented(JobwardenError):
    """The server does not implement this call (an older server?)."""

    default_code = grpc.StatusCode.UNIMPLEMENTED


class Internal(JobwardenError):
    """An unexpected server fault; the server logged it."""

    reason = "INTERNAL"
    default_code = grpc.StatusCode.INTERNAL


class Unavailable(JobwardenError):
    """The server cannot be reached or cannot serve now; retry later."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DataLoss(JobwardenError):
    """Unrecoverable data loss or corruption."""

    default_code = grpc.StatusCode.DATA_LOSS


class Unauthenticated(JobwardenError):
    """The call carries no credentials, or unknown ones."""

    reason = "UNAUTHENTICATED"
    default_code = grpc.StatusCode.UNAUTHENTICATED


# Reason-level classes whose meaning is narrower than their code's.


class InvalidTransition(FailedPrecondition):
    """The job's lifecycle table does not allow this status change; the job is unchanged."""

    reason = "INVALID_TRANSITION"

    @property
    def from_status(self) -> str:
        """The job's status when the change was refused (``metadata["from"]``), or ``""``."""
        return self.metadata.get("from", "")

    @property
    def to_status(self) -> str:
        """The status the call tried to move the job to (``metadata["to"]``), or ``""``."""
        return self.metadata.get("to", "")


class LifecycleNotConfigured(FailedPrecondition):
    """The job's lifecycle table is missing from the server's config (an operator must add it back)."""

    reason = "LIFECYCLE_NOT_CONFIGURED"

    @property
    def lifecycle(self) -> str:
        """The missing table's name (``metadata["lifecycle"]``), or ``""``."""
        return self.metadata.get("lifecycle", "")


class JobNotTerminal(FailedPrecondition):
    """The call needs a job that has ended (``retry_job``, ``delete_job``), and this one has not:
    cancel it first."""

    reason = "JOB_NOT_TERMINAL"

    @property
    def status(self) -> str:
        """The job's status when the call was refused (``metadata["status"]``), or ``""``."""
        return self.metadata.get("status", "")


class LeaseLost(Aborted):
    """The lease token is stale or unknown: the job was rescued, finished or never leased to you."""

    reason = "LEASE_LOST"


class EtagMismatch(Aborted):
    """The job changed since the etag sent was read."""

    reason = "ETAG_MISMATCH"


class RequestIdMismatch(AlreadyExists):
    """A request_id was reused with different request content."""

    reason = "REQUEST_ID_MISMATCH"


class ProgressOutOfRange(InvalidArgument):
    """A progress percent outside 0..100, or done greater than total."""

    reason = "PROGRESS_OUT_OF_RANGE"


class TooLarge(InvalidArgument):
    """A string, map or message exceeds a size limit."""

    reason = "TOO_LARGE"


class CallbackTargetRefused(InvalidArgument):
    """The server refuses to call this callback_url (a loopback, private, link-local or metadata
    address its config does not allow), or has no signing secret for the caller's owner."""

    reason = "CALLBACK_TARGET_REFUSED"


class InvalidPageToken(InvalidArgument):
    """The page token is malformed or belongs to another query."""

    reason = "INVALID_PAGE_TOKEN"


class StoreUnavailable(Unavailable):
    """The server's database is busy or unreachable; retry later."""

    reason = "STORE_UNAVAILABLE"


class ShuttingDown(Unavailable):
    """The server is shutting down; retry later or on another replica."""

    reason = "SHUTTING_DOWN"


class WatcherTooSlow(Unavailable):
    """The watch fell too far behind and was cut off; resume from the last sequence seen."""

    reason = "WATCHER_TOO_SLOW"


_BY_REASON: dict[str, type[JobwardenError]] = {
    cls.reason: cls
    for cls in (
        InvalidArgument,
        NotFound,
        InvalidTransition,
        LifecycleNotConfigured,
        JobNotTerminal,
        LeaseLost,
        ProgressOutOfRange,
        RequestIdMismatch,
        Unauthenticated,
        PermissionDenied,
        TooLarge,
        CallbackTargetRefused,
        InvalidPageToken,
        EtagMismatch,
        StoreUnavailable,
        ShuttingDown,
        ResourceExhausted,
        WatcherTooSlow,
        Internal,
    )
}

_BY_CODE: dict[grpc.StatusCode, type[JobwardenError]] = {
    cls.default_code: cls
    for cls in (
        Cancelled,
        Unknown,
        InvalidArgument,
        DeadlineExceeded,
        NotFound,
        AlreadyExists,
        PermissionDenied,
        ResourceExhausted,
        FailedPrecondition,
        Aborted,
        OutOfRange,
        Unimplemented,
        Internal,
        Unavailable,
        DataLoss,
        Unauthenticated,
    )
}


@dataclasses.dataclass(slots=True)
class _Details:
    message: str | None = None
    info_domain: str = ""
    reason: str | None = None
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    violations: list[FieldViolation] = dataclasses.field(default_factory=list)
    retry_delay: float | None = None


def from_rpc_error(err: grpc.RpcError) -> JobwardenError:
    """Decodes a failed gRPC call into the matching :class:`JobwardenError` subclass.

    Works for ``grpc.aio.AioRpcError`` and for the errors of synchronous stubs. The caller raises the
    result ``from err`` so the original status stays visible in tracebacks.

    Args:
        err: The error raised by a gRPC call.

    Returns:
        The typed error; never raises.
    """
    status = _rich_status(err)
    details = _Details() if status is None else _decode_details(status)
    message = details.message if details.message is not None else _details_of(err)
    return _typed(_code_of(err), message, details)


def from_status(status: status_pb2.Status) -> JobwardenError:
    """Decodes a ``google.rpc.Status`` into the matching :class:`JobwardenError` subclass.

    For the statuses a call carries inside its reply: one per item of a batch (``CreateJobs``), one
    per step of a Work session. Each is decoded exactly as the same status ending a call would be.

    Args:
        status: The status, with its details (``ErrorInfo``, ``BadRequest``, ``RetryInfo``).

    Returns:
        The typed error; never raises.
    """
    code = _CODES.get(int(status.code), grpc.StatusCode.UNKNOWN)
    details = _decode_details(status)
    return _typed(code, details.message or "", details)


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def _typed(code: grpc.StatusCode, message: str, details: _Details) -> JobwardenError:
    cls: type[JobwardenError] | None = None
    # Reasons are only meaningful in our own domain: a proxy's ErrorInfo keeps its reason string but
    # must not be mistaken for one of ours.
    if details.reason is not None and details.info_domain == DOMAIN:
        cls = _BY_REASON.get(details.reason)
    if cls is None:
        cls = _BY_CODE.get(code, Unknown)
    return cls(
        message,
        code=code,
        reason=details.reason,
        metadata=details.metadata,
        field_violations=details.violations,
        retry_delay=details.retry_delay,
    )


def _code_of(err: grpc.RpcError) -> grpc.StatusCode:
    # grpc.RpcError itself has no code(); the concrete errors raised by calls (aio and sync) do.
    code = getattr(err, "code", None)
    if callable(code):
        value = code()
        if isinstance(value, grpc.StatusCode):
            return value
    return grpc.StatusCode.UNKNOWN


def _details_of(err: grpc.RpcError) -> str:
    details = getattr(err, "details", None)
    if callable(details):
        value = details()
        if isinstance(value, str):
            return value
    return str(err)


def _decode_details(status: status_pb2.Status) -> _Details:
    out = _Details(message=str(status.message))
    for any_detail in status.details:
        if any_detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_detail.Unpack(info)
            out.info_domain = str(info.domain)
            out.reason = str(info.reason)
            out.metadata = {str(k): str(v) for k, v in info.metadata.items()}
        elif any_detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_detail.Unpack(bad)
            out.violations.extend(
                FieldViolation(field=str(v.field), description=str(v.description))
                for v in bad.field_violations
            )
        elif any_detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            any_detail.Unpack(retry)
            out.retry_delay = float(retry.retry_delay.ToTimedelta().total_seconds())
    return out


def _rich_status(err: grpc.RpcError) -> Any:
    """Returns the ``google.rpc.Status`` carried by ``err``, or None."""
    if not callable(getattr(err, "trailing_metadata", None)):
        return None
    try:
        return rpc_status.from_call(err)
    except ValueError:
        # from_call refuses a Status whose code or message differs from the call's (a proxy may
        # rewrite the message). The details are still the server's own words, so read them anyway.
        pass
    except Exception:  # a malformed trailer must not hide the original error
        logger.debug("undecodable %s trailer", _DETAILS_KEY, exc_info=True)
        return None
    # aio errors yield (key, value) tuples, sync ones _Metadatum tuples: unpack both positionally.
    trailer: Any = err.trailing_metadata() or ()
    for key, value in trailer:
        if key == _DETAILS_KEY and isinstance(value, bytes):
            try:
                return status_pb2.Status.FromString(value)
            except Exception:
                logger.debug("undecodable %s trailer", _DETAILS_KEY, exc_info=True)
                return None
    return None
