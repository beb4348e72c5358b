"""The store seam: a typed protocol the service depends on. Nothing above it imports SQLAlchemy.

Every method is one database transaction. A change to a job is one compare-and-set (the `expect_*`
fields of JobUpdateParams) together with its event rows, so a state change and its history can never
disagree. Methods return domain records, never rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from jobwarden_server.domain.changes import Decision, JobChanges, NewEvent
from jobwarden_server.domain.errors import DomainError
from jobwarden_server.domain.queue_charts import StatsCounts, StatsWindow
from jobwarden_server.domain.records import Asset, BatchCounts, CallbackState, Event, EventKind, Job
from jobwarden_server.domain.retention import RetentionRule
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.domain.trace import TraceContext


class Replayed(Exception):
    """job_modify found that the call with this request_id already changed the job."""

    def __init__(self, job: Job, event: Event) -> None:
        super().__init__(f"request already applied to job {job.id} (event {event.sequence})")
        self.job = job
        self.event = event


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """A job after a committed change, with the events the change appended (to publish)."""

    job: Job
    events: Sequence[Event]
    followers: Sequence[Change] = ()
    """Changes the same transaction made to other jobs because of this one (a batch's parent after
    its child moved, the children of a cancelled parent): published with it."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobCreateParams:
    """A new job. With a request_id, the (owner, request_id) pair is unique."""

    id: str
    owner: str
    job_type: str
    lifecycle: str
    status: JobStatus
    parameters: Mapping[str, Any]
    priority: int
    labels: Mapping[str, str]
    max_attempts: int
    run_after: dt.datetime | None
    deadline: dt.datetime | None
    callback_url: str
    request_id: str
    request_fingerprint: str
    now: dt.datetime
    actor: str
    retry: RetryPolicy | None = None
    """The job's own backoff; None takes the server's defaults."""
    queue_timeout_s: float | None = None
    """How long the job may wait to start; None: no limit."""
    queue_expire_time: dt.datetime | None = None
    """When it expires unless claimed first (its queue timeout after it is due); None: never."""
    callback_statuses: frozenset[JobStatus] = frozenset()
    """The terminal statuses that fire callback_url; empty: every terminal status."""
    retry_of: str = ""
    """The job this one runs again (AdminService.RetryJob); "" for none."""
    parent_id: str = ""
    """A batch child's parent ("" for none)."""
    batch: BatchCounts | None = None
    """A batch parent's counts of its children as created (None: not a parent)."""
    trace: TraceContext | None = None
    """The trace context of its create call (None: none, or not a valid one)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobCreateResult:
    """`created` is False when an earlier job with the same request_id and fingerprint was returned."""

    change: Change
    created: bool


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobListParams:
    """Filters (empty means any) and a keyset position (create_time, id) to continue after."""

    owner: str
    limit: int
    statuses: frozenset[JobStatus] = frozenset()
    job_types: frozenset[str] = frozenset()
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    stop_reasons: frozenset[StopReason] = frozenset()
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    after: tuple[dt.datetime, str] | None = None
    descending: bool = False
    parent_id: str = ""
    """Only the children of this batch parent ("" for any job)."""
    stalled: bool = False
    """Only jobs flagged stalled."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobUpdateParams:
    """A compare-and-set on one job: applied only if every `expect_*` condition holds.

    owner None means the system (reaper) acts and the owner is not checked.
    """

    job_id: str
    owner: str | None
    now: dt.datetime
    changes: JobChanges
    events: Sequence[NewEvent] = ()
    expect_statuses: frozenset[JobStatus] | None = None
    expect_lease_token: str | None = None
    expect_version: int | None = None

    @classmethod
    def of(cls, job_id: str, owner: str | None, now: dt.datetime, decision: Decision) -> JobUpdateParams:
        """The compare-and-set that writes `decision` on the job."""
        return cls(
            job_id=job_id,
            owner=owner,
            now=now,
            changes=decision.changes,
            events=decision.events,
            expect_statuses=decision.expect_statuses,
            expect_lease_token=decision.expect_lease_token,
            expect_version=decision.expect_version,
        )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobDeleteParams:
    """Delete one of `owner`'s finished jobs. With a request_id, the delete is recorded so that a
    retry is answered as this call is; records from before `forget_before` no longer count."""

    owner: str
    job_id: str
    now: dt.datetime
    forget_before: dt.datetime
    request_id: str = ""
    request_fingerprint: str = ""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobClaimParams:
    """Lease up to `limit` QUEUED jobs of `job_types` whose run_after has passed, best first."""

    owner: str
    worker_id: str
    job_types: frozenset[str]
    limit: int
    lease_duration_s: float
    now: dt.datetime
    request_id: str = ""
    """The claiming call's idempotency key, recorded on each claim event ('' for none)."""
    request_fingerprint: str = ""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LeaseRenewParams:
    """The leases a worker session holds (job id -> lease token), to renew from `now` on."""

    owner: str
    leases: Mapping[str, str]
    now: dt.datetime


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RenewedLease:
    """A lease still held after a renewal, and whether a cancel of its job was requested."""

    job_id: str
    lease_expire_time: dt.datetime
    cancel_requested: bool


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobDueParams:
    """Jobs the reaper must act on at `now`: RUNNING with an expired lease, not terminal and past
    their deadline, or waiting to start (CREATED, QUEUED) past their queue timeout. At most `limit` of
    each kind, oldest first."""

    now: dt.datetime
    limit: int
    lifecycles: frozenset[str] | None = None
    """Only jobs governed by these tables (None: any). A replica skips jobs whose table its config
    lacks, rather than fail on them pass after pass: a replica that has the table rescues them."""
    stall_after_s: Mapping[str, float] = dataclasses.field(default_factory=dict)
    """Job type -> seconds its running jobs' progress may stand still: such jobs not flagged yet are
    due as well (at most `limit` per type)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobStatsParams:
    """The jobs GetJobStats summarises: created in [start, end), of `job_types` (empty: any), of
    `owner` (None: every owner); durations of at most `sample` jobs per type."""

    owner: str | None
    start: dt.datetime
    end: dt.datetime
    job_types: frozenset[str] = frozenset()
    sample: int = 1_000


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobTypeFigures:
    """What the store counts and measures of one job type for GetJobStats (the service derives the
    rates and percentiles)."""

    job_type: str
    counts: Mapping[JobStatus, int]
    """Jobs created in the window, by status now (statuses with none are left out)."""
    completion_s: Sequence[float] = ()
    """complete - create of the newest (at most `sample`) COMPLETED jobs created in the window."""
    run_s: Sequence[float] = ()
    """complete - start of the same jobs."""
    queued: int = 0
    """QUEUED now, whenever created."""
    oldest_queued: dt.datetime | None = None
    """The create time of the oldest of those."""
    running: int = 0
    """RUNNING now, whenever created."""
    stalled: int = 0
    """Of those, flagged stalled."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AssetAddParams:
    """An asset to attach to a RUNNING job under the caller's lease (its event's actor is the worker
    holding that lease)."""

    id: str
    job_id: str
    owner: str
    lease_token: str
    asset_type: str
    uri: str
    storage_path: str
    size_bytes: int
    content_type: str
    sha256: str
    metadata: Mapping[str, str]
    now: dt.datetime
    request_id: str = ""
    """The adding call's idempotency key, recorded on the asset's event ('' for none)."""
    request_fingerprint: str = ""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PageParams:
    """A page of a job's events or assets: items after `after` (a sequence or a position), at most `limit`;
    events of the given `kinds` only, when there are any."""

    owner: str
    job_id: str
    after: int
    limit: int
    kinds: frozenset[EventKind] = frozenset()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CallbackClaimParams:
    """Lease up to `limit` callback deliveries due at `now`, for `lease_s` seconds."""

    now: dt.datetime
    limit: int
    lease_s: float


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CallbackDelivery:
    """One outbox row, leased to the caller: a job's callback to send. `id` is its webhook-id."""

    id: str
    job_id: str
    owner: str
    url: str
    body: str
    attempts: int
    """Attempts made before this one."""
    create_time: dt.datetime
    """When the job ended (and the row was written): the retry horizon counts from here."""
    lease_token: str


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class CallbackAttemptParams:
    """The outcome of one delivery attempt, recorded under the lease it was made under.

    state DELIVERED or FAILED settles the delivery; DELIVERING schedules the next attempt at
    next_attempt_time."""

    delivery_id: str
    lease_token: str
    now: dt.datetime
    state: CallbackState
    http_status: int = 0
    error: str = ""
    duration_s: float = 0.0
    next_attempt_time: dt.datetime | None = None


