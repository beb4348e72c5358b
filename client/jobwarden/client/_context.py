"""What a handler sees of its job: :class:`JobContext`, plus the ways a handler can end a job."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from jobwarden import errors
from jobwarden.client import _convert, _models

logger = logging.getLogger(__name__)


class PermanentError(Exception):
    """Raise from a handler to fail the job for good, without another attempt.

    Any other exception fails only the current attempt: the server re-queues the job while attempts
    are left.

    Args:
        message: What went wrong; recorded as the job's error message.
        reason: Machine-readable reason, for example ``"BAD_INPUT"``.
        stop_reason: Why the job stopped: ``RESOURCE_LIMIT_EXCEEDED``, ``VALIDATION_ERROR``,
            ``PROVIDER_ERROR`` or ``INTERNAL_ERROR``. The other reasons are the server's to record.

    Raises:
        ValueError: ``stop_reason`` is unknown or one only the server records.
    """

    def __init__(
        self, message: str, *, reason: str = "", stop_reason: _models.StopReason | str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        if stop_reason is not None and not _models.StopReason(str(stop_reason).upper()).worker_may_give:
            raise ValueError(f"stop_reason {stop_reason} is recorded by the server; a worker cannot give it")
        self.stop_reason = stop_reason


@dataclasses.dataclass(frozen=True, slots=True)
class PartialResult:
    """Return this from a handler to finish the job PARTIAL: some output, some failure.

    Attributes:
        result: The output that was produced.
        error_message: What went wrong (required).
    """

    result: Mapping[str, Any]
    error_message: str


HandlerResult = Mapping[str, Any] | PartialResult | None
"""What a handler returns: a result dict (COMPLETED), a :class:`PartialResult`, or None."""

Handler = Callable[["JobContext"], Awaitable[HandlerResult]]
"""``async def handler(ctx: JobContext) -> dict | PartialResult | None``."""


class WorkerLink(Protocol):
    """How a worker's writes reach the server: the client's unary calls, or a Work session's steps
    (_session.SessionLink). Both have these methods, with the same meaning and answers; the Worker
    reads nothing back from a completion or a failure (a session's brief acks carry no job)."""

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
    ) -> tuple[datetime | None, bool]: ...

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
    ) -> _models.Asset: ...

    async def add_messages(
        self,
        job_id: str,
        lease_token: str,
        messages: Iterable[_models.JobMessage | str],
        *,
        request_id: str | None = None,
    ) -> list[_models.JobEvent]: ...

    async def complete_job(
        self,
        job_id: str,
        lease_token: str,
        result: Mapping[str, Any] | None = None,
        partial: bool = False,
        error_message: str = "",
        *,
        request_id: str | None = None,
    ) -> object: ...

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
    ) -> object: ...


class _Abort(enum.IntEnum):
    # Ordered by precedence: a lost lease beats a cancel, which beats a shutdown.
    NONE = 0
    SHUTDOWN = 1
    CANCELLED = 2
    LEASE_LOST = 3


