"""The SDK's own data types: frozen dataclasses mirroring the API, free of protobuf.

Times are timezone-aware UTC datetimes (None when the server left them unset); ``parameters``,
``result`` and metadata are plain dicts. JSON numbers travel as doubles (``google.protobuf.Struct``):
an integral one comes back as an ``int`` and any other as a ``float``, and a number beyond
±(2**53 - 1), which a double cannot hold exactly, is refused before it is sent.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jobwarden import errors

__all__ = [
    "Asset",
    "Claim",
    "EventKind",
    "Job",
    "JobError",
    "JobEvent",
    "JobMessage",
    "JobStatus",
    "Lifecycle",
    "MessageLevel",
    "NewJob",
    "Progress",
    "StopReason",
    "WatchReconnect",
]

JsonObject = dict[str, Any]
"""A JSON object: what ``google.protobuf.Struct`` holds."""


class JobStatus(enum.StrEnum):
    """Where a job stands in its lifecycle (``JOB_STATUS_*`` without the prefix)."""

    UNSPECIFIED = "UNSPECIFIED"
    CREATED = "CREATED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        """Whether the status is final in every built-in lifecycle."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {JobStatus.COMPLETED, JobStatus.PARTIAL, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}
)


class StopReason(enum.StrEnum):
    """Why a job ended, when its status alone does not say (``STOP_REASON_*`` without the prefix)."""

    UNSPECIFIED = "UNSPECIFIED"
    USER_CANCELLED = "USER_CANCELLED"
    TIMEOUT_EXCEEDED = "TIMEOUT_EXCEEDED"
    RESOURCE_LIMIT_EXCEEDED = "RESOURCE_LIMIT_EXCEEDED"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    PROVIDER_ERROR = "PROVIDER_ERROR"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    LEASE_EXPIRED = "LEASE_EXPIRED"
    MAX_ATTEMPTS_EXCEEDED = "MAX_ATTEMPTS_EXCEEDED"
    QUEUE_TIMEOUT_EXCEEDED = "QUEUE_TIMEOUT_EXCEEDED"
    STALLED = "STALLED"

    @property
    def worker_may_give(self) -> bool:
        """Whether a worker may fail a job with this reason; the others are recorded by the server."""
        return self in {
            StopReason.RESOURCE_LIMIT_EXCEEDED,
            StopReason.VALIDATION_ERROR,
            StopReason.PROVIDER_ERROR,
            StopReason.INTERNAL_ERROR,
        }


class EventKind(enum.StrEnum):
    """What a :class:`JobEvent` records. ``UNKNOWN`` is an event kind newer than this SDK."""

    CREATED = "created"
    TRANSITION = "transition"
    PROGRESS = "progress"
    ASSET_ADDED = "asset_added"
    LOG = "log"
    CANCEL_REQUESTED = "cancel_requested"
    CALLBACK_ATTEMPT = "callback_attempt"
    STALLED = "stalled"
    UNKNOWN = "unknown"


class MessageLevel(enum.StrEnum):
    """What kind of record a job message is (see :meth:`JobContext.log`)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    OUTPUT = "OUTPUT"
    """An intermediate output of the job (a partial result), not a diagnostic."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobMessage:
    """A message a worker attaches to its running job: a log line, a warning, an intermediate output.

    It needs ``text`` or ``data`` (or both), of at most 64 KiB together (the UTF-8 text plus the
    compact JSON of ``data``); a call carries 1 to 100 of them.

    Attributes:
        text: The text.
        level: What kind of record it is.
        data: Structured content: any JSON value (None: none), numbers within ±(2**53 - 1).
    """

    text: str = ""
    level: MessageLevel = MessageLevel.INFO
    data: Any = None


