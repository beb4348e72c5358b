"""The rules of every change to a job, as pure functions: (job as read, the request, now) -> Decision.

Each function either refuses (raises a domain error), decides there is nothing to do (None), or
returns the Decision the write entry applies with one compare-and-set. Nothing here reads or writes
a database, so every rule is tested on plain records (tests/unit/server/test_decisions.py).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from jobwarden_server.domain import errors, messages
from jobwarden_server.domain.changes import Decision, JobChanges, NewEvent
from jobwarden_server.domain.idempotency import ANONYMOUS, RequestKey
from jobwarden_server.domain.lifecycle import Lifecycle
from jobwarden_server.domain.records import EventKind, Job, JobError, Progress
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.stall import StallAction, StallRule
from jobwarden_server.domain.status import JobStatus, StopReason

SYSTEM = "system"
"""The actor of the server's own changes (the reaper)."""
LEASE_EXPIRED = "LEASE_EXPIRED"
"""The error reason of an attempt the reaper ended because its lease ran out (see `reap`)."""


def client_actor(owner: str) -> str:
    """How a client appears in job histories."""
    return f"client:{owner}"


def worker_actor(worker_id: str) -> str:
    """How a worker appears in job histories."""
    return f"worker:{worker_id}"


def check_leased(job: Job, lease_token: str) -> Job:
    """`job`, if it is RUNNING under `lease_token` (LEASE_LOST otherwise)."""
    if job.status is not JobStatus.RUNNING or job.lease_token != lease_token:
        raise errors.LeaseLost(job.id)
    return job


def transition(
    job: Job,
    table: Lifecycle,
    to: JobStatus,
    *,
    actor: str,
    reason: str = "",
    stop_reason: StopReason = StopReason.UNSPECIFIED,
    changes: JobChanges | None = None,
    lease_token: str | None = None,
    request: RequestKey = ANONYMOUS,
) -> Decision:
    """Move `job` to `to`: LEASE_LOST if `lease_token` is not the job's, INVALID_TRANSITION if its
    table has no edge from its status. Written only if the job is still as read (status, version)."""
    if lease_token is not None and job.lease_token != lease_token:
        raise errors.LeaseLost(job.id)
    if not table.allows(job.status, to):
        raise errors.InvalidTransition(job.id, table.name, job.status, to)
    base = changes or JobChanges()
    data = {
        **request.event_data(),
        "from": job.status.value,
        "to": to.value,
        "reason": reason,
        "stop_reason": stop_reason.value,
    }
    return Decision(
        changes=dataclasses.replace(
            base,
            status=to,
            stop_reason=stop_reason if stop_reason is not StopReason.UNSPECIFIED else base.stop_reason,
        ),
        events=(NewEvent(kind=EventKind.TRANSITION, actor=actor, request_id=request.id, data=data),),
        expect_statuses=frozenset({job.status}),
        expect_lease_token=lease_token,
        expect_version=job.version,
    )


def end_attempt(
    job: Job,
    table: Lifecycle,
    error: JobError,
    *,
    default_retry: RetryPolicy,
    now: dt.datetime,
    actor: str,
    cancel_reason: str,
    stop_reason: StopReason = StopReason.UNSPECIFIED,
    lease_token: str | None = None,
    request: RequestKey = ANONYMOUS,
) -> Decision:
    """How an attempt that did not succeed ends, whether its worker reported the failure or its lease
    ran out (one rule for both): a requested cancel wins (CANCELLED), then a retry while attempts are
    left (QUEUED again after the job's backoff), else FAILED.

    `stop_reason` is recorded if the job fails for good; left unspecified, a retryable failure on the
    last attempt is recorded as MAX_ATTEMPTS_EXCEEDED."""
    done = JobChanges(error=error, complete_time=now, clear_lease=True)
    if job.cancel_requested and table.allows(JobStatus.RUNNING, JobStatus.CANCELLED):
        to, stop, reason, changes = JobStatus.CANCELLED, StopReason.USER_CANCELLED, cancel_reason, done
    elif (
        error.retryable
        and job.attempt < job.max_attempts
        and table.allows(JobStatus.RUNNING, JobStatus.QUEUED)
    ):
        retry_at = now + dt.timedelta(seconds=(job.retry or default_retry).backoff_s(job.attempt))
        to, stop, reason = JobStatus.QUEUED, StopReason.UNSPECIFIED, f"retry after failure: {error.message}"
        # Queued again: a new wait to start, timed from when the retry is due; no longer stalled.
        requeue_expire = queue_expire_time(retry_at, job.queue_timeout_s)
        changes = JobChanges(
            error=error,
            run_after=retry_at,
            clear_lease=True,
            queue_expire_time=requeue_expire,
            clear_stall=True,
        )
    else:
        if stop_reason is StopReason.UNSPECIFIED and error.retryable and job.attempt >= job.max_attempts:
            stop_reason = StopReason.MAX_ATTEMPTS_EXCEEDED
        to, stop, reason, changes = JobStatus.FAILED, stop_reason, error.message, done
    return transition(
        job,
        table,
        to,
        actor=actor,
        reason=reason,
        stop_reason=stop,
        changes=changes,
        lease_token=lease_token,
        request=request,
    )


