"""The asyncio client: one method per RPC, SDK models in and out, typed errors."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
import grpc.aio

from jobwarden import errors
from jobwarden.client import _channel, _convert, _models, _tls
from jobwarden.client._backoff import backoff
from jobwarden.v1 import job_service_pb2, job_service_pb2_grpc, worker_service_pb2, worker_service_pb2_grpc

RESUME_ATTEMPTS = 8
"""Reopenings of a broken watch in a row, without an event in between, before the error is raised."""

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


def _request_id(given: str | None) -> str:
    return given if given else str(uuid.uuid4())


class Client:
    """An asyncio client for a jobwarden server.

    Use it as an async context manager, or call :meth:`close` when done::

        async with Client("127.0.0.1:50051", token="...") as client:
            job = await client.create_job("thumbnail", {"url": "https://..."})
            async for item in client.watch_job(job.id):
                print(item)

    Every failed call raises a :class:`jobwarden.errors.JobwardenError` subclass chained to the
    original ``grpc.aio.AioRpcError``. The channel is opened on first use, inside the running loop.
    """

    def __init__(
        self,
        target: str = _channel.DEFAULT_TARGET,
        token: str | None = None,
        *,
        tls: bool | _tls.TlsOptions = False,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = _channel.DEFAULT_TIMEOUT,
        channel: grpc.aio.Channel | None = None,
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

        Raises:
            ValueError: Both ``tls`` and ``credentials`` were given.
            OSError: A file named in ``tls`` cannot be read (files are read here, not on first use).
        """
        self.target = target
        self.timeout = timeout
        self._channel_options: list[tuple[str, Any]] = []
        if tls is not False:
            if credentials is not None:
                raise ValueError("give tls or credentials, not both")
            options = _tls.TlsOptions() if tls is True else tls
            credentials = options.channel_credentials()
            self._channel_options = options.channel_options()
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
    ) -> _Resp:
        try:
            return await method(request, timeout=deadline or self.timeout, metadata=self._metadata)
        except grpc.RpcError as err:
            raise errors.from_rpc_error(err) from err

    # --- JobService -------------------------------------------------------------------------------

    async def create_job(
        self,
        job_type: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        priority: int = 0,
        labels: Mapping[str, str] | None = None,
        max_attempts: int = 0,
        retry_policy: _models.RetryPolicy | None = None,
        run_after: datetime | None = None,
        deadline: datetime | None = None,
        callback_url: str = "",
        hold: bool = False,
        request_id: str | None = None,
    ) -> _models.Job:
        """Creates a job.

        Args:
            job_type: The kind of work; workers claim jobs by type.
            parameters: Input of the job; must be JSON-compatible.
            priority: Higher runs first (-1000..1000).
            labels: Free-form labels, usable as list filters.
            max_attempts: Attempts allowed (0 means the server default).
            retry_policy: How long to wait before each retry (None means the server default).
            run_after: Not claimable before this time (naive datetimes are taken as UTC).
            deadline: The job expires if not terminal by this time.
            callback_url: URL notified when the job ends.
            hold: Start in CREATED instead of QUEUED; see :meth:`release_job`.
            request_id: Idempotency key. One is generated when omitted, so the transport's own
                retries of this call never create a second job; pass your own to make retries
                across calls (or processes) idempotent too.

        Returns:
            The created job, or the one created first with the same ``request_id``.

        Raises:
            ValueError: ``parameters`` is not JSON-compatible.
            jobwarden.errors.InvalidArgument: A field was refused.
            jobwarden.errors.RequestIdMismatch: ``request_id`` was used with other content.
        """
        request = job_service_pb2.CreateJobRequest(
            job_type=job_type,
            parameters=_convert.dict_to_struct(parameters or {}),
            priority=priority,
            labels=dict(labels or {}),
            max_attempts=max_attempts,
            callback_url=callback_url,
            hold=hold,
            request_id=_request_id(request_id),
        )
        if retry_policy is not None:
            request.retry_policy.CopyFrom(_convert.retry_policy_to_pb(retry_policy))
        if run_after is not None:
            request.run_after.CopyFrom(_convert.time_to_pb(run_after))
        if deadline is not None:
            request.deadline.CopyFrom(_convert.time_to_pb(deadline))
        response = await self._unary(self._job_stub.CreateJob, request)
        return _convert.job_from_pb(response.job)

    async def get_job(self, job_id: str) -> _models.Job:
        """Returns a job.

        Raises:
            jobwarden.errors.NotFound: No such job, or not the caller's.
        """
        response = await self._unary(self._job_stub.GetJob, job_service_pb2.GetJobRequest(job_id=job_id))
        return _convert.job_from_pb(response.job)

    async def list_jobs(
        self,
        *,
        statuses: Iterable[_models.JobStatus | str] = (),
        job_types: Iterable[str] = (),
        labels: Mapping[str, str] | None = None,
        stop_reasons: Iterable[_models.StopReason | str] = (),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
        descending: bool = False,
    ) -> tuple[list[_models.Job], str]:
        """Returns one page of the caller's jobs; empty filters match everything.

        Args:
            statuses: Only jobs in one of these statuses (names are accepted in any case).
            job_types: Only jobs of one of these types.
            labels: Only jobs carrying all of these labels.
            stop_reasons: Only jobs stopped for one of these reasons.
            created_after: Only jobs created at or after this time.
            created_before: Only jobs created before this time.
            page_size: Jobs per page (0 means the server default, 50; at most 500).
            page_token: ``next_page_token`` of the previous page, with the same filters.
            descending: Newest first.

        Returns:
            The jobs and the token of the next page (empty on the last page).
        """
        request = job_service_pb2.ListJobsRequest(
            statuses=[_convert.status_to_pb(s) for s in statuses],
            job_types=list(job_types),
            labels=dict(labels or {}),
            stop_reasons=[_convert.stop_reason_to_pb(r) for r in stop_reasons],
            page_size=page_size,
            page_token=page_token,
            descending=descending,
        )
        if created_after is not None:
            request.created_after.CopyFrom(_convert.time_to_pb(created_after))
        if created_before is not None:
            request.created_before.CopyFrom(_convert.time_to_pb(created_before))
        response = await self._unary(self._job_stub.ListJobs, request)
        return [_convert.job_from_pb(j) for j in response.jobs], response.next_page_token

    async def iter_jobs(
        self,
        *,
        statuses: Iterable[_models.JobStatus | str] = (),
        job_types: Iterable[str] = (),
        labels: Mapping[str, str] | None = None,
        stop_reasons: Iterable[_models.StopReason | str] = (),
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        page_size: int = 0,
        descending: bool = False,
    ) -> AsyncIterator[_models.Job]:
        """Yields every matching job, fetching pages as needed; arguments as in :meth:`list_jobs`."""
        filters: dict[str, Any] = {
            "statuses": list(statuses),
            "job_types": list(job_types),
            "labels": labels,
            "stop_reasons": list(stop_reasons),
            "created_after": created_after,
            "created_before": created_before,
            "page_size": page_size,
            "descending": descending,
        }
        token = ""
        while True:
            jobs, token = await self.list_jobs(page_token=token, **filters)
            for job in jobs:
                yield job
            if not token:
                return

    async def cancel_job(
        self, job_id: str, reason: str = "", etag: str = "", *, request_id: str | None = None
    ) -> _models.Job:
        """Cancels a job.

        A CREATED or QUEUED job becomes CANCELLED at once. On a RUNNING job this sets
        ``cancel_requested``; the worker sees it on its next progress report and stops, and the job
        then becomes CANCELLED.

        Args:
            job_id: The job.
            reason: Why, in words (recorded in the job's history).
            etag: If set, the job's current etag; guards against acting on a stale view.
            request_id: Idempotency key (generated when omitted).

        Returns:
            The job after the cancel.

        Raises:
            jobwarden.errors.InvalidTransition: The job already ended.
            jobwarden.errors.EtagMismatch: The job changed since ``etag`` was read.
        """
        request = job_service_pb2.CancelJobRequest(
            job_id=job_id, reason=reason, etag=etag, request_id=_request_id(request_id)
        )
        response = await self._unary(self._job_stub.CancelJob, request)
        return _convert.job_from_pb(response.job)

    async def release_job(self, job_id: str, *, request_id: str | None = None) -> _models.Job:
        """Moves a held (CREATED) job to QUEUED.

        Args:
            job_id: The job.
            request_id: Idempotency key; one is generated when omitted, so a retry after a lost
                reply is answered with the released job instead of InvalidTransition.

        Raises:
            jobwarden.errors.InvalidTransition: The job is not held.
        """
        request = job_service_pb2.ReleaseJobRequest(job_id=job_id, request_id=_request_id(request_id))
        response = await self._unary(self._job_stub.ReleaseJob, request)
        return _convert.job_from_pb(response.job)

    async def watch_job(
        self, job_id: str, after_sequence: int = 0, *, resume: bool = True
    ) -> AsyncIterator[_models.Job | _models.JobEvent]:
        """Streams a job: first a :class:`Job` snapshot, then every :class:`JobEvent` in order.

        The stream ends after the job's terminal event (at once, after the history, if the job
        had already ended). With ``resume`` (the default), a stream that started and then broke on a
        retryable failure (the server restarting or shutting down, the watch cut off as too slow, a
        lost connection) is reopened after the last sequence seen, so the caller sees one unbroken
        stream: the snapshot once, then each event once, in order. Only :data:`RESUME_ATTEMPTS`
        reopenings in a row that bring no event are tried; then the last error is raised. A watch
        that cannot start at all fails at once, like any call. To resume yourself
        (``resume=False``), watch again with ``after_sequence`` set to the last sequence seen.

        Args:
            job_id: The job.
            after_sequence: Send only events after this sequence (0 sends the whole history).
            resume: Reopen a broken stream by itself.

        Yields:
            The snapshot, then the events.
        """
        cursor, snapshot_sent, failures = after_sequence, False, 0
        while True:
            request = job_service_pb2.WatchJobRequest(job_id=job_id, after_sequence=cursor)
            call = self._job_stub.WatchJob(request, metadata=self._metadata)
            try:
                async for response in call:
                    which = response.WhichOneof("item")
                    if which == "job" and not snapshot_sent:
                        snapshot_sent = True
                        yield _convert.job_from_pb(response.job)
                    elif which == "event":
                        failures = 0
                        cursor = response.event.sequence
                        yield _convert.event_from_pb(response.event)
                return
            except grpc.RpcError as err:
                error = errors.from_rpc_error(err)
                if not (resume and snapshot_sent and error.retryable and failures < RESUME_ATTEMPTS):
                    raise error from err
            finally:
                # Reached on early exit too (break, aclose, cancellation): stop the server's stream.
                call.cancel()
            failures += 1
            # A watch cut off as too slow may come back at once: it is the consumer that was late.
            if not isinstance(error, errors.WatcherTooSlow):
                await asyncio.sleep(error.retry_delay or backoff(failures))

    async def list_job_events(
        self, job_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[_models.JobEvent], str]:
        """Returns one page of a job's recorded events, in sequence order.

        Returns:
            The events and the token of the next page (empty on the last page).
        """
        request = job_service_pb2.ListJobEventsRequest(
            job_id=job_id, page_size=page_size, page_token=page_token
        )
        response = await self._unary(self._job_stub.ListJobEvents, request)
        return [_convert.event_from_pb(e) for e in response.events], response.next_page_token

    async def iter_job_events(self, job_id: str, *, page_size: int = 0) -> AsyncIterator[_models.JobEvent]:
        """Yields all of a job's recorded events, fetching pages as needed."""
        token = ""
        while True:
            events, token = await self.list_job_events(job_id, page_size=page_size, page_token=token)
            for event in events:
                yield event
            if not token:
                return

    async def list_assets(
        self, job_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[_models.Asset], str]:
        """Returns one page of a job's assets, in the order they were added.

        Returns:
            The assets and the token of the next page (empty on the last page).
        """
        request = job_service_pb2.ListAssetsRequest(job_id=job_id, page_size=page_size, page_token=page_token)
        response = await self._unary(self._job_stub.ListAssets, request)
        return [_convert.asset_from_pb(a) for a in response.assets], response.next_page_token

    async def iter_assets(self, job_id: str, *, page_size: int = 0) -> AsyncIterator[_models.Asset]:
        """Yields all of a job's assets, fetching pages as needed."""
        token = ""
        while True:
            assets, token = await self.list_assets(job_id, page_size=page_size, page_token=token)
            for asset in assets:
                yield asset
            if not token:
                return

    async def get_asset(self, asset_id: str) -> _models.Asset:
        """Returns one asset.

        Raises:
            jobwarden.errors.NotFound: No such asset, or not the caller's.
        """
        request = job_service_pb2.GetAssetRequest(asset_id=asset_id)
        response = await self._unary(self._job_stub.GetAsset, request)
        return _convert.asset_from_pb(response.asset)

    async def get_lifecycle(self, job_type: str = "") -> _models.Lifecycle:
        """Returns the lifecycle table governing jobs of ``job_type`` (empty: the default table)."""
        request = job_service_pb2.GetLifecycleRequest(job_type=job_type)
        response = await self._unary(self._job_stub.GetLifecycle, request)
        return _convert.lifecycle_from_pb(response.lifecycle)

    # --- WorkerService (low level; see Worker for the managed loop) ---------------------------------

    async def claim_jobs(
        self,
        worker_id: str,
        job_types: Iterable[str],
        max_jobs: int = 1,
        lease_duration: float = 30.0,
        wait: float = 0.0,
        *,
        request_id: str | None = None,
    ) -> list[_models.Claim]:
        """Leases up to ``max_jobs`` QUEUED jobs of the given types.

        Args:
            worker_id: The worker's self-chosen id, recorded on the jobs.
            job_types: Job types the worker can run.
            max_jobs: At most this many jobs (1..100).
            lease_duration: Seconds the lease lasts without a progress report (1..3600).
            wait: Long-poll: seconds to wait for work when none is ready (at most 60).
            request_id: Idempotency key; one is generated when omitted. A retry with the same key
                (the transport's own, after a lost reply) gets the jobs the first call claimed
                instead of claiming more, so no job is stranded until its lease runs out.

        Returns:
            The claims; empty when no work arrived in time.
        """
        request = worker_service_pb2.ClaimJobsRequest(
            worker_id=worker_id,
            job_types=list(job_types),
            max_jobs=max_jobs,
            lease_duration=_convert.duration_to_pb(lease_duration),
            request_id=_request_id(request_id),
        )
        if wait > 0:
            request.wait.CopyFrom(_convert.duration_to_pb(wait))
        # The deadline must outlast the long-poll, or every empty poll would end in DEADLINE_EXCEEDED.
        response = await self._unary(self._worker_stub.ClaimJobs, request, deadline=self.timeout + wait)
        return [_convert.claim_from_pb(c) for c in response.claims]

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
        """Records progress on a leased job and renews its lease.

        Returns:
            The renewed lease expiry, and whether a client asked to cancel the job (the worker
            should then stop and call :meth:`fail_job`).

        Raises:
            jobwarden.errors.LeaseLost: The lease is no longer the caller's.
            jobwarden.errors.ProgressOutOfRange: ``percent`` outside 0..100 or ``done > total``.
        """
        request = worker_service_pb2.ReportProgressRequest(
            job_id=job_id,
            lease_token=lease_token,
            progress=_convert.progress_to_pb(
                _models.Progress(percent=percent, message=message, done=done, total=total)
            ),
            request_id=_request_id(request_id),
        )
        response = await self._unary(self._worker_stub.ReportProgress, request)
        expire = (
            _convert.time_from_pb(response.lease_expire_time)
            if response.HasField("lease_expire_time")
            else None
        )
        return expire, response.cancel_requested

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
        """Attaches an output to a leased job.

        Returns:
            The stored asset, with its id and create time.

        Raises:
            jobwarden.errors.LeaseLost: The lease is no longer the caller's.
        """
        asset = _models.Asset(
            asset_type=asset_type,
            uri=uri,
            storage_path=storage_path,
            size_bytes=size_bytes,
            content_type=content_type,
            sha256=sha256,
            metadata=dict(metadata or {}),
        )
        request = worker_service_pb2.AddAssetRequest(
            job_id=job_id,
            lease_token=lease_token,
            asset=_convert.asset_to_pb(asset),
            request_id=_request_id(request_id),
        )
        response = await self._unary(self._worker_stub.AddAsset, request)
        return _convert.asset_from_pb(response.asset)

    async def complete_job(
        self,
        job_id: str,
        lease_token: str,
        result: Mapping[str, Any] | None = None,
        partial: bool = False,
        error_message: str = "",
        *,
        request_id: str | None = None,
    ) -> _models.Job:
        """Finishes a leased job COMPLETED, or PARTIAL when ``partial`` is set.

        Args:
            job_id: The job.
            lease_token: The lease token from :meth:`claim_jobs`.
            result: The job's output; must be JSON-compatible.
            partial: Finish PARTIAL; ``error_message`` is then required.
            error_message: What went wrong, for a PARTIAL finish.
            request_id: Idempotency key (generated when omitted).

        Returns:
            The finished job.

        Raises:
            jobwarden.errors.LeaseLost: The lease is no longer the caller's.
        """
        request = worker_service_pb2.CompleteJobRequest(
            job_id=job_id,
            lease_token=lease_token,
            result=_convert.dict_to_struct(result or {}),
            partial=partial,
            request_id=_request_id(request_id),
        )
        if partial or error_message:
            request.error.message = error_message
        response = await self._unary(self._worker_stub.CompleteJob, request)
        return _convert.job_from_pb(response.job)

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
    ) -> _models.Job:
        """Ends the current attempt of a leased job with an error.

        The server re-queues the job if ``retryable`` and attempts are left, marks it CANCELLED if
        a cancel was requested, and FAILED otherwise.

        Args:
            job_id: The job.
            lease_token: The lease token from :meth:`claim_jobs`.
            message: What went wrong (required).
            reason: Machine-readable reason, for example ``"PROVIDER_TIMEOUT"``.
            retryable: Whether another attempt may succeed.
            stop_reason: Why the job stopped, when known.
            request_id: Idempotency key (generated when omitted).

        Returns:
            The job: FAILED, CANCELLED, or QUEUED again.

        Raises:
            jobwarden.errors.LeaseLost: The lease is no longer the caller's.
        """
        request = worker_service_pb2.FailJobRequest(
            job_id=job_id,
            lease_token=lease_token,
            request_id=_request_id(request_id),
        )
        request.error.message = message
        request.error.reason = reason
        request.error.retryable = retryable
        if stop_reason is not None:
            request.stop_reason = _convert.stop_reason_to_pb(stop_reason)
        response = await self._unary(self._worker_stub.FailJob, request)
        return _convert.job_from_pb(response.job)
