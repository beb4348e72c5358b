"""How an attempt that did not succeed ends, whether a worker reported the failure or its lease ran out.

One rule for both, so a failed attempt and a dead worker's attempt can never be treated differently:
a requested cancel wins (CANCELLED), then a retry while attempts are left (QUEUED again, with backoff
and jitter), else FAILED.
"""

from __future__ import annotations

import datetime as dt

from jobwarden_server import store
from jobwarden_server.domain.records import Job, JobError
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.service.writer import ANONYMOUS, JobWriter, Request


async def end_attempt(
    writer: JobWriter,
    retry: RetryPolicy,
    job: Job,
    error: JobError,
    *,
    actor: str,
    owner: str | None,
    cancel_reason: str,
    stop_reason: StopReason = StopReason.UNSPECIFIED,
    lease_token: str | None = None,
    request: Request = ANONYMOUS,
) -> Job:
    """Move a RUNNING `job` on after an unsuccessful attempt; return it as it is afterwards."""
    params = end_attempt_params(
        writer,
        retry,
        job,
        error,
        actor=actor,
        owner=owner,
        cancel_reason=cancel_reason,
        stop_reason=stop_reason,
        lease_token=lease_token,
        request=request,
    )
    return await writer.apply(job, params)


def end_attempt_params(
    writer: JobWriter,
    retry: RetryPolicy,
    job: Job,
    error: JobError,
    *,
    actor: str,
    owner: str | None,
    cancel_reason: str,
    stop_reason: StopReason = StopReason.UNSPECIFIED,
    lease_token: str | None = None,
    request: Request = ANONYMOUS,
) -> store.JobUpdateParams:
    """The compare-and-set that ends `job`'s attempt (see the module for the rule).

    `stop_reason` is recorded if the job fails for good; left unspecified, a retryable failure on the
    last attempt is recorded as MAX_ATTEMPTS_EXCEEDED.
    """
    table = writer.lifecycles.named(job.lifecycle)
    now = writer.clock()
    done = store.JobChanges(error=error, complete_time=now, clear_lease=True)
    if job.cancel_requested and table.allows(JobStatus.RUNNING, JobStatus.CANCELLED):
        to, stop, reason, changes = JobStatus.CANCELLED, StopReason.USER_CANCELLED, cancel_reason, done
    elif (
        error.retryable
        and job.attempt < job.max_attempts
        and table.allows(JobStatus.RUNNING, JobStatus.QUEUED)
    ):
        retry_at = now + dt.timedelta(seconds=(job.retry or retry).backoff_s(job.attempt))
        to, stop, reason = JobStatus.QUEUED, StopReason.UNSPECIFIED, f"retry after failure: {error.message}"
        changes = store.JobChanges(error=error, run_after=retry_at, clear_lease=True)
    else:
        exhausted = error.retryable and job.attempt >= job.max_attempts
        if stop_reason is StopReason.UNSPECIFIED and exhausted:
            stop_reason = StopReason.MAX_ATTEMPTS_EXCEEDED
        to, stop, reason, changes = JobStatus.FAILED, stop_reason, error.message, done
    return writer.transition_params(
        job,
        to,
        actor=actor,
        reason=reason,
        owner=owner,
        stop_reason=stop,
        changes=changes,
        lease_token=lease_token,
        request=request,
    )
