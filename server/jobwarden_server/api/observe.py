"""The outermost interceptor: times every call into jobwarden_rpc_duration_seconds{method, code}, and
ties the log records written while a call runs to the job its request names (`job_id`).

It wraps what the guard (api/guard.py) returns, so the time includes authentication and the code is
the one the caller gets, refusals included. Only methods the server has are timed: a call to an
unknown method would otherwise add a label value per name a caller makes up.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from jobwarden_server.observability import logs
from jobwarden_server.observability.metrics import Metrics

Context = grpc.aio.ServicerContext[Any, Any]


class RpcObserver(grpc.aio.ServerInterceptor):
    """Times each call of a known method by its final status code."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = str(handler_call_details.method).lstrip("/")
        options = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(self._unary(handler.unary_unary, method), **options)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(self._stream(handler.unary_stream, method), **options)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(self._unary(handler.stream_unary, method), **options)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._stream(handler.stream_stream, method), **options
            )
        return handler

    def _unary(self, behaviour: Any, method: str) -> Any:
        async def unary(request: Any, context: Context) -> Any:
            started, code = time.perf_counter(), grpc.StatusCode.UNKNOWN
            try:
                with logs.about_job(_job_id(request)):
                    answer = behaviour(request, context)
                    if inspect.isawaitable(answer):
                        answer = await answer
                code = _code(context)
                return answer
            except BaseException as err:
                code = _failed(context, err)
                raise
            finally:
                self._metrics.time_rpc(method, code.name, time.perf_counter() - started)

        return unary

    def _stream(self, behaviour: Any, method: str) -> Any:
        """Streamed answers: the handler either yields them or writes them itself (the guard's do)."""

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            started, code = time.perf_counter(), grpc.StatusCode.UNKNOWN
            try:
                with logs.about_job(_job_id(request)):
                    answers = behaviour(request, context)
                    if hasattr(answers, "__aiter__"):
                        async for answer in answers:
                            yield answer
                    elif inspect.isawaitable(answers):
                        await answers
                code = _code(context)
            except BaseException as err:
                code = _failed(context, err)
                raise
            finally:
                self._metrics.time_rpc(method, code.name, time.perf_counter() - started)

        return stream


def _job_id(request: Any) -> str:
    """The job a request is about: its `job_id` field, when it has one (a stream of requests: none)."""
    job_id = getattr(request, "job_id", "")
    return job_id if isinstance(job_id, str) else ""


def _code(context: Context) -> grpc.StatusCode:
    """The status a handler that returned set (OK unless it set another)."""
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.OK


def _failed(context: Context, err: BaseException) -> grpc.StatusCode:
    """The status of a call that ended by an exception: the guard's abort set it; a caller that went
    away cancelled the handler (or closed its stream); anything else becomes UNKNOWN in grpc."""
    if isinstance(err, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN
