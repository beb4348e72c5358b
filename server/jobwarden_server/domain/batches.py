"""Batches: how the server drives a batch's parent from its children, as pure functions.

A parent is a job governed by the built-in `batch` table (lifecycle.BATCH) that no worker ever claims.
Every change of a child's status is folded into its parent's counts in the transaction of that change
(store/_batches.py), and `follow` then decides what the parent does on the counts as they now stand:

- it starts (QUEUED -> RUNNING) when its first child leaves waiting: starts, or ends unstarted;
- its progress is the share of its children that have ended (done of total);
- when every child has ended, it ends too: CANCELLED if a client cancelled it, else `outcome`.

Cancelling a parent (`cancel`) only marks it; its unfinished children are cancelled in the same
transaction, and the parent ends CANCELLED through `follow` once every child has ended. Not at once,
though the table would allow it: a parent that says it is over while workers still run its children
would fire its callback too early and keep changing its counts after its end. So a terminal parent
always means every child has ended, and its counts are final.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from jobwarden_server.domain import errors
from jobwarden_server.domain.changes import Decision, JobChanges, NewEvent
from jobwarden_server.domain.idempotency import ANONYMOUS, RequestKey
from jobwarden_server.domain.lifecycle import BATCH
from jobwarden_server.domain.records import BatchCounts, EventKind, Job, JobError, Progress
from jobwarden_server.domain.status import JobStatus, StopReason

MAX_CHILDREN = 10_000
"""Children per batch at most: one transaction creates them all."""

FAILED_CHILDREN = "CHILDREN_FAILED"
"""The error reason a FAILED or PARTIAL parent carries."""

SYSTEM = "system"


def counts_of(statuses: list[JobStatus]) -> BatchCounts:
    """The counts of children in these statuses (a new batch's, from its children as created)."""
    counts = BatchCounts()
    for status in statuses:
        counts = moved(counts, None, status)
    return counts


def moved(counts: BatchCounts, from_status: JobStatus | None, to_status: JobStatus) -> BatchCounts:
    """`counts` after one child moved from `from_status` (None: a new child) to `to_status`."""
    change: dict[str, int] = {}
    if from_status is not None:
        change[from_status.value.lower()] = counts.of(from_status) - 1
    key = to_status.value.lower()
    change[key] = change.get(key, counts.of(to_status)) + 1
    return dataclasses.replace(counts, **change)


def outcome(counts: BatchCounts) -> JobStatus:
    """How a batch whose children have all ended ends, unless cancelled: COMPLETED if every child
    completed; FAILED if none completed even partially (each FAILED, CANCELLED or EXPIRED: a child
    that did not succeed counts as failed); PARTIAL otherwise."""
    if counts.completed == counts.total:
        return JobStatus.COMPLETED
    if counts.completed == 0 and counts.partial == 0:
        return JobStatus.FAILED
    return JobStatus.PARTIAL


def progress_of(counts: BatchCounts) -> Progress:
    """A parent's progress: the share of its children that have ended."""
    finished, total = counts.finished, counts.total
    return Progress(
        percent=100.0 * finished / total if total else 0.0,
        message=f"{finished} of {total} children finished",
        done=finished,
        total=total,
    )


def _transition(from_status: JobStatus, to: JobStatus, reason: str, stop: StopReason) -> NewEvent:
    data: dict[str, Any] = {
        "from": from_status.value,
        "to": to.value,
        "reason": reason,
        "stop_reason": stop.value,
    }
    return NewEvent(kind=EventKind.TRANSITION, actor=SYSTEM, data=data)


def follow(parent: Job, now: dt.datetime) -> Decision | None:
    """What `parent` does on its counts as they now stand (None: nothing). Every move is checked
    against the batch table; a terminal parent never moves again."""
    counts = parent.batch
    if counts is None or parent.status.terminal:
        return None
    status = parent.status
    events: list[NewEvent] = []
    changes: dict[str, Any] = {}
    done = counts.finished == counts.total
    cancel_now = done and parent.cancel_requested and BATCH.allows(status, JobStatus.CANCELLED)
    if status is JobStatus.QUEUED and counts.waiting < counts.total and not cancel_now:
        reason = "its first child started" if counts.running else "its first child ended"
        events.append(_transition(status, JobStatus.RUNNING, reason, StopReason.UNSPECIFIED))
        status = JobStatus.RUNNING
        changes["start_time"] = now
    progress = progress_of(counts)
    if progress.done != parent.progress.done:  # the share of ended children moved
        events.append(NewEvent(kind=EventKind.PROGRESS, actor=SYSTEM, data=dataclasses.asdict(progress)))
        changes["progress"] = progress
    if done:
        to = JobStatus.CANCELLED if parent.cancel_requested else outcome(counts)
        if not BATCH.allows(status, to):
            raise errors.InvalidTransition(parent.id, BATCH.name, status, to)
        stop = StopReason.USER_CANCELLED if to is JobStatus.CANCELLED else StopReason.UNSPECIFIED
        unsuccessful = counts.total - counts.completed
        if to in (JobStatus.FAILED, JobStatus.PARTIAL):
            message = f"{unsuccessful} of {counts.total} children did not complete"
            changes["error"] = JobError(message=message, reason=FAILED_CHILDREN)
        reason = (
            "cancelled, and every child has ended"
            if stop is StopReason.USER_CANCELLED
            else (
                f"every child has ended: {counts.completed} completed, {counts.partial} partial, "
                f"{unsuccessful - counts.partial} failed, cancelled or expired"
            )
        )
        events.append(_transition(status, to, reason, stop))
        status = to
        changes |= {"complete_time": now, "stop_reason": stop}
    if not events:
        return None
    return Decision(
        changes=JobChanges(status=status if status is not parent.status else None, **changes),
        events=tuple(events),
        expect_statuses=frozenset({parent.status}),
        expect_version=parent.version,
    )


def cancel(
    parent: Job, *, actor: str, reason: str, etag: str, request: RequestKey = ANONYMOUS
) -> Decision | None:
    """A client cancels a batch: the parent is marked (its children are cancelled with it, and it ends
    CANCELLED once they have all ended; see the module's docstring). None if it was marked already;
    INVALID_TRANSITION once it has ended. Guarded by version only when the caller sent an etag: the
    counts change the parent's version whenever a child moves, which says nothing to a plain cancel."""
    if etag and etag != parent.etag:
        raise errors.EtagMismatch(
            f"job {parent.id} changed: etag is {parent.etag}, not {etag}",
            metadata={"job_id": parent.id, "etag": parent.etag},
        )
    if parent.status.terminal:
        raise errors.InvalidTransition(parent.id, BATCH.name, parent.status, JobStatus.CANCELLED)
    if parent.cancel_requested:
        return None
    data = {"reason": reason, **request.event_data()}
    return Decision(
        changes=JobChanges(cancel_requested=True),
        events=(NewEvent(kind=EventKind.CANCEL_REQUESTED, actor=actor, data=data, request_id=request.id),),
        expect_statuses=frozenset({parent.status}),
        expect_version=parent.version if etag else None,
    )
