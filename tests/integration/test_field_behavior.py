"""The protos' `google.api.field_behavior` REQUIRED marks say what the server enforces.

SDKs in other languages are generated from the protos, and some of them turn REQUIRED into their own
checks or documentation; a mark the server does not enforce (or a requirement without its mark) would tell
them something false. For every unary and server-streaming RPC, and every top-level request field marked
REQUIRED, a request with all the other REQUIRED fields set and that one left empty must be refused with
INVALID_ARGUMENT naming it. (Work's WorkStart marks are checked with its other bad starts in
test_work_session.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.api import field_behavior_pb2
from google.protobuf import descriptor, message, message_factory
from support import rpc

from jobwarden.v1 import (
    admin_service_pb2,
    admin_service_pb2_grpc,
    job_pb2,
    job_service_pb2,
    job_service_pb2_grpc,
    worker_service_pb2,
    worker_service_pb2_grpc,
)

FD = descriptor.FieldDescriptor

SERVICES = (
    (job_service_pb2, "JobService", job_service_pb2_grpc.JobServiceStub),
    (worker_service_pb2, "WorkerService", worker_service_pb2_grpc.WorkerServiceStub),
    (admin_service_pb2, "AdminService", admin_service_pb2_grpc.AdminServiceStub),
)

# Values for REQUIRED fields of message type that get past their own checks, so that only the field
# left empty is wrong. Scalars are filled by type below.
MESSAGE_VALUES: dict[str, Any] = {
    "jobwarden.v1.CreateJobRequest": job_service_pb2.CreateJobRequest(job_type="field.behavior"),
    "jobwarden.v1.JobLog": job_pb2.JobLog(message="a line"),
    "jobwarden.v1.JobError": job_pb2.JobError(message="broke"),
    "jobwarden.v1.Asset": job_pb2.Asset(asset_type="log", uri="https://example.com/a.txt"),
}


def _required(field: descriptor.FieldDescriptor) -> bool:
    behaviors = field.GetOptions().Extensions[field_behavior_pb2.field_behavior]
    return field_behavior_pb2.REQUIRED in behaviors


def _set(request: message.Message, field: descriptor.FieldDescriptor) -> None:
    """Give `field` of `request` a value the server accepts for it."""
    if field.type == FD.TYPE_MESSAGE:
        value = MESSAGE_VALUES[field.message_type.full_name]
        if field.is_repeated:
            getattr(request, field.name).append(value)
        else:
            getattr(request, field.name).CopyFrom(value)
    elif field.type == FD.TYPE_ENUM:
        # The first value after UNSPECIFIED (for SetJobStatus: CREATED, a legal admin target).
        number = field.enum_type.values[1].number
        if field.is_repeated:
            getattr(request, field.name).append(number)
        else:
            setattr(request, field.name, number)
    elif field.type == FD.TYPE_STRING:
        value = "field.behavior" if "type" in field.name else "x"
        if field.is_repeated:
            getattr(request, field.name).append(value)
        else:
            setattr(request, field.name, value)
    else:
        raise AssertionError(f"no value for {field.full_name}: extend _set")


def _cases() -> Iterator[Any]:
    for module, service_name, stub in SERVICES:
        service = module.DESCRIPTOR.services_by_name[service_name]
        for method in service.methods:
            if method.client_streaming:
                continue
            required = [f for f in method.input_type.fields if _required(f)]
            for missing in required:
                yield pytest.param(stub, method, missing, required, id=f"{method.name}.{missing.name}")


CASES = list(_cases())


def test_the_protos_mark_required_fields() -> None:
    """The cases below are not vacuous: every service has marked fields."""
    assert {case.values[1].containing_service.name for case in CASES} == {name for _, name, _ in SERVICES}


@pytest.mark.parametrize(("stub", "method", "missing", "required"), CASES)
async def test_a_required_field_left_empty_is_refused(
    stubs: rpc.Stubs,
    stub: Any,
    method: descriptor.MethodDescriptor,
    missing: descriptor.FieldDescriptor,
    required: list[descriptor.FieldDescriptor],
) -> None:
    request = message_factory.GetMessageClass(method.input_type)()
    for field in required:
        if field is not missing:
            _set(request, field)
    call = getattr(stub(stubs.channel), method.name)(request, metadata=stubs.metadata)
    if method.server_streaming:
        call = _first(call)
    failure = await rpc.fails(call)
    assert failure.code == grpc.StatusCode.INVALID_ARGUMENT, failure.message
    assert any(f == missing.name or f.startswith(f"{missing.name}.") for f in failure.fields), failure.fields


async def _first(stream: Any) -> Any:
    async for item in stream:
        return item
    return None
