"""Every RPC of JobService and WorkerService, read from the proto descriptors, callable generically.

The bad-input and isolation batteries iterate over `RPCS` rather than a hand-kept list, so an RPC added
to the protos is covered (and a table that lacks a case for it fails) without anyone remembering to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import grpc.aio
from google.protobuf import descriptor, message, message_factory
from google.rpc import error_details_pb2, status_pb2

from jobwarden.v1 import error_reason_pb2, job_service_pb2, worker_service_pb2

DOMAIN = "jobwarden.dev"
REASONS = frozenset(
    v.name.removeprefix("ERROR_REASON_") for v in error_reason_pb2.ErrorReason.DESCRIPTOR.values
)


@dataclasses.dataclass(frozen=True)
class Rpc:
    """One method of one service."""

    service: str
    name: str
    method: descriptor.MethodDescriptor

    @property
    def path(self) -> str:
        """The HTTP/2 path, /package.Service/Method."""
        return f"/{self.service}/{self.name}"

    @property
    def request_type(self) -> type[message.Message]:
        """The generated request class."""
        return message_factory.GetMessageClass(self.method.input_type)

    @property
    def response_type(self) -> type[message.Message]:
        """The generated response class."""
        return message_factory.GetMessageClass(self.method.output_type)

    def __str__(self) -> str:
        return self.name


def _rpcs() -> list[Rpc]:
    out = []
    for module, name in ((job_service_pb2, "JobService"), (worker_service_pb2, "WorkerService")):
        service = module.DESCRIPTOR.services_by_name[name]
        out += [Rpc(service.full_name, m.name, m) for m in service.methods]
    return out


RPCS: Sequence[Rpc] = _rpcs()
BY_NAME = {rpc.name: rpc for rpc in RPCS}


@dataclasses.dataclass(frozen=True)
class Answer:
    """What a call got: OK and its replies, or a status with whatever rich details it carried."""

    code: str
    message: str = ""
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    fields: tuple[str, ...] = ()
    error_infos: int = 0
    replies: tuple[Any, ...] = ()
    raw_trailers: bytes = b""

    @property
    def ok(self) -> bool:
        """Whether the call succeeded."""
        return self.code == "OK"

    @property
    def from_jobwarden(self) -> bool:
        """Whether the failure carries exactly one jobwarden ErrorInfo with a known reason."""
        return self.error_infos == 1 and self.domain == DOMAIN and self.reason in REASONS

    def text(self) -> str:
        """Everything a caller can read in the answer, for leak checks."""
        replies = b"".join(r if isinstance(r, bytes) else r.SerializeToString() for r in self.replies)
        return f"{self.message}|{self.metadata}|{self.fields}|{replies!r}|{self.raw_trailers!r}"


def ack_answer(ack: Any) -> Answer:
    """A Work session's step ack read as the answer of the matching unary call (code and details)."""
    return Answer(code="OK") if ack.status.code == 0 else status_answer(ack.status)


def _failure(err: grpc.aio.AioRpcError) -> Answer:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin" and isinstance(value, bytes):
            answer = status_answer(status_pb2.Status.FromString(value))
            return dataclasses.replace(
                answer, code=err.code().name, message=err.details() or "", raw_trailers=value
            )
    return Answer(code=err.code().name, message=err.details() or "")


_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def status_answer(status: status_pb2.Status) -> Answer:
    """A google.rpc.Status (a call's, or one item's of a batch) as an Answer, judged like a call's."""
    infos: list[error_details_pb2.ErrorInfo] = []
    fields: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    first = infos[0] if infos else error_details_pb2.ErrorInfo()
    return Answer(
        code=_CODE_NAMES.get(status.code, f"CODE_{status.code}"),
        message=status.message,
        reason=first.reason,
        domain=first.domain,
        metadata=dict(first.metadata),
        fields=tuple(fields),
        error_infos=len(infos),
    )


async def _one(item: Any) -> AsyncIterator[Any]:
    yield item


async def call(
    channel: grpc.aio.Channel,
    rpc: Rpc,
    request: message.Message | bytes,
    *,
    metadata: Sequence[tuple[str, str]] = (),
    within_s: float = 10.0,
    max_replies: int = 50,
) -> Answer:
    """Call `rpc` with a request message, or with raw bytes as the serialized request (sent as they
    are, parseable or not). Streams are read until they end or `max_replies` items (then cancelled)."""
    raw = isinstance(request, bytes)
    serialize = None if raw else rpc.request_type.SerializeToString
    deserialize = None if raw else rpc.response_type.FromString
    # The multicallables are typed for messages; with identity serializers they carry bytes as well.
    payload: Any = request
    replies: list[Any] = []
    try:
        if not rpc.method.server_streaming and not rpc.method.client_streaming:
            unary = channel.unary_unary(
                rpc.path, request_serializer=serialize, response_deserializer=deserialize
            )
            replies.append(await unary(payload, metadata=metadata, timeout=within_s))
        else:
            stream: Any
            if rpc.method.client_streaming:
                to_stream = channel.stream_stream(
                    rpc.path, request_serializer=serialize, response_deserializer=deserialize
                )
                stream = to_stream(_one(payload), metadata=metadata, timeout=within_s)
            else:
                from_stream = channel.unary_stream(
                    rpc.path, request_serializer=serialize, response_deserializer=deserialize
                )
                stream = from_stream(payload, metadata=metadata, timeout=within_s)
            try:
                async for reply in stream:
                    replies.append(reply)
                    if len(replies) >= max_replies:
                        break
            finally:
                stream.cancel()
    except grpc.aio.AioRpcError as err:
        return _failure(err)
    return Answer(code="OK", replies=tuple(replies))
