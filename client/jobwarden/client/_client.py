"""The asyncio client: one method per RPC, SDK models in and out, typed errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

import grpc

from jobwarden import errors
from jobwarden.client import _convert, _models
from jobwarden.client._admin_calls import AdminCalls
from jobwarden.client._backoff import MAX_BACKOFF_S, backoff
from jobwarden.client._calls import idempotency_key
from jobwarden.client._worker_calls import WorkerCalls
from jobwarden.v1 import job_service_pb2

RESUME_ATTEMPTS = 8
"""Reopenings of a broken watch in a row, without an event in between, before the error is raised."""


class Client(WorkerCalls, AdminCalls):
    """An asyncio client for a jobwarden server.

    Use it as an async context manager, or call :meth:`close` when done::

        async with Client("127.0.0.1:50051", token="...") as client:
            job = await client.create_job("thumbnail", {"url": "https://..."})
            async for item in client.watch_job(job.id):
                print(item)

    Every failed call raises a :class:`jobwarden.errors.JobwardenError` subclass chained to the
    original ``grpc.aio.AioRpcError``. The channel is opened on first use, inside the running loop.
    """

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
        callback_statuses: Iterable[_models.JobStatus | str] = (),
        hold: bool = False,
        request_id: str | None = None,
        queue_timeout: float | None = None,
        validate_only: bool = False,
    ) -> _models.Job:
        """Creates a job.

        Args:
            job_type: The kind of work; workers claim jobs by type.
            parameters: Input of the job; must be JSON-compatible, with numbers within
                ±(2**53 - 1) (larger integers, such as 64-bit ids, go as strings).
            priority: Higher runs first (-1000..1000).
            labels: Free-form labels, usable as list filters.
            max_attempts: Attempts allowed (0 means the server default).
            retry_policy: How long to wait before each retry (None means the server default).
            run_after: Not claimable before this time (naive datetimes are taken as UTC).
            deadline: The job expires if not terminal by this time.
            callback_url: When the job ends, the server POSTs a JSON payload signed per Standard
                Webhooks to this URL, retrying until it is acknowledged (see the README).
            callback_statuses: The terminal statuses that fire the callback (empty: all of them).
            hold: Start in CREATED instead of QUEUED; see :meth:`release_job`.
            request_id: Idempotency key. One is generated when omitted, so the transport's own
                retries of this call never create a second job; pass your own to make retries
                across calls (or processes) idempotent too.
            queue_timeout: Seconds the job may wait to start (held, or queued with no worker
                claiming it) before it ends EXPIRED with stop reason QUEUE_TIMEOUT_EXCEEDED; None
                takes the server's default for the job type (else no limit).
            validate_only: Only check: the server answers as it would (the job it would create,
                under an id it does not keep, or the error) and creates nothing.

        Returns:
            The created job, or the one created first with the same ``request_id``.

        Raises:
            ValueError: ``parameters`` is not JSON-compatible, or holds a number beyond ±(2**53 - 1);
                nothing was sent.
            jobwarden.errors.InvalidArgument: A field was refused.
            jobwarden.errors.CallbackTargetRefused: The server will not call ``callback_url``.
            jobwarden.errors.RequestIdMismatch: ``request_id`` was used with other content.
        """
        job = _models.NewJob(
            job_type,
            parameters,
            priority=priority,
            labels=labels,
            max_attempts=max_attempts,
            retry_policy=retry_policy,
            run_after=run_after,
            deadline=deadline,
            callback_url=callback_url,
            callback_statuses=tuple(callback_statuses),
            hold=hold,
            queue_timeout=queue_timeout,
        )
        request = _convert.new_job_to_pb(job, idempotency_key(request_id))
        request.validate_only = validate_only
        response = await self._unary(
            self._job_stub.CreateJob, request, traced="jobwarden.v1.JobService/CreateJob"
        )
        return _convert.job_from_pb(response.job)

    async def create_jobs(self, jobs: Iterable[_models.NewJob]) -> list[_models.Job | errors.JobwardenError]:
        """Creates up to 1000 jobs in one call and one transaction on the server.

        Each job is checked and made idempotent as :meth:`create_job` does it, and answered on its
        own: a job refused does not stop the others. Each gets a generated ``request_id`` unless it
        has one, so the transport's own retries of this call create nothing twice; jobs of one call
        sharing a ``request_id`` are answered like retries of the first of them.

        Args:
            jobs: The jobs to create (1..1000).

        Returns:
            One outcome per job, in order: the created :class:`Job` (or the one created first with
            the same ``request_id``), or the exception :meth:`create_job` would have raised for it
            (:class:`jobwarden.errors.InvalidArgument` with its field under ``requests[i].``,
            :class:`jobwarden.errors.RequestIdMismatch`, ...), returned, not raised.

        Raises:
            ValueError: A job's ``parameters`` is not JSON-compatible, or holds a number beyond
                ±(2**53 - 1); nothing was sent.
            jobwarden.errors.InvalidArgument: No jobs, more than 1000, or a request over the
                server's size limit (:class:`jobwarden.errors.TooLarge`); nothing was created.
        """
        items = [_convert.new_job_to_pb(job, idempotency_key(job.request_id)) for job in jobs]
        response = await self._unary(
            self._job_stub.CreateJobs,
            job_service_pb2.CreateJobsRequest(requests=items),
            traced="jobwarden.v1.JobService/CreateJobs",
        )
        return [
            _convert.job_from_pb(r.job) if r.HasField("job") else errors.from_status(r.error)
            for r in response.results
        ]

    async def create_batch(
        self,
        job_type: str,
        children: Iterable[_models.NewJob],
        *,
        parameters: Mapping[str, Any] | None = None,
        labels: Mapping[str, str] | None = None,
        callback_url: str = "",
        callback_statuses: Iterable[_models.JobStatus | str] = (),
        request_id: str | None = None,
        validate_only: bool = False,
    ) -> _models.Job:
        """Creates a batch: a parent job and its children (1..10,000), all in one transaction or none.

        The server drives the parent: RUNNING when its first child starts, its progress the share
        of children that ended, its ``batch`` counts following them, and once every child has ended
        it ends COMPLETED (all completed), FAILED (none completed even partially) or PARTIAL. No
        worker ever claims the parent. Page the children with ``list_jobs(parent_id=...)``; cancel
        the batch with :meth:`cancel_job` on the parent.

        Args:
            job_type: The parent's job type.
            children: The children, each as for :meth:`create_job`; their ``request_id`` must be
                None (the batch's covers them).
            parameters: Input recorded on the parent.
            labels: The parent's labels.
            callback_url: Called once, when the parent ends (see :meth:`create_job`).
            callback_statuses: The parent's terminal statuses that fire the callback (empty: all).
            request_id: Idempotency key of the whole batch (generated when omitted).
            validate_only: Check everything and return what the call would return, creating nothing.

        Returns:
            The parent (or the one created first with the same ``request_id``).

        Raises:
            ValueError: A ``parameters`` is not JSON-compatible; nothing was sent.
            jobwarden.errors.InvalidArgument: A field was refused; for a child, its field is named
                ``children[i].<field>``, and nothing was created.
            jobwarden.errors.RequestIdMismatch: ``request_id`` was used with other content.
        """
        items = []
        for job in children:
            if job.request_id is not None:
                raise ValueError("a batch's children take no request_id: the batch's covers them")
            items.append(_convert.new_job_to_pb(job, ""))
        request = job_service_pb2.CreateBatchRequest(
            job_type=job_type,
            parameters=_convert.dict_to_struct(parameters or {}, "parameters"),
            labels=dict(labels or {}),
            children=items,
            callback_url=callback_url,
            callback_statuses=[_convert.status_to_pb(s) for s in callback_statuses],
            request_id=idempotency_key(request_id),
            validate_only=validate_only,
        )
        response = await self._unary(
            self._job_stub.CreateBatch, request, traced="jobwarden.v1.JobService/CreateBatch"
        )
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
        parent_id: str = "",
        stalled: bool = False,
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
            parent_id: Only the children of this batch parent, in the order they were given to
                :meth:`create_batch`.
            stalled: Only jobs flagged stalled (:attr:`Job.stalled`).

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
            parent_id=parent_id,
            stalled=stalled,
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
        parent_id: str = "",
        stalled: bool = False,
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
            "parent_id": parent_id,
            "stalled": stalled,
        }
        token = ""
        while True:
            jobs, token = await self.list_jobs(page_token=token, **filters)
            for job in jobs:
                yield job
            if not token:
                return

    async def cancel_job(
        self,
        job_id: str,
        reason: str = "",
        etag: str = "",
        *,
        request_id: str | None = None,
        validate_only: bool = False,
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
            validate_only: Only check: the answer (the job as it would be, or the error) is the
                call's, but nothing changes.

        Returns:
            The job after the cancel.

        Raises:
            jobwarden.errors.InvalidTransition: The job already ended.
            jobwarden.errors.EtagMismatch: The job changed since ``etag`` was read.
        """
        request = job_service_pb2.CancelJobRequest(
            job_id=job_id,
            reason=reason,
            etag=etag,
            request_id=idempotency_key(request_id),
            validate_only=validate_only,
        )
        response = await self._unary(self._job_stub.CancelJob, request)
        return _convert.job_from_pb(response.job)

    async def release_job(
        self, job_id: str, *, request_id: str | None = None, validate_only: bool = False
    ) -> _models.Job:
        """Moves a held (CREATED) job to QUEUED.

        Args:
            job_id: The job.
            request_id: Idempotency key; one is generated when omitted, so a retry after a lost
                reply is answered with the released job instead of InvalidTransition.
            validate_only: Only check: the answer is the call's, but nothing changes.

        Raises:
            jobwarden.errors.InvalidTransition: The job is not held.
        """
        request = job_service_pb2.ReleaseJobRequest(
            job_id=job_id, request_id=idempotency_key(request_id), validate_only=validate_only
        )
        response = await self._unary(self._job_stub.ReleaseJob, request)
        return _convert.job_from_pb(response.job)

    async def delete_job(self, job_id: str, *, request_id: str | None = None) -> None:
        """Deletes a finished job for good, with its events and assets (and its callback, if it has
        not been delivered yet).

        Args:
            job_id: The job.
            request_id: Idempotency key; one is generated when omitted, so a retry after a lost
                reply succeeds as the delete did instead of raising NotFound.

        Raises:
            jobwarden.errors.JobNotTerminal: The job has not ended; cancel it first.
            jobwarden.errors.NotFound: No such job (or it was deleted already).
        """
        request = job_service_pb2.DeleteJobRequest(job_id=job_id, request_id=idempotency_key(request_id))
        await self._unary(self._job_stub.DeleteJob, request)

    async def watch_job(
        self,
        job_id: str,
        after_sequence: int = 0,
        *,
        resume: bool = True,
        resume_attempts: int = RESUME_ATTEMPTS,
        max_backoff: float = MAX_BACKOFF_S,
        on_reconnect: Callable[[_models.WatchReconnect], object] | None = None,
    ) -> AsyncIterator[_models.Job | _models.JobEvent]:
        """Streams a job: first a :class:`Job` snapshot, then every :class:`JobEvent` in order.

        The stream ends after the job's terminal event (at once, after the history, if the job
        had already ended). With ``resume`` (the default), a stream that started and then broke on a
        retryable failure (the server restarting or shutting down, the watch cut off as too slow, a
        lost connection) is reopened after the last sequence seen, so the caller sees one unbroken
        stream: the snapshot once, then each event once, in order. Only ``resume_attempts``
        reopenings in a row that bring no event are tried; then the last error is raised. A watch
        that cannot start at all fails at once, like any call. To resume yourself
        (``resume=False``), watch again with ``after_sequence`` set to the last sequence seen.

        The wait before each reopening grows exponentially up to ``max_backoff`` seconds (unless the
        server said how long to wait). An interactive caller that wants to notice a restarted
        server within seconds lowers it (and raises ``resume_attempts`` to stay as patient), and
        passes ``on_reconnect`` to tell its user what is going on.

        Args:
            job_id: The job.
            after_sequence: Send only events after this sequence (0 sends the whole history).
            resume: Reopen a broken stream by itself.
            resume_attempts: Reopenings in a row without an event before giving up.
            max_backoff: Longest wait between two reopenings, in seconds.
            on_reconnect: Called before each reopening, and when a reopened stream is open again
                (see :class:`WatchReconnect`); it runs in the event loop, so it must not block.
                An exception it raises ends the watch.

        Yields:
            The snapshot, then the events.
        """
        cursor, snapshot_sent, failures, broken = after_sequence, False, 0, False
        while True:
            request = job_service_pb2.WatchJobRequest(job_id=job_id, after_sequence=cursor)
            call = self._job_stub.WatchJob(request, metadata=self._metadata)
            try:
                async for response in call:
                    which = response.WhichOneof("item")
                    if which == "job":
                        # Every (re)opened stream starts with the job: that is when it is open again.
                        if broken and on_reconnect is not None:
                            on_reconnect(_models.WatchReconnect(attempt=failures, error=None))
                        broken = False
                        if not snapshot_sent:
                            snapshot_sent = True
                            yield _convert.job_from_pb(response.job)
                    elif which == "event":
                        failures = 0
                        cursor = response.event.sequence
                        yield _convert.event_from_pb(response.event)
                return
            except grpc.RpcError as err:
                error = errors.from_rpc_error(err)
                if not (resume and snapshot_sent and error.retryable and failures < resume_attempts):
                    raise error from err
            finally:
                # Reached on early exit too (break, aclose, cancellation): stop the server's stream.
                call.cancel()
            failures += 1
            broken = True
            # A watch cut off as too slow may come back at once: it is the consumer that was late.
            delay = 0.0
            if not isinstance(error, errors.WatcherTooSlow):
                delay = error.retry_delay or backoff(failures, cap=max_backoff)
            if on_reconnect is not None:
                on_reconnect(_models.WatchReconnect(attempt=failures, error=error, delay=delay))
            if delay:
                await asyncio.sleep(delay)

    async def list_job_events(
        self,
        job_id: str,
        *,
        page_size: int = 0,
        page_token: str = "",
        kinds: Iterable[_models.EventKind | str] = (),
    ) -> tuple[list[_models.JobEvent], str]:
        """Returns one page of a job's recorded events, in sequence order.

        Args:
            job_id: The job.
            page_size: Events per page (0: the server's default of 100; at most 1000).
            page_token: The token of the previous page.
            kinds: Only events of these kinds (empty: all); pass the same kinds with each page.

        Returns:
            The events and the token of the next page (empty on the last page).
        """
        request = job_service_pb2.ListJobEventsRequest(
            job_id=job_id,
            page_size=page_size,
            page_token=page_token,
            kinds=[_convert.event_kind_to_pb(k) for k in kinds],
        )
        response = await self._unary(self._job_stub.ListJobEvents, request)
        return [_convert.event_from_pb(e) for e in response.events], response.next_page_token

    async def iter_job_events(
        self, job_id: str, *, page_size: int = 0, kinds: Iterable[_models.EventKind | str] = ()
    ) -> AsyncIterator[_models.JobEvent]:
        """Yields all of a job's recorded events (of ``kinds``, if given), fetching pages as needed."""
        token, kinds = "", tuple(kinds)
        while True:
            events, token = await self.list_job_events(
                job_id, page_size=page_size, page_token=token, kinds=kinds
            )
            for event in events:
                yield event
            if not token:
                return

    async def list_job_messages(
        self, job_id: str, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[_models.JobEvent], str]:
        """Returns one page of the messages workers attached to a job (its ``log`` events: ``message``
        is the text, with ``level`` and ``data``), in the order they were added.

        Returns:
            The messages and the token of the next page (empty on the last page).
        """
        return await self.list_job_events(
            job_id, page_size=page_size, page_token=page_token, kinds=(_models.EventKind.LOG,)
        )

    async def iter_job_messages(self, job_id: str, *, page_size: int = 0) -> AsyncIterator[_models.JobEvent]:
        """Yields all the messages workers attached to a job, fetching pages as needed."""
        async for event in self.iter_job_events(job_id, page_size=page_size, kinds=(_models.EventKind.LOG,)):
            yield event

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

    async def stats(
        self,
        *,
        job_types: Iterable[str] = (),
        since: float | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        all_owners: bool = False,
    ) -> _models.JobStats:
        """Returns statistics per job type: over the jobs created in a window, their counts by status,
        success rate and completion and run time percentiles; and the queue depth, oldest queued age,
        running and stalled jobs now, whatever the window.

        Args:
            job_types: Only these types (empty: every type with jobs in the window or in flight).
            since: The window's length in seconds, ending at ``end_time``; not with ``start_time``.
                With neither, the last hour.
            start_time: Start of the window (inclusive).
            end_time: End of the window (exclusive); None means now.
            all_owners: Every owner's jobs (needs an admin-global token).

        Returns:
            The window as the server resolved it and one entry per job type, sorted by type.
        """
        request = job_service_pb2.GetJobStatsRequest(job_types=list(job_types), all_owners=all_owners)
        if since is not None:
            request.window.CopyFrom(_convert.duration_to_pb(since))
        if start_time is not None:
            request.start_time.CopyFrom(_convert.time_to_pb(start_time))
        if end_time is not None:
            request.end_time.CopyFrom(_convert.time_to_pb(end_time))
        response = await self._unary(self._job_stub.GetJobStats, request)
        return _convert.job_stats_from_pb(response)
