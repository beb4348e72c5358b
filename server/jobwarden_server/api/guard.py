"""One interceptor for every jobwarden RPC: serve it in the trace context it carries (tracing.py),
authenticate, authorize by role, bound the request size, and map every error to a gRPC status with
ErrorInfo. Handlers never abort by hand."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import message

from jobwarden_server import tracing
from jobwarden_server.api import auth
from jobwarden_server.api import errors as api_errors
from jobwarden_server.api.nul import refuse_nul
from jobwarden_server.domain import errors
from jobwarden_server.domain.auth import Principal, Role

logger = logging.getLogger(__name__)

ROLE_BY_SERVICE = {
    "jobwarden.v1.JobService": Role.CLIENT,
    "jobwarden.v1.WorkerService": Role.WORKER,
    "jobwarden.v1.AdminService": Role.ADMIN,
}
OPENING_WAIT_S = 1.0
"""How long a refused stream waits for the client's opening message before ending."""
ITEMIZED = frozenset({"/jobwarden.v1.JobService/CreateJobs"})
"""Batch calls whose items are refused one by one, NUL included (their servicer checks each item), so
one item with a NUL does not fail its neighbours."""


async def abort(context: grpc.aio.ServicerContext[Any, Any], error: errors.DomainError) -> None:
    """End the RPC with the rich status for `error` (raises grpc's AbortError)."""
    code, status = api_errors.to_status(error)
    tracing.record_failure(code.value[0], status.message)
    await context.abort(
        code, status.message, trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),)
    )


class Guard(grpc.aio.ServerInterceptor):
    """Wraps the handlers of jobwarden's own services; health and reflection pass through."""

    def __init__(self, authenticator: auth.Authenticator, *, max_request_bytes: int) -> None:
        self._auth = authenticator
        self._max_request_bytes = max_request_bytes
        self._inflight: set[asyncio.Task[Any]] = set()

    async def drain(self, within_s: float) -> None:
        """Wait for every handler task to end (cancelled ones unwind their database work), so the
        store is never closed under a call that is still using it. Gives up after `within_s`."""
        pending = {t for t in self._inflight if not t.done()}
        if pending:
            await asyncio.wait(pending, timeout=within_s)

    def _track(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        role = ROLE_BY_SERVICE.get(method.lstrip("/").split("/")[0])
        if handler is None or role is None:
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, role, method),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(handler.unary_stream, role, method),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._bidi(handler.stream_stream, role, method),
                request_deserializer=_tolerant(handler.request_deserializer),
                response_serializer=handler.response_serializer,
            )
        return handler

    def _admit(
        self, request: message.Message, context: grpc.aio.ServicerContext[Any, Any], role: Role, method: str
    ) -> None:
        principal = self._authorize(context, role)
        self._check(request)
        if method not in ITEMIZED:
            refuse_nul(request)
        auth.set_principal(principal)

    def _authorize(self, context: grpc.aio.ServicerContext[Any, Any], role: Role) -> Principal:
        return self._auth.authenticate(context.invocation_metadata(), context.auth_context()).require(role)

    def _check(self, request: message.Message) -> None:
        """A request that did not parse, or is too large, is refused (only after authorization: AIP-211)."""
        if isinstance(request, Undecodable):
            raise errors.InvalidArgument("request", f"is not a valid message of this method: {request.error}")
        if request.ByteSize() > self._max_request_bytes:
            raise errors.InvalidArgument(
                "request", f"is larger than {self._max_request_bytes} bytes", reason="TOO_LARGE"
            )

    async def _checked(self, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
        """A stream's messages, each checked like a unary request (NULs are left to the handler,
        which refuses them per step instead of ending the stream)."""
        async for request in requests:
            self._check(request)
            yield request

    def _unary(self, behaviour: Any, role: Role, method: str) -> Any:
        async def unary(request: message.Message, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            self._track()
            with tracing.rpc_span(method, context.invocation_metadata()):
                async with _answered(context, method):
                    self._admit(request, context, role, method)
                    return await behaviour(request, context)
            return None  # unreachable: a failure ends in abort, which raises

        return unary

    def _stream(self, behaviour: Any, role: Role, method: str) -> Any:
        async def stream(request: message.Message, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            self._track()
            with tracing.rpc_span(method, context.invocation_metadata()):
                async with _answered(context, method):
                    self._admit(request, context, role, method)
                    await _send_all(context, behaviour(request, context))

        return stream

    def _bidi(self, behaviour: Any, role: Role, method: str) -> Any:
        async def bidi(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]) -> None:
            self._track()
            with tracing.rpc_span(method, context.invocation_metadata()):
                async with _answered(context, method):
                    try:
                        auth.set_principal(self._authorize(context, role))
                    except errors.DomainError:
                        # Refused before anything is read, but let the opening message land first: a
                        # stream finished while the client is still writing may reach it as an INTERNAL
                        # "error from Core" instead of this refusal.
                        with contextlib.suppress(Exception):
                            await asyncio.wait_for(anext(aiter(requests), None), OPENING_WAIT_S)
                        raise
                    await _send_all(context, behaviour(self._checked(requests), context))

        return bidi


@contextlib.asynccontextmanager
async def _answered(context: grpc.aio.ServicerContext[Any, Any], method: str) -> AsyncIterator[None]:
    """Every failure of a handler becomes its status: a domain error its own, anything else INTERNAL
    (logged with its traceback, never shown to the caller). grpc's AbortError passes through."""
    try:
        yield
    except errors.DomainError as err:
        await abort(context, err)
    except Exception as err:
        if _is_abort(err):
            raise
        logger.exception("unexpected failure in %s", method)
        await abort(context, api_errors.internal())


async def _send_all(context: grpc.aio.ServicerContext[Any, Any], items: AsyncIterator[Any]) -> None:
    async for item in items:
        if not await _sent(context, item):
            return  # the caller went away while its message was held back: nobody to tell


@dataclasses.dataclass(frozen=True, slots=True)
class Undecodable:
    """Stands in for a request whose bytes did not parse, so the guard can answer INVALID_ARGUMENT
    with an ErrorInfo (grpcio's own answer would be UNKNOWN, with a traceback in the log)."""

    error: str


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    parse = deserializer

    def decode(data: bytes) -> Any:
        try:
            return parse(data)
        except message.DecodeError as err:
            return Undecodable(str(err)[:200])

    return decode


async def _sent(context: grpc.aio.ServicerContext[Any, Any], item: Any) -> bool:
    """Write one streamed message; False if the stream broke under the write.

    A slow reader's message waits for HTTP/2 flow control; if the client cancels or disconnects
    meanwhile, the write fails (grpcio's own ExecuteBatchError, not public API). That is the client's
    doing, not a server fault, and a broken stream has nobody left to hear a status; written by grpcio
    itself (a yielded message) it would be logged as an error with a traceback."""
    try:
        await context.write(item)
    except Exception as err:  # noqa: BLE001 - any failed write means the stream is gone
        logger.info("stream ended by the client during a write (%s)", type(err).__name__)
        return False
    return True


def _is_abort(err: Exception) -> bool:
    # context.abort() raises grpc's own AbortError to unwind the handler; it must pass through.
    return isinstance(err, grpc.aio.AbortError)
