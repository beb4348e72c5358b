"""Frozen records the store returns and the service hands to the API. Times are timezone-aware UTC."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping
from typing import Any

from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.domain.trace import TraceContext


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """A worker's progress report. percent is 0..100; done <= total when total is set."""

    percent: float = 0.0
    message: str = ""
    done: int = 0
    total: int = 0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobError:
    """Why a job failed or finished partially."""

    message: str
    reason: str = ""
    retryable: bool = False


class CallbackState(enum.StrEnum):
    """Where a job's completion callback stands (the proto's CallbackState without its prefix)."""

    NONE = ""  # no callback, or the job has not ended in a status that fires it
    PENDING = "PENDING"  # due; no attempt yet
    DELIVERING = "DELIVERING"  # an attempt failed; another is scheduled
    DELIVERED = "DELIVERED"  # the receiver answered 2xx
    FAILED = "FAILED"  # given up (410, refused target, horizon passed)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BatchCounts:
    """A batch parent's children by status; every child is counted in exactly one status."""

    created: int = 0
    queued: int = 0
    running: int = 0
    completed: int = 0
    partial: int = 0
    failed: int = 0
    cancelled: int = 0
    expired: int = 0

    def of(self, status: JobStatus) -> int:
        """Children in `status`."""
        count: int = getattr(self, status.value.lower())
        return count

    @property
    def total(self) -> int:
        """Children in the batch."""
        return sum(self.of(s) for s in JobStatus)

    @property
    def finished(self) -> int:
        """Children that have ended."""
        return sum(self.of(s) for s in JobStatus if s.terminal)

    @property
    def waiting(self) -> int:
        """Children that have not started yet (held or queued)."""
        return self.created + self.queued


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One job as stored. `version` grows by one on every change; the etag is derived from it."""

    id: str
    owner: str
    job_type: str
    lifecycle: str
    status: JobStatus
    progress: Progress
    parameters: Mapping[str, Any]
    result: Mapping[str, Any] | None
    error: JobError | None
    stop_reason: StopReason
    attempt: int
    max_attempts: int
    priority: int
    labels: Mapping[str, str]
    run_after: dt.datetime | None
    deadline: dt.datetime | None
    callback_url: str
    cancel_requested: bool
    version: int
    create_time: dt.datetime
    update_time: dt.datetime
    start_time: dt.datetime | None
    complete_time: dt.datetime | None
    worker_id: str
    lease_token: str
    lease_expire_time: dt.datetime | None
    lease_duration_s: float
    last_sequence: int
    request_id: str
    retry: RetryPolicy | None = None
    """The job's own backoff between attempts; None takes the server's defaults."""
    queue_timeout_s: float | None = None
    """How long the job may wait to start (schedule-to-start); None: no limit."""
    queue_expire_time: dt.datetime | None = None
    """While it waits to start: when it expires unless claimed first."""
    callback_statuses: frozenset[JobStatus] = frozenset()
    """The terminal statuses that fire the callback; empty: all of them."""
    callback_state: CallbackState = CallbackState.NONE
    callback_attempts: int = 0
    callback_error: str = ""
    """Why the latest delivery attempt failed ("" once delivered)."""
    retry_of: str = ""
    """The job this one runs again (AdminService.RetryJob); "" for a job created by a client."""
    message_count: int = 0
    """Messages its workers attached (its LOG events)."""
    parent_id: str = ""
    """The batch parent of a child job ("" for a job created on its own)."""
    batch: BatchCounts | None = None
    """A batch parent's children by status (None for every other job)."""
    trace: TraceContext | None = None
    """The trace context it was created in (domain/trace.py); None: its create call carried none."""
    progress_time: dt.datetime | None = None
    """When the current attempt's progress last changed, or it started (None before the first claim):
    what stall detection measures from (domain/stall.py)."""
    stall_time: dt.datetime | None = None
    """When the current attempt was flagged stalled (None: it is not)."""

    @property
    def stalled(self) -> bool:
        """Whether the job is flagged stalled."""
        return self.stall_time is not None

    @property
    def etag(self) -> str:
        """AIP-154 etag: opaque to clients, changes on every change of the job."""
        return f'W/"{self.version}"'


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Asset:
    """An output a worker attached to a job."""

    id: str
    job_id: str
    owner: str
    asset_type: str
    uri: str
    storage_path: str
    size_bytes: int
    content_type: str
    sha256: str
    metadata: Mapping[str, str]
    create_time: dt.datetime
    sequence: int = 0
    """The sequence of the job event that added the asset: assets order and page by it."""


class EventKind(enum.StrEnum):
    """What a job event records; `Event.data` holds the kind's fields."""

    CREATED = "created"  # data: status
    TRANSITION = "transition"  # data: from, to, reason, stop_reason
    PROGRESS = "progress"  # data: percent, message, done, total
    ASSET_ADDED = "asset_added"  # data: the asset's fields (Event.asset is rebuilt from them)
    LOG = "log"  # data: message, level, data (optional): a worker's message (domain/messages.py)
    CANCEL_REQUESTED = "cancel_requested"  # data: reason
    CALLBACK_ATTEMPT = "callback_attempt"  # data: webhook_id, attempt, http_status, error, duration_s,
    # state, next_attempt_us (see store/_outbox.py)
    STALLED = "stalled"  # data: since (ISO 8601), percent, message, done, total, stall_after_s, failed


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One entry of a job's history. Sequences are per job: 1, 2, 3, ... with no gaps."""

    job_id: str
    owner: str
    sequence: int
    create_time: dt.datetime
    actor: str
    kind: EventKind
    data: Mapping[str, Any]
    asset: Asset | None = None
