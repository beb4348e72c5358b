"""Domain errors -> gRPC status with google.rpc.Status details (AIP-193). One table, used once.

Every non-OK answer carries an ErrorInfo whose reason is an ErrorReason name, so SDKs in any language
can turn it back into a typed error. INVALID_ARGUMENT also carries BadRequest field violations, and
retryable UNAVAILABLE answers carry RetryInfo.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from jobwarden.v1 import error_reason_pb2
from jobwarden_server.domain import errors

DOMAIN = "jobwarden.dev"

CODES: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.InvalidTransition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.LifecycleNotConfigured: grpc.StatusCode.FAILED_PRECONDITION,
    errors.JobNotFinished: grpc.StatusCode.FAILED_PRECONDITION,
    errors.LeaseLost: grpc.StatusCode.ABORTED,
    errors.EtagMismatch: grpc.StatusCode.ABORTED,
    errors.Conflict: grpc.StatusCode.ABORTED,
    errors.RequestIdMismatch: grpc.StatusCode.ALREADY_EXISTS,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.ShuttingDown: grpc.StatusCode.UNAVAILABLE,
    errors.WatcherTooSlow: grpc.StatusCode.UNAVAILABLE,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

RETRY_DELAY_S = 1
_REASONS = frozenset(error_reason_pb2.ErrorReason.keys())


def code_for(error: errors.DomainError) -> grpc.StatusCode:
    """The gRPC code of a domain error (most specific class wins)."""
    for cls in type(error).__mro__:
        if cls in CODES:
            return CODES[cls]
    return grpc.StatusCode.INTERNAL


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_status(error: errors.DomainError) -> tuple[grpc.StatusCode, status_pb2.Status]:
    """The code and the rich status for `error`."""
    code = code_for(error)
    # Reasons are ErrorReason names; an unknown one would be a server bug, so fall back loudly.
    reason = error.reason if f"ERROR_REASON_{error.reason}" in _REASONS else "INTERNAL"
    details = [_pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=error.metadata))]
    if isinstance(error, errors.InvalidArgument):
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=error.field, description=error.message
                        )
                    ]
                )
            )
        )
    if code is grpc.StatusCode.UNAVAILABLE:
        details.append(
            _pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=RETRY_DELAY_S)))
        )
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=error.message, details=details)
    return code, status


def internal() -> errors.DomainError:
    """What an unexpected fault looks like to the caller: no stack trace, no internals."""
    error = errors.DomainError("internal error; the server logged the details")
    return error
