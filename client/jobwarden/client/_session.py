"""A worker's Work session (WorkerService.Work) as the SDK runs it: one stream for claims and writes.

The :class:`Worker` uses it by default. Jobs are pushed as the worker frees slots (one credit per
slot), so there is no polling; progress, assets, messages, completions and failures are steps on
the same stream. Whatever is ready while a message is being written goes into the next one together, and the
server commits a message's steps together: under load, many jobs cost one message and one commit.
The worker lists the jobs it runs at least three times per lease duration (in whatever message goes
next, or in one of its own when idle); the server renews their leases in one write and says when one
is cancelled or lost.

A step has the same effect and answer as the matching unary call (:class:`SessionLink` offers the
same five methods as the client, so the worker's code does not care which it talks to). When the
stream breaks, the link opens a new session with backoff, resends the steps not yet answered (their
request_ids make that safe), and lists the jobs still running in its first message, so their leases
go on being renewed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import grpc

from jobwarden import errors
from jobwarden.client import _convert, _models
from jobwarden.client import _worker_requests as requests
from jobwarden.client._backoff import backoff
from jobwarden.client._calls import Calls
from jobwarden.v1 import worker_service_pb2 as pb

logger = logging.getLogger(__name__)

MAX_STEPS = 1000
"""Steps per message at most (the server's limit)."""
FATAL = (errors.Unauthenticated, errors.PermissionDenied, errors.InvalidArgument, errors.Unimplemented)
"""Errors that no amount of waiting cures, for a session as for polling: reopening or polling again
would only spin. Everything else (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, ...)
is backed off and retried."""


class SessionOwner(Protocol):
    """What the link needs from the worker it serves."""

    def free_slots(self) -> int:
        """How many more jobs the worker can take now."""
        ...

    def running(self) -> Sequence[tuple[str, str]]:
        """The jobs it runs: (job id, lease token)."""
        ...

    def on_claim(self, claim: _models.Claim) -> None:
        """A job was pushed to the worker."""
        ...

    def on_cancel(self, job_id: str) -> None:
        """A client asked to cancel a job the worker runs."""
        ...

    def on_lost(self, job_id: str) -> None:
        """The worker's lease on a job is gone."""
        ...


_Pending = tuple[pb.WorkStep, "asyncio.Future[pb.WorkAck]"]


class SessionLink:
    """Keeps a Work session open for a worker (reopening it when it breaks) and sends its steps."""

    def __init__(
        self,
        calls: Calls,
        owner: SessionOwner,
        *,
        worker_id: str,
        job_types: Sequence[str],
        lease_duration: float,
    ) -> None:
        """Made by the Worker; :meth:`run` opens the session."""
        self._calls = calls
        self._owner = owner
        self._lease_duration = lease_duration
        self._start = pb.WorkStart(
            worker_id=worker_id,
            job_types=list(job_types),
            lease_duration=_convert.duration_to_pb(lease_duration),
            brief_acks=True,  # the Worker never reads a finished job back
        )
        self._pending: list[_Pending] = []
        self._inflight: dict[str, _Pending] = {}
        self._credits = 0
        self._claims_stopped = False
        self._stop_sent = False
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._failed: errors.JobwardenError | None = None

    # --- the session ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep a session open until :meth:`close` and every step was answered.

        Raises:
            jobwarden.errors.JobwardenError: The server refused the session in a way that opening
                it again cannot cure (credentials, permissions, an invalid start).
        """
        failures = 0
        while True:
            try:
                await self._session()
                return
            except errors.JobwardenError as err:
                if isinstance(err, FATAL):
                    self._fail_all(err)
                    raise
                self._requeue()
                delay = err.retry_delay or backoff(failures)
                failures += 1
                logger.warning("work session broke (%s); reopening in %.1fs", err, delay)
                await asyncio.sleep(delay)

    def grant(self, count: int = 1) -> None:
        """Tell the server the worker can take `count` more jobs."""
        self._credits += count
        self._wake.set()

    def stop_claims(self) -> None:
        """Ask for no more jobs (the worker is stopping); steps go on until :meth:`close`."""
        self._claims_stopped = True
        self._wake.set()

    def close(self) -> None:
        """End the session once every step sent so far is answered."""
        self._closing.set()
        self._wake.set()

    async def _session(self) -> None:
        call: Any = self._calls._worker_stub.Work(metadata=self._calls._metadata)
        self._credits = 0  # a new session is owed nothing: the start grants what is free now
        self._stop_sent = self._claims_stopped
        try:
            await call.write(
                pb.WorkRequest(
                    start=self._start,
                    credits=self._owner.free_slots(),
                    stop_claims=self._claims_stopped,
                    holding=self._holding(),  # jobs started in an earlier session go on being renewed
                )
            )
            sender = asyncio.create_task(self._send(call))
            try:
                while (response := await call.read()) is not grpc.aio.EOF:
                    self._received(response)
                    if sender.done():
                        sender.result()  # a failed write ends the session
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
            if self._inflight or self._pending or not self._closing.is_set():
                raise errors.Unavailable(
                    "the server ended the work session", code=grpc.StatusCode.UNAVAILABLE
                )
        except grpc.RpcError as err:
            raise errors.from_rpc_error(err) from err
        finally:
            call.cancel()

    async def _send(self, call: Any) -> None:
        # The server renews the leases the worker lists, and pushes claims only while it hears from it:
        # list the running jobs at least three times per lease duration, in a message of their own
        # when there is nothing else to say.
        every = self._lease_duration / 3
        loop = asyncio.get_running_loop()
        listed_at = loop.time()
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, listed_at + every - loop.time()))
            except TimeoutError:
                listed_at = loop.time()
                await call.write(pb.WorkRequest(holding=self._holding()))
                continue
            self._wake.clear()
            if self._closing.is_set() and not self._pending and not self._inflight:
                await call.done_writing()
                return
            batch, self._pending = self._pending[:MAX_STEPS], self._pending[MAX_STEPS:]
            credits, self._credits = self._credits, 0
            stop, self._stop_sent = self._claims_stopped and not self._stop_sent, self._claims_stopped
            if not batch and not credits and not stop:
                continue
            for step, future in batch:
                self._inflight[step.step_id] = (step, future)
            request = pb.WorkRequest(credits=credits, steps=[step for step, _ in batch], stop_claims=stop)
            if loop.time() - listed_at >= every:
                listed_at = loop.time()
                request.holding.extend(self._holding())
            await call.write(request)
            if self._pending:
                self._wake.set()

    def _received(self, response: pb.WorkResponse) -> None:
        for claim in response.claims:
            self._owner.on_claim(_convert.claim_from_pb(claim))
        for ack in response.acks:
            sent = self._inflight.pop(ack.step_id, None)
            if sent is None or sent[1].done():
                continue
            if ack.status.code == 0:
                sent[1].set_result(ack)
            else:
                sent[1].set_exception(errors.from_status(ack.status))
        for job_id in response.cancel_job_ids:
            self._owner.on_cancel(job_id)
        for job_id in response.lost_job_ids:
            self._owner.on_lost(job_id)
        if self._closing.is_set() and not self._inflight:
            self._wake.set()  # the sender may end the session now

    def _holding(self) -> list[pb.WorkLease]:
        return [pb.WorkLease(job_id=job_id, lease_token=token) for job_id, token in self._owner.running()]

    def _requeue(self) -> None:
        """Steps sent to a session that broke go first in the next one (same request_ids), as soon as
        it opens: nothing else may wake its sender while those steps hold their jobs' slots."""
        self._pending[:0] = list(self._inflight.values())
        self._inflight.clear()
        if self._pending:
            self._wake.set()

    def _fail_all(self, err: errors.JobwardenError) -> None:
        self._failed = err
        for _, future in [*self._pending, *self._inflight.values()]:
            if not future.done():
                future.set_exception(err)
        self._pending.clear()
        self._inflight.clear()

    def _queue(self, kind: str, request: Any) -> asyncio.Future[pb.WorkAck]:
        if self._failed is not None:
            raise self._failed
        step = pb.WorkStep(step_id=uuid.uuid4().hex, **{kind: request})
        future: asyncio.Future[pb.WorkAck] = asyncio.get_running_loop().create_future()
        self._pending.append((step, future))
        self._wake.set()
        return future

    async def _step(self, kind: str, request: Any) -> Any:
        ack = await self._queue(kind, request)
        return getattr(ack, kind)

    # --- the worker calls, as the client has them -------------------------------------------------

    async def report_progress(
        self,
        job_id: str,
        lease_token: str,
        percent: float,
        message: str = "",
        done: int = 0,
        total: int = 0,
        *,
        request_id: str | None = None,
    ) -> tuple[datetime | None, bool]:
        """As :meth:`jobwarden.client.Client.report_progress`, as a step of the session."""
        request = requests.progress(job_id, lease_token, percent, message, done, total, request_id)
        return requests.progress_answer(await self._step("progress", request))

    async def add_asset(
        self,
        job_id: str,
        lease_token: str,
        asset_type: str,
        uri: str,
        *,
        storage_path: str = "",
        size_bytes: int = 0,
        content_type: str = "",
        sha256: str = "",
        metadata: Mapping[str, str] | None = None,
        request_id: str | None = None,
    ) -> _models.Asset:
        """As :meth:`jobwarden.client.Client.add_asset`, as a step of the session."""
        response = await self._step(
            "asset",
            requests.asset(
                job_id,
                lease_token,
                asset_type,
                uri,
                storage_path=storage_path,
                size_bytes=size_bytes,
                content_type=content_type,
                sha256=sha256,
                metadata=metadata,
                request_id=request_id,
            ),
        )
        return _convert.asset_from_pb(response.asset)

    async def add_messages(
        self,
        job_id: str,
        lease_token: str,
        messages: Iterable[_models.JobMessage | str],
        *,
        request_id: str | None = None,
    ) -> list[_models.JobEvent]:
        """As :meth:`jobwarden.client.Client.add_messages`, as a step of the session."""
        request = requests.messages(job_id, lease_token, messages, request_id)
        return requests.messages_answer(await self._step("messages", request))

    async def complete_job(
        self,
        job_id: str,
        lease_token: str,
        result: Mapping[str, Any] | None = None,
        partial: bool = False,
        error_message: str = "",
        *,
        request_id: str | None = None,
    ) -> None:
        """As :meth:`jobwarden.client.Client.complete_job`, as a step of the session; the session's
        acks are brief, so the answer is only whether it went through."""
        request = requests.complete(job_id, lease_token, result, partial, error_message, request_id)
        await self._step("complete", request)

    async def fail_job(
        self,
        job_id: str,
        lease_token: str,
        message: str,
        reason: str = "",
        retryable: bool = False,
        *,
        stop_reason: _models.StopReason | str | None = None,
        request_id: str | None = None,
    ) -> None:
        """As :meth:`jobwarden.client.Client.fail_job`, as a step of the session; the session's acks
        are brief, so the answer is only whether it went through."""
        request = requests.fail(job_id, lease_token, message, reason, retryable, stop_reason, request_id)
        await self._step("fail", request)