def complete(
    job: Job,
    table: Lifecycle,
    *,
    lease_token: str,
    result: Mapping[str, Any],
    partial: JobError | None,
    now: dt.datetime,
    request: RequestKey = ANONYMOUS,
) -> Decision:
    """A worker finishes its attempt: COMPLETED, or PARTIAL when `partial` says what went wrong.
    Progress becomes 100."""
    check_leased(job, lease_token)
    return transition(
        job,
        table,
        JobStatus.PARTIAL if partial is not None else JobStatus.COMPLETED,
        actor=worker_actor(job.worker_id),
        reason=partial.message if partial is not None else "completed by worker",
        lease_token=lease_token,
        request=request,
        changes=JobChanges(
            result=result,
            error=partial,
            progress=dataclasses.replace(job.progress, percent=100.0),
            complete_time=now,
            clear_lease=True,
            clear_stall=True,  # it did not hang after all
        ),
    )


def fail(
    job: Job,
    table: Lifecycle,
    *,
    lease_token: str,
    error: JobError,
    stop_reason: StopReason,
    default_retry: RetryPolicy,
    now: dt.datetime,
    request: RequestKey = ANONYMOUS,
) -> Decision:
    """A worker reports its attempt failed: the attempt ends as end_attempt rules."""
    check_leased(job, lease_token)
    return end_attempt(
        job,
        table,
        error,
        default_retry=default_retry,
        now=now,
        actor=worker_actor(job.worker_id),
        cancel_reason="cancel confirmed by worker",
        stop_reason=stop_reason,
        lease_token=lease_token,
        request=request,
    )


def undelivered_claim(job: Job, table: Lifecycle, *, lease_token: str) -> Decision | None:
    """A claim whose caller was gone before its reply could go out (the call ended while the claim was
    being written): the job goes back to the queue at once, its attempt count as before the claim,
    instead of waiting out a lease nobody holds. None, and the lease runs out as usual, when the
    claim is no longer the job's or its table has no way back to QUEUED."""
    if job.status is not JobStatus.RUNNING or job.lease_token != lease_token:
        return None
    if not table.allows(JobStatus.RUNNING, JobStatus.QUEUED):
        return None
    changes = JobChanges(attempt=job.attempt - 1, clear_lease=True, clear_stall=True)
    return transition(
        job,
        table,
        JobStatus.QUEUED,
        actor=SYSTEM,
        reason="claim not delivered: the caller was gone before the reply",
        changes=changes,
        lease_token=lease_token,
    )


def renewed_lease(job: Job, now: dt.datetime) -> dt.datetime | None:
    """A heartbeat renews the lease, except after a cancel request: the grace period stands."""
    if job.cancel_requested:
        return job.lease_expire_time
    return now + dt.timedelta(seconds=job.lease_duration_s)


def report_progress(
    job: Job, *, lease_token: str, progress: Progress, now: dt.datetime, request: RequestKey = ANONYMOUS
) -> Decision:
    """Record progress and renew the lease. A repeat of the last report (a heartbeat) only renews the
    lease: it adds no event, so histories stay readable and watchers are not woken for nothing, and it
    does not count as progress for stall detection. A change of progress clears a stall flag."""
    check_leased(job, lease_token)
    events: tuple[NewEvent, ...] = ()
    changes = JobChanges(progress=progress, lease_expire_time=renewed_lease(job, now))
    if progress != job.progress:
        data = {**request.event_data(), **dataclasses.asdict(progress)}
        actor = worker_actor(job.worker_id)
        events = (NewEvent(kind=EventKind.PROGRESS, actor=actor, request_id=request.id, data=data),)
        changes = dataclasses.replace(changes, progress_time=now, clear_stall=job.stalled)
    return Decision(
        changes=changes,
        events=events,
        expect_statuses=frozenset({JobStatus.RUNNING}),
        expect_lease_token=lease_token,
    )


