"""Every domain error maps to the documented gRPC code and to a reason of the shared enum."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2

from jobwarden.v1 import error_reason_pb2
from jobwarden_server.api import errors as api_errors
from jobwarden_server.domain import errors

C = grpc.StatusCode
REASONS = set(error_reason_pb2.ErrorReason.keys())

CASES = [
    (errors.InvalidArgument("f", "bad"), C.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
    (errors.InvalidArgument("f", "big", reason="TOO_LARGE"), C.INVALID_ARGUMENT, "TOO_LARGE"),
    (errors.NotFound("job x not found"), C.NOT_FOUND, "NOT_FOUND"),
    (
        errors.InvalidTransition("j", "standard", "QUEUED", "COMPLETED"),
        C.FAILED_PRECONDITION,
        "INVALID_TRANSITION",
    ),
    (errors.LeaseLost("j"), C.ABORTED, "LEASE_LOST"),
    (errors.EtagMismatch("changed"), C.ABORTED, "ETAG_MISMATCH"),
    (errors.RequestIdMismatch("other"), C.ALREADY_EXISTS, "REQUEST_ID_MISMATCH"),
    (errors.Unauthenticated("who"), C.UNAUTHENTICATED, "UNAUTHENTICATED"),
    (errors.PermissionDenied("no"), C.PERMISSION_DENIED, "PERMISSION_DENIED"),
    (errors.StoreUnavailable("db down"), C.UNAVAILABLE, "STORE_UNAVAILABLE"),
    (errors.ShuttingDown("bye"), C.UNAVAILABLE, "SHUTTING_DOWN"),
    (errors.WatcherTooSlow("slow"), C.UNAVAILABLE, "WATCHER_TOO_SLOW"),
    (errors.ResourceExhausted("full"), C.RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED"),
    (api_errors.internal(), C.INTERNAL, "INTERNAL"),
]


def _details(status: object) -> dict[str, object]:
    found: dict[str, object] = {}
    for any_detail in status.details:  # type: ignore[attr-defined]
        for cls in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest, error_details_pb2.RetryInfo):
            if any_detail.Is(cls.DESCRIPTOR):
                message = cls()
                any_detail.Unpack(message)
                found[cls.__name__] = message
    return found


@pytest.mark.parametrize(("error", "code", "reason"), CASES, ids=[type(c[0]).__name__ + c[2] for c in CASES])
def test_mapping(error: errors.DomainError, code: grpc.StatusCode, reason: str) -> None:
    got_code, status = api_errors.to_status(error)
    assert got_code == code
    assert status.code == code.value[0]
    details = _details(status)
    info = details["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert info.reason == reason
    assert info.domain == api_errors.DOMAIN
    assert f"ERROR_REASON_{reason}" in REASONS
    assert ("BadRequest" in details) == isinstance(error, errors.InvalidArgument)
    assert ("RetryInfo" in details) == (code == C.UNAVAILABLE)


def test_transition_metadata_names_from_and_to() -> None:
    _, status = api_errors.to_status(errors.InvalidTransition("j1", "simple", "QUEUED", "CANCELLED"))
    info = _details(status)["ErrorInfo"]
    assert isinstance(info, error_details_pb2.ErrorInfo)
    assert dict(info.metadata) == {"job_id": "j1", "lifecycle": "simple", "from": "QUEUED", "to": "CANCELLED"}


def test_every_domain_error_class_has_a_code() -> None:
    def subclasses(cls: type) -> list[type]:
        return [c for sub in cls.__subclasses__() for c in (sub, *subclasses(sub))]

    for cls in subclasses(errors.DomainError):
        assert cls in api_errors.CODES, f"{cls.__name__} has no gRPC code"
        assert f"ERROR_REASON_{cls.reason}" in REASONS
