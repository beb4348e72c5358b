"""WorkerService calls of the client: claim, progress, assets, complete and fail (low level; the
managed loop is :class:`jobwarden.client.Worker`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from jobwarden.client import _convert, _models
from jobwarden.client import _worker_requests as requests
from jobwarden.client._calls import Calls, idempotency_key
from jobwarden.v1 import worker_service_pb2


class WorkerCalls(Calls):
    """One method per WorkerService RPC, SDK models in and out."""

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
            request_id=idempotency_key(request_id),
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
        request = requests.progress(job_id, lease_token, percent, message, done, total, request_id)
        return requests.progress_answer(await self._unary(self._worker_stub.ReportProgress, request))

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
        request = requests.asset(
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
        )
        response = await self._unary(self._worker_stub.AddAsset, request)
        return _convert.asset_from_pb(response.asset)

    async def add_messages(
        self,
        job_id: str,
        lease_token: str,
        messages: Iterable[_models.JobMessage | str],
        *,
        request_id: str | None = None,
    ) -> list[_models.JobEvent]:
        """Attaches messages (log lines, warnings, intermediate outputs) to a leased job, all or none.

        Each becomes a ``log`` event of the job, in order, seen by its watchers and listed by
        :meth:`Client.list_job_messages`; the job's ``message_count`` grows by their number. This
        does not renew the lease (:meth:`report_progress` does).

        Args:
            job_id: The job.
            lease_token: The lease token from :meth:`claim_jobs`.
            messages: 1 to 100 messages; a plain string is an INFO message with that text.
            request_id: Idempotency key (generated when omitted): a retry adds nothing twice.

        Returns:
            The ``log`` events recorded, in order.

        Raises:
            ValueError: A message's level is unknown or its data cannot be sent; nothing was sent.
            jobwarden.errors.InvalidArgument: Too many messages, or one too large or empty (the
                field names it, e.g. ``messages[3]``).
            jobwarden.errors.LeaseLost: The lease is no longer the caller's.
        """
        request = requests.messages(job_id, lease_token, messages, request_id)
        return requests.messages_answer(await self._unary(self._worker_stub.AddMessages, request))

    async def complete_job(
        self,
        job_id: str,
        lease_token: str,
        result: Mapping[str, Any] | None = None,
        partial: bool = False,
        error_message: str = "",
        *,
        request_id: str | None = None,
        validate_only: bool = False,
    ) -> _models.Job:
        """Finishes a leased job COMPLETED, or PARTIAL when ``partial`` is set.

        Args:
            job_id: The job.
            lease_token: The lease token from :meth:`claim_jobs`.
            result: The job's output; must be JSON-compatible, with numbers within ±(2**53 - 1).
            partial: Finish PARTIAL; ``error_message`` is then required.
            error_message: What went wrong, for a PARTIAL finish.
            request_id: Idempotency key (generated when omitted).
            validate_only: Only check: the answer (the job as it would end, or the error) is the
                call's, but nothing changes, not even the lease's expiry.

        Returns:
            The finished job.

        Raises:
            ValueError: ``result`` is not JSON-compatible, or holds a number beyond ±(2**53 - 1);
                nothing was sent.
            jobwarden.errors.LeaseLost: The lease is no longer the caller's.
        """
        request = requests.complete(job_id, lease_token, result, partial, error_message, request_id)
        request.validate_only = validate_only
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
        validate_only: bool = False,
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
            validate_only: Only check: the answer is the call's, but nothing changes.

        Returns:
            The job: FAILED, CANCELLED, or QUEUED again.

        Raises:
            jobwarden.errors.LeaseLost: The lease is no longer the caller's.
        """
        request = requests.fail(job_id, lease_token, message, reason, retryable, stop_reason, request_id)
        request.validate_only = validate_only
        response = await self._unary(self._worker_stub.FailJob, request)
        return _convert.job_from_pb(response.job)