def add_messages(
    job: Job,
    *,
    lease_token: str,
    added: Sequence[messages.JobMessage],
    request: RequestKey = ANONYMOUS,
) -> Decision | None:
    """A worker attaches messages to its running job: one LOG event each, in order, all in the one
    compare-and-set, which adds their number to message_count. Written only while the job is still
    RUNNING under `lease_token` (LEASE_LOST otherwise); the lease is not renewed (progress does that).
    A cancel requested meanwhile does not stop them: a worker winding down may still say why. None
    (nothing to write) for no messages."""
    check_leased(job, lease_token)
    if not added:
        return None
    actor = worker_actor(job.worker_id)
    events = tuple(
        NewEvent(
            kind=EventKind.LOG,
            actor=actor,
            request_id=request.id,
            data={**request.event_data(), **messages.event_data(message)},
        )
        for message in added
    )
    return Decision(
        changes=JobChanges(messages_added=len(events)),
        events=events,
        expect_statuses=frozenset({JobStatus.RUNNING}),
        expect_lease_token=lease_token,
    )


def cancel(
    job: Job,
    table: Lifecycle,
    *,
    actor: str,
    reason: str,
    etag: str,
    now: dt.datetime,
    grace: dt.timedelta,
    request: RequestKey = ANONYMOUS,
) -> Decision | None:
    """Cancel at once when not running; when running, ask the worker to stop (None if that was asked
    already). The worker has `grace` to confirm; if it never does, its lease runs out then and the
    reaper cancels the job (heartbeats no longer extend a lease once a cancel is requested)."""
    if etag and etag != job.etag:
        raise errors.EtagMismatch(
            f"job {job.id} changed: etag is {job.etag}, not {etag}",
            metadata={"job_id": job.id, "etag": job.etag},
        )
    if job.status is JobStatus.RUNNING and table.allows(JobStatus.RUNNING, JobStatus.CANCELLED):
        if job.cancel_requested:
            return None
        expire = now + grace
        if job.lease_expire_time is not None:
            expire = min(expire, job.lease_expire_time)
        data = {"reason": reason, **request.event_data()}
        return Decision(
            changes=JobChanges(cancel_requested=True, lease_expire_time=expire),
            events=(
                NewEvent(kind=EventKind.CANCEL_REQUESTED, actor=actor, data=data, request_id=request.id),
            ),
            expect_statuses=frozenset({JobStatus.RUNNING}),
            expect_version=job.version,
        )
    return transition(
        job,
        table,
        JobStatus.CANCELLED,
        actor=actor,
        reason=reason or "cancelled by client",
        stop_reason=StopReason.USER_CANCELLED,
        changes=JobChanges(complete_time=now),
        request=request,
    )


def release(job: Job, table: Lifecycle, *, actor: str, request: RequestKey = ANONYMOUS) -> Decision:
    """Move a held (CREATED) job to its table's initial state. Other edges into the initial state (a
    retry's RUNNING -> QUEUED) are the server's own, so only a held job is released."""
    if job.status is not JobStatus.CREATED:
        raise errors.InvalidTransition(job.id, table.name, job.status, table.initial)
    return transition(job, table, table.initial, actor=actor, reason="released by client", request=request)


def queue_expire_time(due: dt.datetime, queue_timeout_s: float | None) -> dt.datetime | None:
    """When a job that is due to start at `due` expires unless claimed first (None: never)."""
    return None if queue_timeout_s is None else due + dt.timedelta(seconds=queue_timeout_s)


def waits_too_long(job: Job, now: dt.datetime) -> bool:
    """Whether `job` is still waiting to start (held or queued) past its queue timeout."""
    waiting = job.status in (JobStatus.CREATED, JobStatus.QUEUED)
    return waiting and job.queue_expire_time is not None and job.queue_expire_time <= now


def _expire(job: Job, table: Lifecycle, now: dt.datetime, reason: str, stop: StopReason) -> Decision | None:
    if not table.allows(job.status, JobStatus.EXPIRED):
        return None  # create refuses timeouts a table cannot honour; a table changed since
    changes = JobChanges(complete_time=now, clear_lease=True)
    return transition(
        job, table, JobStatus.EXPIRED, actor=SYSTEM, reason=reason, stop_reason=stop, changes=changes
    )