class CallbackState(enum.StrEnum):
    """Where a job's completion callback stands. ``NONE``: no callback, or not fired (yet)."""

    NONE = "NONE"
    PENDING = "PENDING"
    DELIVERING = "DELIVERING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CallbackAttempt:
    """One attempt to deliver a job's completion callback (a ``callback_attempt`` event).

    Attributes:
        webhook_id: The ``webhook-id`` header sent; the same on every attempt of one delivery.
        attempt: The attempt's number, from 1.
        http_status: What the receiver answered (0: no answer, or the target was refused).
        error: Why the attempt failed ("" when delivered).
        duration: Seconds the attempt took.
        state: The callback's state after it.
        next_attempt_time: When the next attempt is due (``DELIVERING`` only).
    """

    webhook_id: str
    attempt: int
    http_status: int = 0
    error: str = ""
    duration: float = 0.0
    state: CallbackState = CallbackState.NONE
    next_attempt_time: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Progress:
    """A worker's latest report on a running job.

    Attributes:
        percent: 0 to 100 inclusive.
        message: Free-form status line.
        done: Units of work done (0 when unused).
        total: Total units of work (0 when unknown).
    """

    percent: float = 0.0
    message: str = ""
    done: int = 0
    total: int = 0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobError:
    """Why a job failed or finished partially.

    Attributes:
        message: Human-readable message.
        reason: Machine-readable reason chosen by the worker.
        retryable: Whether the worker thought another attempt may succeed.
    """

    message: str
    reason: str = ""
    retryable: bool = False


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How long a job waits before each retry: ``initial_backoff * multiplier ** (retry - 1)``, at most
    ``max_backoff``, with jitter. The number of attempts is the job's ``max_attempts``. What is left
    unset (None, or 0 for the multiplier) takes the server's default; a job read back has all three.

    Attributes:
        initial_backoff: Seconds before the first retry (0 to 1 day).
        max_backoff: Longest wait in seconds (0 to 1 day, not below ``initial_backoff``).
        multiplier: Growth per retry (1 to 10).
    """

    initial_backoff: float | None = None
    max_backoff: float | None = None
    multiplier: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class NewJob:
    """A job to create with :meth:`Client.create_jobs`: the arguments of :meth:`Client.create_job`.

    Attributes:
        job_type: The kind of work; workers claim jobs by type.
        parameters: Input of the job; JSON-compatible, numbers within ±(2**53 - 1).
        priority: Higher runs first (-1000..1000).
        labels: Free-form labels, usable as list filters.
        max_attempts: Attempts allowed (0 means the server default).
        retry_policy: How long to wait before each retry (None means the server default).
        run_after: Not claimable before this time (naive datetimes are taken as UTC).
        deadline: The job expires if not terminal by this time.
        callback_url: POSTed a signed JSON payload when the job ends (see the README).
        callback_statuses: The terminal statuses that fire the callback (empty: all of them).
        hold: Start in CREATED instead of QUEUED.
        request_id: Idempotency key; one is generated when None.
        queue_timeout: Seconds the job may wait to start (held or queued) before it ends EXPIRED
            with stop reason QUEUE_TIMEOUT_EXCEEDED; None takes the server's default for its type.
    """

    job_type: str
    parameters: Mapping[str, Any] | None = None
    _: dataclasses.KW_ONLY
    priority: int = 0
    labels: Mapping[str, str] | None = None
    max_attempts: int = 0
    retry_policy: RetryPolicy | None = None
    run_after: datetime | None = None
    deadline: datetime | None = None
    callback_url: str = ""
    callback_statuses: tuple[JobStatus | str, ...] = ()
    hold: bool = False
    request_id: str | None = None
    queue_timeout: float | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class BatchCounts:
    """A batch parent's children by status (see :meth:`Client.create_batch`).

    Attributes:
        total: Children in the batch.
        created: Children held.
        queued: Children waiting for a worker.
        running: Children leased by a worker.
        completed: Children that succeeded.
        partial: Children that finished partially.
        failed: Children that failed.
        cancelled: Children cancelled.
        expired: Children expired.
    """

    total: int = 0
    created: int = 0
    queued: int = 0
    running: int = 0
    completed: int = 0
    partial: int = 0
    failed: int = 0
    cancelled: int = 0
    expired: int = 0

    @property
    def finished(self) -> int:
        """Children that have ended."""
        return self.completed + self.partial + self.failed + self.cancelled + self.expired


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One unit of work, as the server last reported it.

    Attributes:
        id: Server-assigned id.
        owner: The owner the job belongs to.
        job_type: The kind of work.
        lifecycle: Name of the lifecycle table governing the job.
        status: Current status.
        progress: Latest progress report.
        parameters: Input of the job.
        result: Output of the job; None until it is set on completion.
        error: Set when the job failed or finished partially.
        stop_reason: Why the job stopped, when that is not plain success.
        attempt: Attempts started so far.
        max_attempts: Attempts allowed in all.
        priority: Higher runs first.
        labels: Free-form labels.
        run_after: Not claimable before this time.
        deadline: The job expires if not terminal by this time.
        callback_url: Where the job's completion callback goes ("" for none).
        cancel_requested: A cancel was asked for while the job was running.
        etag: Changes whenever the job changes; send it to ``cancel_job`` to guard against races.
        create_time: When the job was created.
        update_time: When the job last changed.
        start_time: When the current attempt started.
        complete_time: When the job reached its terminal state.
        worker_id: The worker holding the lease, while RUNNING.
        last_sequence: Sequence of the job's latest event (resume a watch after it).
        retry_policy: The job's own retry timing; None when the server's default applies.
        queue_timeout: Seconds the job may wait to start; None when it may wait forever.
        queue_expire_time: While the job waits to start: when it expires unless claimed first.
        callback_statuses: The terminal statuses that fire the callback (empty: all of them).
        callback_state: Where the callback stands.
        callback_attempts: Delivery attempts so far.
        callback_error: Why the latest attempt failed ("" once delivered).
        retry_of: The job this one runs again (an admin's ``retry_job``); "" for none.
        message_count: Messages its workers attached (its ``log`` events).
        parent_id: The batch this job is a child of ("" for a job created on its own).
        batch: On a batch's parent only: its children's counts by status (None otherwise).
        traceparent: The W3C trace context the job was created in ("" for none); a
            :class:`Worker` runs its handler in a span that is a child of it.
        tracestate: The W3C ``tracestate`` that came with ``traceparent`` ("" for none).
        stalled: The running attempt's progress stood still past its type's stall limit (the
            server's ``[stall]`` config) while its worker kept the lease.
        stall_time: When the job was flagged stalled (None unless ``stalled``).
        progress_time: When the current attempt's progress last changed, or it started.
    """

    id: str
    owner: str = ""
    job_type: str
    lifecycle: str = ""
    status: JobStatus
    progress: Progress = dataclasses.field(default_factory=Progress)
    parameters: JsonObject = dataclasses.field(default_factory=dict)
    result: JsonObject | None = None
    error: JobError | None = None
    stop_reason: StopReason = StopReason.UNSPECIFIED
    attempt: int = 0
    max_attempts: int = 0
    priority: int = 0
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    run_after: datetime | None = None
    deadline: datetime | None = None
    callback_url: str = ""
    cancel_requested: bool = False
    etag: str = ""
    create_time: datetime | None = None
    update_time: datetime | None = None
    start_time: datetime | None = None
    complete_time: datetime | None = None
    worker_id: str = ""
    last_sequence: int = 0
    retry_policy: RetryPolicy | None = None
    queue_timeout: float | None = None
    queue_expire_time: datetime | None = None
    callback_statuses: tuple[JobStatus, ...] = ()
    callback_state: CallbackState = CallbackState.NONE
    callback_attempts: int = 0
    callback_error: str = ""
    retry_of: str = ""
    message_count: int = 0
    parent_id: str = ""
    batch: BatchCounts | None = None
    traceparent: str = ""
    tracestate: str = ""
    stalled: bool = False
    stall_time: datetime | None = None
    progress_time: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        """Whether the job has reached a final status."""
        return self.status.is_terminal


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Asset:
    """An output attached to a job by its worker.

    Attributes:
        id: Server-assigned id.
        job_id: The job the asset belongs to.
        owner: The job's owner.
        asset_type: Free-form kind, for example ``"image"``.
        uri: Where the asset can be fetched.
        storage_path: Where it is stored, for the storage's own use.
        size_bytes: Size in bytes (0 when unknown).
        content_type: MIME type.
        sha256: Hex SHA-256 of the content, or empty.
        metadata: Free-form metadata.
        create_time: When the asset was added.
    """

    id: str = ""
    job_id: str = ""
    owner: str = ""
    asset_type: str
    uri: str
    storage_path: str = ""
    size_bytes: int = 0
    content_type: str = ""
    sha256: str = ""
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    create_time: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobEvent:
    """One recorded change of a job; ``kind`` says which payload fields are set.

    Attributes:
        job_id: The job the event belongs to.
        sequence: Position in the job's history: 1, 2, 3, ... with no gaps.
        create_time: When the event was recorded.
        actor: ``"client:<owner>"``, ``"worker:<worker_id>"``, ``"system"``, or
            ``"admin:<owner>[/<token name>]"``.
        kind: What happened.
        from_status: ``transition``: the status before.
        to_status: ``transition``: the status after; ``created``: the status created in.
        reason: ``transition``: why, in words; ``cancel_requested``: the client's reason.
        stop_reason: ``transition``: set when the change ended the job.
        forced: ``transition``: an admin's change made with ``force``.
        bypassed_table: ``transition``: an admin's change the lifecycle table has no edge for.
        progress: ``progress``: the report.
        asset: ``asset_added``: the asset.
        message: ``log``: the message's text.
        level: ``log``: what kind of message it is.
        data: ``log``: the message's structured content (None: none).
        callback: ``callback_attempt``: the attempt.
        stall: ``stalled``: since when and at which progress the job stood still.
    """

    job_id: str
    sequence: int
    create_time: datetime | None = None
    actor: str = ""
    kind: EventKind
    from_status: JobStatus | None = None
    to_status: JobStatus | None = None
    reason: str = ""
    stop_reason: StopReason | None = None
    progress: Progress | None = None
    asset: Asset | None = None
    message: str = ""
    level: MessageLevel | None = None
    data: Any = None
    callback: CallbackAttempt | None = None
    forced: bool = False
    bypassed_table: bool = False
    stall: Stall | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Stall:
    """The server flagged a running job stalled (a ``stalled`` event).

    Attributes:
        since: When its progress last changed (or its attempt started).
        progress: The progress it stands at.
        stall_after: Seconds its type allows the progress to stand still.
        failed: Whether the server ended the attempt for it (the type's action is ``fail``).
    """

    since: datetime | None = None
    progress: Progress = dataclasses.field(default_factory=Progress)
    stall_after: float = 0.0
    failed: bool = False


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DurationStats:
    """Nearest-rank percentiles of a set of durations, in seconds.

    Attributes:
        count: How many durations they were taken from (0: the percentiles are None).
        p50: The median.
        p95: The 95th percentile.
        p99: The 99th percentile.
        sampled: The set held more jobs than were used (the server takes the newest 1,000).
    """

    count: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    sampled: bool = False


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobTypeStats:
    """One job type's statistics (see :meth:`Client.stats`).

    Attributes:
        job_type: The job type.
        counts: Jobs created in the window, by their status now (every status present, zeros too).
        success_rate: COMPLETED among the finished ones of them (0.0 when none has finished).
        completion_time: complete - create of those that COMPLETED (queued to finished).
        run_time: complete - start of the same jobs (their last attempt).
        queue_depth: Jobs QUEUED now, whenever created.
        oldest_queued_age: Seconds the oldest of those has existed (None when none is queued).
        running: Jobs RUNNING now, whenever created.
        stalled: Of those, the ones flagged stalled.
    """

    job_type: str
    counts: dict[JobStatus, int] = dataclasses.field(default_factory=dict)
    success_rate: float = 0.0
    completion_time: DurationStats = dataclasses.field(default_factory=DurationStats)
    run_time: DurationStats = dataclasses.field(default_factory=DurationStats)
    queue_depth: int = 0
    oldest_queued_age: float | None = None
    running: int = 0
    stalled: int = 0

    @property
    def total(self) -> int:
        """Jobs created in the window."""
        return sum(self.counts.values())


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobStats:
    """Statistics per job type over a window of create times (see :meth:`Client.stats`).

    Attributes:
        start_time: Start of the window (inclusive).
        end_time: End of the window (exclusive).
        job_types: One entry per job type, sorted by type.
    """

    start_time: datetime | None = None
    end_time: datetime | None = None
    job_types: tuple[JobTypeStats, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WatchReconnect:
    """What ``Client.watch_job`` tells its ``on_reconnect`` callback about a broken stream.

    It is called once before each reopening (``error`` set), and once more when a reopened stream is
    open again (``error`` None), so a caller can show "reconnecting…" and clear it.

    Attributes:
        attempt: Reopenings in a row so far without an event in between, this one included.
        error: Why the stream broke; None when it is open again.
        delay: Seconds the watch waits before this reopening (0 when it is open again).
    """

    attempt: int
    error: errors.JobwardenError | None
    delay: float = 0.0

    @property
    def resumed(self) -> bool:
        """Whether this reports the stream open again (rather than a reopening about to be tried)."""
        return self.error is None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """A job leased to a worker by ``claim_jobs``.

    Attributes:
        job: The job, RUNNING.
        lease_token: The fencing token to send on every worker call about this job.
        lease_expire_time: When the lease expires unless renewed by ``report_progress``.
    """

    job: Job
    lease_token: str
    lease_expire_time: datetime | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Lifecycle:
    """A table of legal status changes, as published by the server.

    Attributes:
        name: The table's name, for example ``"standard"``.
        initial_status: The status a new job starts in unless it is held.
        statuses: Every status the table uses.
        terminal_statuses: The statuses with no way out.
        transitions: Every legal change, as ``(from_status, to_status)`` pairs.
    """

    name: str
    initial_status: JobStatus
    statuses: tuple[JobStatus, ...] = ()
    terminal_statuses: frozenset[JobStatus] = frozenset()
    transitions: frozenset[tuple[JobStatus, JobStatus]] = frozenset()

    def allows(self, from_status: JobStatus, to_status: JobStatus) -> bool:
        """Whether the table allows moving a job from ``from_status`` to ``to_status``."""
        return (from_status, to_status) in self.transitions
