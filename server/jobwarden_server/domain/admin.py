"""The rules of AdminService, as pure functions: whose jobs an admin reaches, what a direct status
change does to a job, and which jobs may run again.

A client's or worker's change is always one the job's lifecycle table allows. An admin may also move a
job along any edge of its table, or with `force` to a status the table has no edge to (a terminal job
back to QUEUED, say); either way the change is one compare-and-set with a transition event naming the
admin, the reason, and whether it was forced and bypassed the table.
"""

from __future__ import annotations

import datetime as dt

from jobwarden_server.domain import decisions, errors
from jobwarden_server.domain.auth import Principal, Role
from jobwarden_server.domain.changes import Decision, JobChanges, NewEvent
from jobwarden_server.domain.idempotency import ANONYMOUS, RequestKey
from jobwarden_server.domain.lifecycle import Lifecycle
from jobwarden_server.domain.records import EventKind, Job, JobError
from jobwarden_server.domain.status import JobStatus, StopReason

SET_BY_ADMIN = "SET_BY_ADMIN"
"""The error reason of a job an admin set FAILED or PARTIAL (its message is the admin's reason)."""


def actor(who: Principal) -> str:
    """How an admin appears in job histories: `admin:<owner>`, then `/<token name>` when the token
    has a name of its own."""
    named = f"/{who.name}" if who.name and who.name != who.owner else ""
    return f"admin:{who.owner}{named}"


def scope(who: Principal) -> str | None:
    """The owner whose jobs `who` reaches; None for every owner's (an admin-global token)."""
    return None if Role.GLOBAL_ADMIN in who.roles else who.owner


def check_target(field: str, to: JobStatus) -> JobStatus:
    """The status an admin may ask for: any but RUNNING, which only a worker's claim sets (a running
    job without a lease would never be reaped)."""
    if to is JobStatus.RUNNING:
        raise errors.InvalidArgument(field, "RUNNING is set only by a worker's claim")
    return to


def set_status(
    job: Job,
    table: Lifecycle,
    to: JobStatus,
    *,
    actor: str,
    reason: str,
    force: bool,
    now: dt.datetime,
    request: RequestKey = ANONYMOUS,
) -> Decision | None:
    """Move `job` to `to` as an admin asks: along an edge of its table, or with `force` to any status
    the table knows (a non-terminal one it lacks would strand the job; a terminal one ends it). None
    if the job is in `to` already.

    Leaving RUNNING drops the lease, so the worker's next call is LEASE_LOST; a terminal status sets
    complete_time (FAILED and PARTIAL record the reason as the error); leaving a terminal status
    clears it, and a job waiting again starts a new queue timeout from now and is no longer stalled."""
    if job.status is to:
        return None
    in_table = table.allows(job.status, to)
    if not in_table and (not force or (not to.terminal and to not in table.statuses)):
        raise errors.InvalidTransition(job.id, table.name, job.status, to)
    waiting = to in (JobStatus.CREATED, JobStatus.QUEUED)
    stop = StopReason.USER_CANCELLED if to is JobStatus.CANCELLED else StopReason.UNSPECIFIED
    changes = JobChanges(
        status=to,
        stop_reason=stop,
        error=JobError(message=reason, reason=SET_BY_ADMIN) if to in _WITH_ERROR else None,
        cancel_requested=False if not to.terminal and job.cancel_requested else None,
        complete_time=now if to.terminal else None,
        clear_complete_time=job.status.terminal and not to.terminal,
        clear_lease=job.status is JobStatus.RUNNING,
        queue_expire_time=decisions.queue_expire_time(now, job.queue_timeout_s) if waiting else None,
        clear_stall=job.stalled and not to.terminal,  # waiting again: no attempt left to be stuck
    )
    data = {
        **request.event_data(),
        "from": job.status.value,
        "to": to.value,
        "reason": reason,
        "stop_reason": stop.value,
        "forced": force,
        "bypassed_table": not in_table,
    }
    return Decision(
        changes=changes,
        events=(NewEvent(kind=EventKind.TRANSITION, actor=actor, data=data, request_id=request.id),),
        expect_statuses=frozenset({job.status}),
        expect_version=job.version,
    )


_WITH_ERROR = frozenset({JobStatus.FAILED, JobStatus.PARTIAL})


def check_retryable(job: Job) -> Job:
    """`job`, if it has ended and so may run again as a new job (JOB_NOT_TERMINAL otherwise)."""
    if not job.status.terminal:
        raise errors.JobNotTerminal(job.id, job.status.value, "only a terminal job can run again")
    return job