def reap(
    job: Job,
    table: Lifecycle,
    *,
    default_retry: RetryPolicy,
    now: dt.datetime,
    stall_rule: StallRule | None = None,
) -> Decision | None:
    """What the reaper does with a job it found due: past its deadline, EXPIRED (if its table can
    expire it from where it is); waiting to start past its queue timeout, EXPIRED with its own stop
    reason; with its lease run out, the attempt ends as end_attempt rules; still leased but with its
    progress standing still past its type's `stall_rule`, as `stall` rules. None if the job is none of
    these (any more)."""
    if job.deadline is not None and job.deadline <= now and not job.status.terminal:
        return _expire(job, table, now, "deadline passed", StopReason.TIMEOUT_EXCEEDED)
    if waits_too_long(job, now):
        return _expire(
            job, table, now, "not started within its queue timeout", StopReason.QUEUE_TIMEOUT_EXCEEDED
        )
    if job.status is not JobStatus.RUNNING or job.lease_expire_time is None:
        return None
    if job.lease_expire_time >= now:  # still leased: only a stall can make it due
        if stall_rule is None:
            return None
        return stall(job, table, stall_rule, default_retry=default_retry, now=now)
    lost = JobError(message=f"lease of worker {job.worker_id} expired", reason=LEASE_EXPIRED, retryable=True)
    return end_attempt(
        job,
        table,
        lost,
        default_retry=default_retry,
        now=now,
        actor=SYSTEM,
        cancel_reason="cancel requested and the worker did not confirm in time",
        stop_reason=StopReason.LEASE_EXPIRED,
    )


def stall(
    job: Job, table: Lifecycle, rule: StallRule, *, default_retry: RetryPolicy, now: dt.datetime
) -> Decision | None:
    """A RUNNING job whose progress has stood still for `rule.after_s` (its worker renewing the lease
    all along) is flagged stalled: `stall_time` set and a STALLED event. None if it is not running,
    is flagged already, or has moved since.

    With the `fail` action the attempt also ends, by the end_attempt rules, exactly as when a lease
    runs out: a requested cancel wins, then a retry while attempts are left, else FAILED with stop
    reason STALLED. The error is retryable on purpose. A hung attempt is the same failure as a frozen
    worker whose lease expired (only its heartbeat thread survived), so it gets the same treatment:
    the job's max_attempts is the budget for attempts that do not succeed, whoever notices. A type
    whose jobs hang for good every time should set max_attempts to 1 on them.

    Written only if the job is still as read (version): a progress report in between wins, and the
    next pass looks again. A job whose table has no RUNNING -> FAILED (the config refuses `fail` for
    such a type, but a job keeps the table it was created under) is only flagged."""
    if job.status is not JobStatus.RUNNING or job.stalled or not rule.stood_still(job.progress_time, now):
        return None
    assert job.progress_time is not None  # stood_still is False without one
    failing = rule.action is StallAction.FAIL and table.allows(JobStatus.RUNNING, JobStatus.FAILED)
    data = {
        "since": job.progress_time.isoformat(),
        **dataclasses.asdict(job.progress),
        "stall_after_s": rule.after_s,
        "failed": failing,
    }
    flagged = NewEvent(kind=EventKind.STALLED, actor=SYSTEM, data=data)
    if not failing:
        return Decision(
            changes=JobChanges(stall_time=now),
            events=(flagged,),
            expect_statuses=frozenset({JobStatus.RUNNING}),
            expect_version=job.version,
        )
    hung = JobError(
        message=f"progress stood still for {rule.after_s:g}s (since {job.progress_time.isoformat()})",
        reason=StopReason.STALLED.value,
        retryable=True,
    )
    ended = end_attempt(
        job,
        table,
        hung,
        default_retry=default_retry,
        now=now,
        actor=SYSTEM,
        cancel_reason="cancel requested and the job stalled before the worker confirmed",
        stop_reason=StopReason.STALLED,
    )
    changes = ended.changes
    if changes.status is not JobStatus.QUEUED:  # a retry starts afresh, unflagged
        changes = dataclasses.replace(changes, stall_time=now)
    return dataclasses.replace(ended, changes=changes, events=(flagged, *ended.events))
