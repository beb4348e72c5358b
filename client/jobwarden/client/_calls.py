"""The plumbing every SDK call goes through: the channel, its stubs, deadlines and error mapping."""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
import grpc.aio

from jobwarden import errors
from jobwarden.client import _channel, _tls, _tracing
from jobwarden.v1 import job_service_pb2_grpc, worker_service_pb2_grpc

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


def idempotency_key(given: str | None) -> str:
    """The caller's idempotency key, or a new one (so the transport's own retries stay idempotent)."""
    return given if given else str(uuid.uuid4())


class Calls:
    """A channel to one server, opened on first use; the base of :class:`jobwarden.client.Client`."""

    def __init__(
        self,
        target: str = _channel.DEFAULT_TARGET,
        token: str | None = None,
        *,
        tls: bool | _tls.TlsOptions = False,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = _channel.DEFAULT_TIMEOUT,
        channel: grpc.aio.Channel | None = None,
        max_reconnect_backoff: float | None = None,
    ) -> None:
        """Creates a client; no connection is made until the first call.

        Args:
            target: ``host:port`` of the server.
            token: Bearer token sent on every call; None for a server in local mode, or when a
                client certificate identifies the caller (mutual TLS).
            tls: True to use TLS trusting the system's CAs, or :class:`TlsOptions` naming the CA
                to trust and the client certificate for mutual TLS; False for plaintext.
            credentials: Ready-made channel credentials, instead of ``tls``.
            timeout: Default deadline, in seconds, of each unary call.
            channel: An already open channel to use instead (the client will not close it).
            max_reconnect_backoff: Longest wait, in seconds, between gRPC's attempts to reconnect
                to a server that went away (None keeps gRPC's default, which grows to 120 s).
                While a reconnect is pending, calls fail at once with UNAVAILABLE, so an
                interactive tool that should find a restarted server within seconds lowers it.

        Raises:
            ValueError: Both ``tls`` and ``credentials`` were given.
            OSError: A file named in ``tls`` cannot be read (files are read here, not on first use).
        """
        self.target = target
        self.timeout = timeout
        self._channel_options: list[tuple[str, Any]] = []
        if max_reconnect_backoff is not None:
            self._channel_options += _channel.reconnect_options(max_reconnect_backoff)
        if tls is not False:
            if credentials is not None:
                raise ValueError("give tls or credentials, not both")
            options = _tls.TlsOptions() if tls is True else tls
            credentials = options.channel_credentials()
            self._channel_options += options.channel_options()
        self._credentials = credentials
        self._metadata = _channel.auth_metadata(token)
        self._channel = channel
        self._owns_channel = channel is None
        self._jobs: job_service_pb2_grpc.JobServiceAsyncStub | None = None
        self._workers: worker_service_pb2_grpc.WorkerServiceAsyncStub | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel (if the client opened it); cancels calls still in flight."""
        if self._channel is not None and self._owns_channel:
            await self._channel.close()
            self._channel = None
        self._jobs = self._workers = None

    # --- plumbing ---------------------------------------------------------------------------------

    def _open(self) -> grpc.aio.Channel:
        if self._channel is None:
            self._channel = _channel.create_channel(
                self.target, credentials=self._credentials, options=self._channel_options
            )
        return self._channel

    @property
    def _job_stub(self) -> job_service_pb2_grpc.JobServiceAsyncStub:
        if self._jobs is None:
            self._jobs = job_service_pb2_grpc.JobServiceStub(self._open())
        return self._jobs

    @property
    def _worker_stub(self) -> worker_service_pb2_grpc.WorkerServiceAsyncStub:
        if self._workers is None:
            self._workers = worker_service_pb2_grpc.WorkerServiceStub(self._open())
        return self._workers

    async def _unary(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[_Req, _Resp],
        request: _Req,
        *,
        deadline: float | None = None,
        traced: str = "",
    ) -> _Resp:
        """One unary call; `traced` names a call that runs in its own span and sends its trace
        context to the server (_tracing.client_call): the calls that create jobs."""
        if not traced:
            return await self._call(method, request, deadline, self._metadata)
        with _tracing.client_call(traced) as trace_metadata:
            return await self._call(method, request, deadline, self._metadata + trace_metadata)

    async def _call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[_Req, _Resp],
        request: _Req,
        deadline: float | None,
        metadata: tuple[tuple[str, str], ...],
    ) -> _Resp:
        try:
            return await method(request, timeout=deadline or self.timeout, metadata=metadata)
        except grpc.RpcError as err:
            raise errors.from_rpc_error(err) from err
