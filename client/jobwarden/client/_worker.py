"""The managed worker loop: claim, run handlers, keep leases alive, finish jobs, shut down cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from jobwarden import errors
from jobwarden.client import _client, _context, _models, _tracing
from jobwarden.client._backoff import backoff
from jobwarden.client._session import FATAL, SessionLink

logger = logging.getLogger(__name__)

_H = TypeVar("_H", bound=_context.Handler)

_FINISH_ATTEMPTS = 5
_MIN_EMPTY_POLL = 1.0
# The server caps error messages; a traceback-sized message would be refused and lose the failure.
_MAX_MESSAGE_CHARS = 4000


def _default_worker_id() -> str:
    # pid alone collides across containers (everyone is pid 1); the suffix keeps restarts apart too.
    return f"{socket.gethostname()[:64]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Worker:
    """Runs handlers for claimed jobs, with heartbeats, cancellation and graceful shutdown.

    Example::

        worker = Worker(client, concurrency=8)

        @worker.handler("thumbnail")
        async def thumbnail(ctx: JobContext) -> dict[str, Any]:
            await ctx.progress(50, "resizing")
            return {"uri": "s3://..."}

        await worker.run(install_signal_handlers=True)

    A handler's outcome decides how the job ends: a returned dict (or None) completes it, a
    :class:`PartialResult` finishes it PARTIAL, a :class:`PermanentError` fails it for good and any
    other exception fails the attempt as retryable. While a handler runs, the worker renews the
    lease about three times per lease duration. When a client cancels the job, ``ctx.cancelled``
    is set, the handler is cancelled after ``cancel_grace`` seconds, and the job is failed with
    ``"cancelled"`` (which the server records as CANCELLED). When the lease is lost, the handler is
    cancelled and nothing is reported: the job is someone else's now.

    By default the worker runs a Work session: one stream on which the server pushes jobs as slots
    free up and renews the leases of the jobs it runs, and on which progress, assets and outcomes
    travel as steps, many together under load. With ``session=False`` it uses the unary calls
    instead (long-polling ClaimJobs, a heartbeat per job), as simple clients in any language do.

    A Worker runs once: build a new one to run again.
    """

    def __init__(
        self,
        client: _client.Client,
        worker_id: str | None = None,
        concurrency: int = 4,
        lease_duration: float = 30.0,
        poll_wait: float = 10.0,
        *,
        shutdown_grace: float = 30.0,
        cancel_grace: float = 5.0,
        session: bool = True,
    ) -> None:
        """Creates a worker; register handlers, then call :meth:`run`.

        Args:
            client: The client to call the server with.
            worker_id: The id recorded on claimed jobs (default: host, pid and a random suffix).
            concurrency: At most this many handlers run at once.
            lease_duration: Seconds a lease lasts without renewal (the server allows 1..3600).
            poll_wait: Seconds each ClaimJobs long-poll waits for work (at most 60).
            shutdown_grace: Seconds :meth:`stop` lets running handlers finish before they are
                cancelled and their jobs re-queued.
            cancel_grace: Seconds a handler has to stop by itself after a cancel request.
            session: Run a Work session (the default); False polls with the unary calls.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if lease_duration <= 0:
            raise ValueError("lease_duration must be positive")
        self.client = client
        self.worker_id = worker_id or _default_worker_id()
        self.concurrency = concurrency
        self.lease_duration = lease_duration
        self.poll_wait = poll_wait
        self.shutdown_grace = shutdown_grace
        self.cancel_grace = cancel_grace
        self.session = session
        self._link: _context.WorkerLink = client
        self._session: SessionLink | None = None
        self._session_task: asyncio.Task[None] | None = None
        self._handlers: dict[str, _context.Handler] = {}
        self._runs: dict[asyncio.Task[None], _context.JobContext] = {}
        self._slots_taken: set[asyncio.Task[None]] = set()
        """The runs whose handler has not returned yet: each takes one of `concurrency` slots. A run
        whose handler returned is only reporting its outcome and frees its slot at once (see
        `_free_slot`)."""
        self._stopping = asyncio.Event()
        self._force = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._started = False
        self._handbacks: set[asyncio.Task[None]] = set()

    # --- registration -----------------------------------------------------------------------------

    def register(self, job_type: str, fn: _context.Handler) -> None:
        """Registers ``fn`` as the handler of ``job_type`` jobs.

        Raises:
            ValueError: ``job_type`` already has a handler.
        """
        if job_type in self._handlers:
            raise ValueError(f"a handler for {job_type!r} is already registered")
        self._handlers[job_type] = fn

    def handler(self, job_type: str) -> Callable[[_H], _H]:
        """Decorator form of :meth:`register`."""

        def decorate(fn: _H) -> _H:
            self.register(job_type, fn)
            return fn

        return decorate

    @property
    def job_types(self) -> list[str]:
        """The job types this worker claims."""
        return sorted(self._handlers)

    @property
    def running_jobs(self) -> int:
        """How many handlers are running now."""
        return len(self._slots_taken)

    # --- lifecycle --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Asks :meth:`run` to stop: claim no more, let running handlers finish, then return.

        A second call skips what is left of the shutdown grace period. Safe to call from a signal
        handler installed with ``loop.add_signal_handler`` and before :meth:`run`.
        """
        if self._stopping.is_set():
            self._force.set()
        self._stopping.set()

    async def run(self, *, install_signal_handlers: bool = False) -> None:
        """Claims and runs jobs until :meth:`stop` is called.

        On stop, running handlers get ``shutdown_grace`` seconds to finish; the rest are cancelled
        and their jobs failed as retryable (``"worker shutting down"``) so another worker picks them
        up. If the task running this method is cancelled, the same happens without the grace period.

        Args:
            install_signal_handlers: Make SIGINT and SIGTERM call :meth:`stop` (the second one
                skips the grace period). Unix only; ignored elsewhere.

        Raises:
            ValueError: No handler is registered.
            jobwarden.errors.JobwardenError: Claiming failed in a way retrying cannot fix
                (bad credentials, permission denied, invalid request); running jobs are shut down first.
        """
        if not self._handlers:
            raise ValueError("register at least one handler before run()")
        if self._started:
            raise RuntimeError("a Worker runs once; create a new one")
        self._started = True
        loop = asyncio.get_running_loop()
        signals = self._install_signal_handlers(loop) if install_signal_handlers else []
        logger.info(
            "worker %s claiming %s (concurrency %d)", self.worker_id, self.job_types, self.concurrency
        )
        try:
            await (self._serve_session() if self.session else self._poll())
        except asyncio.CancelledError:
            self._force.set()
            raise
        finally:
            self._stopping.set()
            try:
                await self._drain()
            finally:
                await self._close_session()
                for sig in signals:
                    loop.remove_signal_handler(sig)
                logger.info("worker %s stopped", self.worker_id)

    def _install_signal_handlers(self, loop: asyncio.AbstractEventLoop) -> list[signal.Signals]:
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.stop)
            except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
                continue
            installed.append(sig)
        return installed

    # --- the Work session (default) ---------------------------------------------------------------

    async def _serve_session(self) -> None:
        """Run the session until stop; jobs arrive through on_claim. A fatal refusal is raised."""
        link = SessionLink(
            self.client,
            self,
            worker_id=self.worker_id,
            job_types=self.job_types,
            lease_duration=self.lease_duration,
        )
        self._session, self._link = link, link
        self._session_task = asyncio.create_task(link.run(), name=f"jobwarden-session-{self.worker_id}")
        await self._race(self._session_task, cancel=False)
        if self._session_task.done():
            self._session_task.result()  # the server refused the session for good: raise why
        link.stop_claims()  # stopping: running jobs still report through the session

    async def _close_session(self) -> None:
        """Once every outcome is reported, end the session (waiting a little for the last answers)."""
        if self._session is None or self._session_task is None:
            return
        self._session.close()
        done, _ = await asyncio.wait({self._session_task}, timeout=max(5.0, self.cancel_grace))
        if not done:
            self._session_task.cancel()
        await asyncio.gather(self._session_task, return_exceptions=True)

    def free_slots(self) -> int:
        """SessionOwner: how many more jobs this worker can take now."""
        return 0 if self._stopping.is_set() else max(0, self.concurrency - len(self._slots_taken))

    def running(self) -> list[tuple[str, str]]:
        """SessionOwner: the jobs running now, whose leases the session keeps."""
        return [
            (ctx.job.id, ctx.lease_token)
            for ctx in self._runs.values()
            if ctx._abort != _context._Abort.LEASE_LOST
        ]

    def on_claim(self, claim: _models.Claim) -> None:
        """SessionOwner: run a pushed job, or hand it straight back when stopping."""
        if self._stopping.is_set():
            ctx = _context.JobContext(self._link, claim, self.worker_id, cancel_grace=self.cancel_grace)
            task = asyncio.create_task(self._fail(ctx, "worker shutting down", retryable=True))
            self._handbacks.add(task)
            task.add_done_callback(self._handbacks.discard)
            return
        self._start(claim)

    def on_cancel(self, job_id: str) -> None:
        """SessionOwner: a client asked to cancel one of our jobs."""
        for ctx in self._runs.values():
            if ctx.job.id == job_id:
                ctx._request_cancel()

    def on_lost(self, job_id: str) -> None:
        """SessionOwner: our lease on a job is gone."""
        for ctx in self._runs.values():
            if ctx.job.id == job_id:
                logger.warning("job %s: lease lost; abandoning it", job_id)
                ctx._set_abort(_context._Abort.LEASE_LOST)

    # --- polling ----------------------------------------------------------------------------------

    async def _poll(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._slot_freed.clear()  # before counting, so a slot freed meanwhile is not missed
            free = self.concurrency - len(self._slots_taken)
            if free <= 0:
                await self._wait_until_stopping(self._slot_freed.wait())
                continue
            started = asyncio.get_running_loop().time()
            try:
                claims = await self._claim(min(free, 100))
            except FATAL as err:
                logger.error("worker %s cannot claim jobs (%s); stopping", self.worker_id, err)
                raise
            except errors.JobwardenError as err:
                delay = err.retry_delay or backoff(failures)
                failures += 1
                logger.warning("claiming failed (%s); retrying in %.1fs", err, delay)
                await self._wait_until_stopping(asyncio.sleep(delay))
                continue
            failures = 0
            for claim in claims:
                self._start(claim)
            # An empty answer that came back at once (poll_wait=0, or a server that does not long-poll)
            # must not turn the loop into a busy one: poll at most once per _MIN_EMPTY_POLL seconds.
            idle = _MIN_EMPTY_POLL - (asyncio.get_running_loop().time() - started)
            if not claims and idle > 0:
                await self._wait_until_stopping(asyncio.sleep(idle))

    async def _wait_until_stopping(self, aw: Coroutine[Any, Any, Any]) -> None:
        """Awaits ``aw`` but gives up (cancelling it) as soon as the worker is stopping."""
        await self._race(asyncio.ensure_future(aw))

    async def _race(self, task: asyncio.Future[Any], *, cancel: bool = True) -> bool:
        """Waits for ``task`` or for stop; returns whether ``task`` finished (else, unless told not to,
        it is cancelled)."""
        stop = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if cancel and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, errors.JobwardenError):
                    await task
        return not task.cancelled()

    async def _claim(self, max_jobs: int) -> list[_models.Claim]:
        # Stopping cancels a long-poll in flight rather than waiting up to poll_wait for it. A claim the
        # server made just as the call was cancelled is not lost: its lease expires and it is retried.
        call = asyncio.ensure_future(
            self.client.claim_jobs(
                self.worker_id,
                self.job_types,
                max_jobs=max_jobs,
                lease_duration=self.lease_duration,
                wait=self.poll_wait,
            )
        )
        if not await self._race(call):
            return []
        return call.result()

    # --- running one job --------------------------------------------------------------------------

    def _start(self, claim: _models.Claim) -> None:
        ctx = _context.JobContext(self._link, claim, self.worker_id, cancel_grace=self.cancel_grace)
        task = asyncio.create_task(self._run_job(ctx), name=f"jobwarden-job-{claim.job.id}")
        self._runs[task] = ctx
        self._slots_taken.add(task)
        task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[None]) -> None:
        self._runs.pop(task, None)
        self._free_slot(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("job runner crashed", exc_info=exc)

    def _free_slot(self, run: asyncio.Task[None]) -> None:
        """The run's handler is done: its slot may take the next job while its outcome is reported.

        Waiting for the report's answer first would add a round trip to the server (and, on a
        session, a commit) to every job's turn of a slot; on a session the new credit then rides in
        the very message that carries the outcome. A run frees its slot once."""
        if run not in self._slots_taken:
            return
        self._slots_taken.discard(run)
        self._slot_freed.set()
        if self._session is not None and not self._stopping.is_set():
            self._session.grant(1)

    async def _run_job(self, ctx: _context.JobContext) -> None:
        job = ctx.job
        handler = self._handlers.get(job.job_type)
        if handler is None:  # the server sent a type we did not ask for; let another worker have it
            await self._fail(
                ctx, f"worker {self.worker_id} has no handler for {job.job_type!r}", retryable=True
            )
            return
        with _tracing.handler_span(job):
            await self._run_handler(ctx, handler)

    async def _run_handler(self, ctx: _context.JobContext, handler: _context.Handler) -> None:
        job = ctx.job
        logger.info("job %s (%s): started, attempt %d", job.id, job.job_type, job.attempt)
        # Created inside the job's span (handler_span), so the handler's own spans are its children.
        task = asyncio.create_task(self._call(handler, ctx), name=f"jobwarden-handler-{job.id}")
        ctx._task = task
        # A session renews its jobs' leases itself; polling workers keep each lease alive.
        heartbeats = [] if self._session is not None else [asyncio.create_task(self._heartbeat(ctx))]
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            ctx._disarm()
            for heartbeat in heartbeats:
                heartbeat.cancel()
            await asyncio.gather(*heartbeats, return_exceptions=True)
        if not task.cancelled() and (exc := task.exception()) is not None:
            _tracing.record_handler_error(exc)
        if (run := asyncio.current_task()) is not None:
            self._free_slot(run)
        await self._settle(ctx, task)

    @staticmethod
    async def _call(handler: _context.Handler, ctx: _context.JobContext) -> _context.HandlerResult:
        return await handler(ctx)

    async def _heartbeat(self, ctx: _context.JobContext) -> None:
        loop = asyncio.get_running_loop()
        interval = self.lease_duration / 3
        retry_at: float | None = None
        while True:
            # Any report (the handler's own progress too) renews the lease, so count from the last one.
            due = retry_at if retry_at is not None else ctx._last_report + interval
            if (delay := due - loop.time()) > 0:
                await asyncio.sleep(delay)
                continue
            retry_at = None
            try:
                await ctx._report()  # resends the latest progress
            except (errors.LeaseLost, errors.NotFound):
                logger.warning("job %s: lease lost; abandoning it", ctx.job.id)
                return
            except errors.JobwardenError as err:
                logger.warning("job %s: heartbeat failed (%s); retrying", ctx.job.id, err)
                retry_at = loop.time() + min(interval, 2.0)

    async def _settle(self, ctx: _context.JobContext, task: asyncio.Task[_context.HandlerResult]) -> None:
        abort = ctx._abort
        if abort == _context._Abort.LEASE_LOST:
            logger.warning("job %s: lease lost; its outcome is not reported", ctx.job.id)
            return
        if abort == _context._Abort.CANCELLED:
            await self._fail(ctx, "cancelled", retryable=False)
            return
        if task.cancelled():
            message = "worker shutting down" if abort == _context._Abort.SHUTDOWN else "handler cancelled"
            await self._fail(ctx, message, retryable=True)
            return
        exc = task.exception()
        if exc is None:
            await self._complete(ctx, task.result())
        elif isinstance(exc, errors.LeaseLost):
            logger.warning("job %s: lease lost; its outcome is not reported", ctx.job.id)
        elif isinstance(exc, _context.PermanentError):
            logger.info("job %s: failed permanently: %s", ctx.job.id, exc.message)
            await self._fail(
                ctx, exc.message or type(exc).__name__, reason=exc.reason, stop_reason=exc.stop_reason
            )
        else:
            logger.warning(
                "job %s: handler raised; will be retried if attempts are left", ctx.job.id, exc_info=exc
            )
            await self._fail(ctx, str(exc) or type(exc).__name__, reason=type(exc).__name__, retryable=True)

    async def _complete(self, ctx: _context.JobContext, value: _context.HandlerResult) -> None:
        result: Mapping[str, Any] | None
        if isinstance(value, _context.PartialResult):
            result, partial, message = value.result, True, value.error_message or "partial result"
        elif value is None or isinstance(value, Mapping):
            result, partial, message = value, False, ""
        else:
            await self._fail(ctx, f"handler returned {type(value).__name__}, not a dict", retryable=False)
            return
        request_id = str(uuid.uuid4())
        try:
            await self._finish(
                ctx,
                lambda: self._link.complete_job(
                    ctx.job.id,
                    ctx.lease_token,
                    result,
                    partial,
                    message[:_MAX_MESSAGE_CHARS],
                    request_id=request_id,
                ),
            )
        except ValueError as err:  # not JSON, or a number no double holds: retrying won't help
            await self._fail(ctx, f"the handler's result cannot be sent: {err}", retryable=False)
        else:
            logger.info("job %s: %s", ctx.job.id, "partial" if partial else "completed")

    async def _fail(
        self,
        ctx: _context.JobContext,
        message: str,
        *,
        reason: str = "",
        retryable: bool = False,
        stop_reason: _models.StopReason | str | None = None,
    ) -> None:
        request_id = str(uuid.uuid4())
        await self._finish(
            ctx,
            lambda: self._link.fail_job(
                ctx.job.id,
                ctx.lease_token,
                message[:_MAX_MESSAGE_CHARS],
                reason,
                retryable,
                stop_reason=stop_reason,
                request_id=request_id,
            ),
        )

    async def _finish(
        self, ctx: _context.JobContext, call: Callable[[], Coroutine[Any, Any, object]]
    ) -> None:
        # The finishing call is retried with the same request_id, so a retry of a call that did reach
        # the server returns its first answer instead of LEASE_LOST.
        for attempt in range(_FINISH_ATTEMPTS):
            try:
                await call()
                return
            except (errors.LeaseLost, errors.NotFound):
                logger.warning("job %s: lease lost before its outcome was reported", ctx.job.id)
                return
            except errors.JobwardenError as err:
                if not err.retryable or attempt == _FINISH_ATTEMPTS - 1:
                    logger.error("job %s: reporting its outcome failed: %s", ctx.job.id, err)
                    return
                await asyncio.sleep(err.retry_delay or backoff(attempt))

    # --- shutdown ---------------------------------------------------------------------------------

    async def _drain(self) -> None:
        if not self._runs:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.shutdown_grace
        force = asyncio.ensure_future(self._force.wait())
        try:
            pending = set(self._runs)
            if not self._force.is_set():
                logger.info("waiting up to %.0fs for %d running job(s)", self.shutdown_grace, len(pending))
            while pending and not self._force.is_set() and (remaining := deadline - loop.time()) > 0:
                done, _ = await asyncio.wait(
                    {*pending, force}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                pending -= done
        finally:
            force.cancel()
        runs = dict(self._runs)
        for ctx in runs.values():
            ctx._set_abort(_context._Abort.SHUTDOWN)
        # Each runner now reports its job as retryable (or its result, if it finished meanwhile).
        await asyncio.gather(*runs, return_exceptions=True)