class Store(Protocol):
    """Durable jobs, events and assets. Every method is one transaction.

    Failures of the database itself raise domain.errors.StoreUnavailable (retryable, nothing changed).
    """

    async def job_create(self, params: JobCreateParams) -> JobCreateResult:
        """Insert a job and its CREATED event. Same (owner, request_id): return the earlier job if
        the fingerprint matches, else raise RequestIdMismatch."""
        ...

    async def job_create_many(
        self, params: Sequence[JobCreateParams]
    ) -> Sequence[JobCreateResult | DomainError]:
        """Insert jobs and their CREATED events in one transaction, each answered as job_create would
        answer it, but with its error returned in its place instead of raised (RequestIdMismatch), so
        one item never fails the others; in the order given. Items sharing (owner, request_id) are
        answered like retries of the first of them. A database failure fails the whole call."""
        ...

    async def job_create_preview(
        self, params: Sequence[JobCreateParams]
    ) -> Sequence[JobCreateResult | DomainError]:
        """What job_create_many would answer for `params` now, writing nothing (validate_only): a
        taken request_id is answered as a retry (or REQUEST_ID_MISMATCH), any other item with the
        job as it would be inserted. Reads only."""
        ...

    async def batch_create(
        self, parent: JobCreateParams, children: Sequence[JobCreateParams], *, dry_run: bool = False
    ) -> JobCreateResult:
        """Insert a batch's parent (its `batch` counts set) and its children, with their CREATED
        events, in one transaction. The parent's (owner, request_id) makes it idempotent as job_create
        (an earlier parent is returned without its children being inserted again; RequestIdMismatch is
        raised). The children's changes are the result's followers. `dry_run`: the same answer, with
        the transaction rolled back."""
        ...

    async def job_get(self, owner: str | None, job_id: str) -> Job:
        """One job; NotFound if missing or, when owner is given, not that owner's."""
        ...

    async def job_list(self, params: JobListParams) -> Sequence[Job]:
        """Jobs matching the filters ordered by (create_time, id), ascending or descending."""
        ...

    async def job_count(self, params: JobListParams) -> int:
        """How many jobs match the filters of `params` (its cursor and order ignored), counting no
        further than `params.limit`: a bounded walk of the listing index, never a full count."""
        ...

    async def job_get_many(self, job_ids: Sequence[str]) -> Sequence[Job]:
        """The jobs of `job_ids` that exist, of any owner, in no particular order (the live feed
        reads the jobs a burst of changes touched in one query and filters by owner itself)."""
        ...

    async def queue_counts(self, owner: str, window: StatsWindow) -> StatsCounts:
        """The owner's queue depth now, and per job type and bucket of `window` the jobs that
        arrived, left the queue and ended (by status and completion-time bucket): grouped counts."""
        ...

    async def job_update(self, params: JobUpdateParams) -> Change | None:
        """Apply the changes and append the events if the conditions hold; None if they do not."""
        ...

    async def job_modify(
        self,
        owner: str,
        job_id: str,
        decide: Callable[[Job], JobUpdateParams | None],
        *,
        request_id: str = "",
        cascade: Callable[[Job], JobUpdateParams | None] | None = None,
    ) -> Change | None:
        """Read the job and apply the compare-and-set `decide` makes of it, in one write transaction;
        on a batch parent, `cascade` is applied to each unfinished child in that transaction too (the
        children's changes are the result's followers; None, with nothing written, if the parent's
        guard failed);
        `decide` may raise to refuse, or return None when there is nothing to change (the job is
        returned as read, with no events). NotFound if missing or not the owner's; None if a guard failed.
        With a request_id that an event of the job already records, nothing is decided or written:
        Replayed, with the job and that event (a retry, found in the same transaction)."""
        ...

    async def job_delete(self, params: JobDeleteParams) -> bool:
        """Delete a finished job with its events, assets and callback outbox row, in one transaction;
        True. False (nothing done) for a retry of a delete with the same request_id that went through.
        NotFound if missing or not the owner's, JobNotTerminal if it is not terminal (nothing deleted),
        RequestIdMismatch if the request_id was used by a delete of another job."""
        ...

    async def job_delete_expired(self, rule: RetentionRule, limit: int) -> int:
        """Delete up to `limit` jobs (any owner) due under `rule`, with their events, assets and outbox
        rows, in one short transaction; how many. Jobs whose callback is still being delivered stay."""
        ...

    async def job_claim(self, params: JobClaimParams) -> Sequence[Change]:
        """Atomically move up to `limit` jobs QUEUED -> RUNNING under fresh leases (never one job twice)."""
        ...

    async def job_due(self, params: JobDueParams) -> Sequence[Job]:
        """Jobs whose lease expired, deadline passed or queue timeout passed (any owner), for the reaper."""
        ...

    async def job_stats(self, params: JobStatsParams) -> Sequence[JobTypeFigures]:
        """Counts and durations per job type (see JobTypeFigures), sorted by type: every type in
        `params.job_types` (zeros included), else every type with jobs in the window or waiting or
        running now. One read transaction, so the figures agree with each other."""
        ...

    async def job_renew_leases(self, params: LeaseRenewParams) -> Sequence[RenewedLease]:
        """Renew every lease in `params` still held (RUNNING under that token), in one write; those
        whose cancel was requested keep their expiry (the cancel grace stands). Returns the held ones."""
        ...

    async def job_lifecycles_in_use(self) -> Mapping[str, int]:
        """How many unfinished jobs (any owner) each lifecycle table governs, by table name."""
        ...

    async def job_depth(self) -> Mapping[tuple[str, JobStatus], int]:
        """How many unfinished jobs (any owner) there are per (job type, status); pairs with none are
        left out. One grouped count, for the metrics' queue depth."""
        ...

    async def asset_add(self, params: AssetAddParams) -> tuple[Asset, Change] | None:
        """Insert the asset and its event if the job is RUNNING under `lease_token`; None otherwise
        (NotFound if the job is missing or not the owner's).
        With a request_id that an event of the job already records, nothing is written: Replayed."""
        ...

    async def asset_get(self, owner: str, asset_id: str) -> Asset:
        """One asset; NotFound if missing or not the owner's."""
        ...

    async def asset_list(self, params: PageParams) -> Sequence[Asset]:
        """A job's assets in the order they were added; `after` is the position of the last one seen."""
        ...

    async def event_by_request(self, owner: str, job_id: str, request_id: str) -> Event | None:
        """The first event of the job recorded by the call with `request_id`, if any."""
        ...

    async def events_by_request(self, owner: str, request_id: str) -> Sequence[Event]:
        """Every event, of any of the owner's jobs, recorded by the call with `request_id` (a claim
        spans jobs); by job id, then sequence."""
        ...

    async def event_list(self, params: PageParams) -> Sequence[Event]:
        """A job's events with sequence > `after`, ascending."""
        ...

    async def job_with_events(self, params: PageParams) -> tuple[Job, Sequence[Event]]:
        """The owner's job and, read in the same transaction, its first page of events after `after`
        (none read when the job has none past it): what a watch starts with, in one read. NotFound
        as job_get."""
        ...

    async def callback_claim(self, params: CallbackClaimParams) -> Sequence[CallbackDelivery]:
        """Lease due callback deliveries (PENDING, due, lease free or run out), never one to two
        callers at once: across replicas, each due row goes to one claim until its lease runs out."""
        ...

    async def callback_record(self, params: CallbackAttemptParams) -> Change | None:
        """Record an attempt: the outbox row, the job's callback summary and a callback_attempt event,
        in one transaction. None (nothing written) if the lease is no longer the caller's."""
        ...

    def singleton(self, name: str) -> contextlib.AbstractAsyncContextManager[bool]:
        """`async with store.singleton("reaper") as mine:` -- whether this process may do the named
        background work now. Across the processes sharing a database, at most one gets True at a time;
        the lock is freed when the block ends, or when its holder dies, so another takes over."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