class JobContext:
    """The job a handler is running, and the handler's line to the server.

    Attributes:
        job: The job as claimed (RUNNING).
        lease_token: The lease token of this attempt.
        worker_id: The id of the worker running the handler.
        cancelled: Set when a client asked to cancel the job. The handler should stop soon; it is
            cancelled (``asyncio.CancelledError``) after the worker's cancel grace period anyway.
    """

    def __init__(
        self, link: WorkerLink, claim: _models.Claim, worker_id: str, *, cancel_grace: float
    ) -> None:
        """Made by the :class:`Worker` for each claimed job; not meant to be built by users."""
        self.job = claim.job
        self.lease_token = claim.lease_token
        self.worker_id = worker_id
        self.cancelled = asyncio.Event()
        self._link = link
        self._cancel_grace = cancel_grace
        self._progress = claim.job.progress
        self._abort = _Abort.NONE
        self._task: asyncio.Task[HandlerResult] | None = None
        self._cancel_timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()
        self._last_report = self._loop.time()
        self._report_lock = asyncio.Lock()

    @property
    def parameters(self) -> dict[str, Any]:
        """The job's input."""
        return self.job.parameters

    @property
    def cancel_requested(self) -> bool:
        """Whether a client asked to cancel the job."""
        return self.cancelled.is_set()

    async def progress(self, percent: float, message: str = "", done: int = 0, total: int = 0) -> None:
        """Reports progress (this also renews the lease).

        Args:
            percent: 0 to 100 inclusive.
            message: Free-form status line.
            done: Units of work done.
            total: Total units of work (0 when unknown).

        Raises:
            jobwarden.errors.LeaseLost: The job is no longer this worker's; the handler is
                being aborted and its outcome will be ignored.
            jobwarden.errors.ProgressOutOfRange: ``percent`` or ``done``/``total`` are invalid.
        """
        await self._report(_models.Progress(percent=percent, message=message, done=done, total=total))

    async def add_asset(
        self,
        asset_type: str,
        uri: str,
        *,
        storage_path: str = "",
        size_bytes: int = 0,
        content_type: str = "",
        sha256: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> _models.Asset:
        """Attaches an output to the job.

        Returns:
            The stored asset.

        Raises:
            jobwarden.errors.LeaseLost: The job is no longer this worker's.
        """
        try:
            return await self._link.add_asset(
                self.job.id,
                self.lease_token,
                asset_type,
                uri,
                storage_path=storage_path,
                size_bytes=size_bytes,
                content_type=content_type,
                sha256=sha256,
                metadata=metadata,
            )
        except (errors.LeaseLost, errors.NotFound):
            self._set_abort(_Abort.LEASE_LOST)
            raise

    async def log(
        self,
        text: str,
        *,
        level: _models.MessageLevel | str = _models.MessageLevel.INFO,
        data: Any = None,
    ) -> _models.JobEvent:
        """Attaches a message to the job: a log line, a warning, an intermediate output (with
        ``level=OUTPUT`` and ``data``). Watchers see it at once; ``Client.list_job_messages`` lists it.

        On a Work session (the default) it is a step of the stream, sent with whatever else is ready;
        several handlers logging at once share one message to the server and one commit.

        Args:
            text: The text (may be empty when ``data`` is given).
            level: ``DEBUG``, ``INFO``, ``WARNING``, ``ERROR`` or ``OUTPUT``.
            data: Structured content: any JSON value, numbers within ±(2**53 - 1).

        Returns:
            The ``log`` event it was recorded as.

        Raises:
            ValueError: ``level`` is unknown or ``data`` cannot be sent; nothing was sent.
            jobwarden.errors.InvalidArgument: The message is empty or over 64 KiB.
            jobwarden.errors.LeaseLost: The job is no longer this worker's.
        """
        message = _models.JobMessage(text=text, level=_convert.message_level(level), data=data)
        [event] = await self.add_messages([message])
        return event

    async def add_messages(self, messages: Iterable[_models.JobMessage | str]) -> list[_models.JobEvent]:
        """Attaches several messages to the job in one write, in order (1 to 100; a plain string is
        an INFO message with that text). See :meth:`log`.

        Returns:
            The ``log`` events they were recorded as, in order.
        """
        try:
            return await self._link.add_messages(self.job.id, self.lease_token, list(messages))
        except (errors.LeaseLost, errors.NotFound):
            self._set_abort(_Abort.LEASE_LOST)
            raise

    # --- used by the Worker -----------------------------------------------------------------------

    async def _report(self, progress: _models.Progress | None = None) -> None:
        """Sends ``progress``, or with None (the heartbeat) resends the last accepted progress.

        One report at a time: a heartbeat in flight while the handler reports could otherwise reach
        the server last and put older progress back, and would then be the value resent from then on.
        The heartbeat reads the progress only once it is its turn, so it never resends a stale value.
        """
        async with self._report_lock:
            if progress is None:
                progress = self._progress
            try:
                _, cancel = await self._link.report_progress(
                    self.job.id,
                    self.lease_token,
                    progress.percent,
                    progress.message,
                    progress.done,
                    progress.total,
                )
            except (errors.LeaseLost, errors.NotFound):
                # NOT_FOUND for a job we hold means it is gone for us, which is the same thing.
                self._set_abort(_Abort.LEASE_LOST)
                raise
            # Kept only once accepted: the heartbeat resends it, and a refused value would fail every beat.
            self._progress = progress
            self._last_report = self._loop.time()
        if cancel:
            self._request_cancel()

    def _request_cancel(self) -> None:
        if self.cancelled.is_set():
            return
        logger.info("job %s: cancel requested; stopping its handler", self.job.id)
        self.cancelled.set()
        self._set_abort(_Abort.CANCELLED)
        if self._task is not None and self._abort == _Abort.CANCELLED:
            # Give the handler a moment to wind down on its own before cancelling it.
            self._cancel_timer = self._loop.call_later(self._cancel_grace, self._task.cancel)

    def _set_abort(self, reason: _Abort) -> None:
        if reason <= self._abort:
            return
        self._abort = reason
        if reason in (_Abort.LEASE_LOST, _Abort.SHUTDOWN) and self._task is not None:
            self._task.cancel()

    def _disarm(self) -> None:
        if self._cancel_timer is not None:
            self._cancel_timer.cancel()
            self._cancel_timer = None
