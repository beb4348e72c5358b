"""AdminService calls of the client: direct status changes and reruns (tokens with the admin role)."""

from __future__ import annotations

from jobwarden.client import _convert, _models
from jobwarden.client._calls import Calls, idempotency_key
from jobwarden.v1 import admin_service_pb2, admin_service_pb2_grpc


class AdminCalls(Calls):
    """One method per AdminService RPC. Any other caller than an admin gets
    :class:`jobwarden.errors.PermissionDenied`."""

    @property
    def _admin_stub(self) -> admin_service_pb2_grpc.AdminServiceAsyncStub:
        # Made per call (admin calls are rare): it then always rides the client's current channel.
        return admin_service_pb2_grpc.AdminServiceStub(self._open())

    async def set_job_status(
        self,
        job_id: str,
        status: _models.JobStatus | str,
        reason: str,
        *,
        force: bool = False,
        request_id: str | None = None,
        validate_only: bool = False,
    ) -> _models.Job:
        """Moves a job to ``status`` directly, as an admin; recorded in its history with the admin's
        identity and ``reason``.

        Without ``force`` only a change its lifecycle table allows is made; with it, any status the
        table knows (a terminal job back to QUEUED, say), flagged in the event as bypassing the table.
        Leaving RUNNING drops the worker's lease: its next call raises
        :class:`jobwarden.errors.LeaseLost`.

        Args:
            job_id: The job (of the admin's owner; any owner's for an ``admin-global`` token).
            status: The status to set (not RUNNING: only a worker's claim starts a job).
            reason: Why, in words (required).
            force: Allow a change the job's lifecycle table has no edge for.
            request_id: Idempotency key (generated when omitted).
            validate_only: Only check: the answer is the call's, but nothing changes.

        Returns:
            The job after the change (as it is, if it was in ``status`` already).

        Raises:
            jobwarden.errors.PermissionDenied: The token lacks the admin role.
            jobwarden.errors.InvalidTransition: The table has no such edge and ``force`` is not set.
            jobwarden.errors.NotFound: No such job within the admin's reach.
        """
        request = admin_service_pb2.SetJobStatusRequest(
            job_id=job_id,
            status=_convert.status_to_pb(status),
            reason=reason,
            force=force,
            request_id=idempotency_key(request_id),
            validate_only=validate_only,
        )
        response = await self._unary(self._admin_stub.SetJobStatus, request)
        return _convert.job_from_pb(response.job)

    async def retry_job(
        self, job_id: str, *, request_id: str | None = None, validate_only: bool = False
    ) -> _models.Job:
        """Runs an ended job again as a new job (same type, lifecycle, parameters, labels, priority,
        attempts and retry policy), whose ``retry_of`` is the old job's id; the old job is untouched.

        Args:
            job_id: The terminal job to run again.
            request_id: Idempotency key (generated when omitted): a retry returns the first new job.
            validate_only: Only check: the answer is the call's (the new job under an id that is not
                kept), but nothing is created.

        Returns:
            The new job.

        Raises:
            jobwarden.errors.PermissionDenied: The token lacks the admin role.
            jobwarden.errors.JobNotTerminal: The job has not ended.
            jobwarden.errors.NotFound: No such job within the admin's reach.
        """
        request = admin_service_pb2.RetryJobRequest(
            job_id=job_id, request_id=idempotency_key(request_id), validate_only=validate_only
        )
        response = await self._unary(self._admin_stub.RetryJob, request)
        return _convert.job_from_pb(response.job)
