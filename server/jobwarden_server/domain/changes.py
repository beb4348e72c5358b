"""What a change does to a job: the columns it sets, the events it records, and the conditions under
which it may be written (the compare-and-set). Decisions produce these; the store applies them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from typing import Any

from jobwarden_server.domain.records import EventKind, JobError, Progress
from jobwarden_server.domain.status import JobStatus, StopReason


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """A worker's lease on a running job. The token is the fencing token every worker call carries."""

    token: str
    worker_id: str
    expire_time: dt.datetime
    duration_s: float


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobChanges:
    """Columns to set. None leaves a column as it is; `clear_lease` drops the lease."""

    status: JobStatus | None = None
    progress: Progress | None = None
    result: Mapping[str, Any] | None = None
    error: JobError | None = None
    stop_reason: StopReason | None = None
    cancel_requested: bool | None = None
    run_after: dt.datetime | None = None
    complete_time: dt.datetime | None = None
    lease: Lease | None = None
    lease_expire_time: dt.datetime | None = None
    clear_lease: bool = False
    queue_expire_time: dt.datetime | None = None
    clear_complete_time: bool = False
    """The job is no longer ended (an admin moved it out of a terminal status)."""
    messages_added: int = 0
    """Added to message_count (never set outright: concurrent calls each add their own)."""
    start_time: dt.datetime | None = None
    progress_time: dt.datetime | None = None
    """The progress changed at this time (stall detection measures from it)."""
    stall_time: dt.datetime | None = None
    """The job is flagged stalled from this time."""
    clear_stall: bool = False
    """The job is no longer stalled (its progress moved, it completed or goes back to the queue)."""
    attempt: int | None = None
    """The attempt number, set outright: only a claim taken back (decisions.undelivered_claim) undoes
    the count a claim made."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NewEvent:
    """An event to append to a job's history; the store assigns its sequence."""

    kind: EventKind
    actor: str
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    request_id: str = ""
    """The request_id of the call making the change, so a retry of it can be recognised."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """A change decided on a job as read: what to set and record, and what must still hold when it is
    written. The guards are checked by the write itself, so a decision taken on a read that is no
    longer true is refused instead of applied."""

    changes: JobChanges
    events: tuple[NewEvent, ...] = ()
    expect_statuses: frozenset[JobStatus] | None = None
    expect_lease_token: str | None = None
    expect_version: int | None = None
