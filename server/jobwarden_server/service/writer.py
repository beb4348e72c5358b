"""JobWriter: the one way jobs change. Every mutation (create, claim, progress, asset, complete, fail,
cancel, release, the reaper) goes through it: decide on the job as read -> one compare-and-set with its
events, in one transaction -> publish the events after the commit.

The decisions are pure functions (domain/decisions.py); the writer runs them inside the store's write
transaction on the job as it is there, so a decision is never taken on a stale read. A retried call
(same request_id) is recognised in that same transaction and answered with its first outcome
(service/idempotency.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence

from jobwarden_server import store
from jobwarden_server.domain import decisions, errors, idempotency, preview
from jobwarden_server.domain.changes import Decision
from jobwarden_server.domain.idempotency import ANONYMOUS, RequestKey
from jobwarden_server.domain.records import Asset, Event, EventKind, Job
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.events.bus import EventBus
from jobwarden_server.observability import logs
from jobwarden_server.observability.metrics import Metrics
from jobwarden_server.service import idempotency as replays

logger = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]
Decide = Callable[[Job, dt.datetime], Decision | None]
"""A decision on the job as read at `now`: raise to refuse, None for nothing to change."""
Replay = Callable[[Job, Event], Job]
"""The answer to a retried call, from the job as it is now and the event the first call recorded."""

MAX_CAS_TRIES = 5


_ROUTINE = frozenset({JobStatus.RUNNING.value, JobStatus.COMPLETED.value})
_WORKERS = decisions.worker_actor("")
"""What every worker's actor name starts with."""


def _log_level(transition: Event) -> int:
    """DEBUG for a worker's claim or completion, the normal course of every job; INFO for the rest
    (failures, partial results, retries, cancels, rescues, stalls, expiries, an admin's moves).

    At thousands of jobs a second a line per routine transition costs the server more than some of
    its statements, and it buries what needs a look; every transition stays in the job's history."""
    routine = transition.data.get("to") in _ROUTINE and transition.actor.startswith(_WORKERS)
    return logging.DEBUG if routine else logging.INFO


def utc_now() -> dt.datetime:
    """The server clock (UTC, microsecond precision as stored)."""
    return dt.datetime.now(dt.UTC)


class JobWriter:
    """Applies decisions with one compare-and-set each, publishes their events, logs each transition
    and counts it (every committed change passes `_publish`, so the metrics agree with the jobs)."""

    def __init__(self, db: store.Store, bus: EventBus, clock: Clock, metrics: Metrics) -> None:
        self._store = db
        self._bus = bus
        self._clock = clock
        self._metrics = metrics

    async def change(
        self,
        owner: str,
        job_id: str,
        decide: Decide,
        *,
        request: RequestKey = ANONYMOUS,
        replay: Replay | None = None,
        validate_only: bool = False,
        cascade: Decide | None = None,
    ) -> Job:
        """Change one of `owner`'s jobs as `decide` rules on it, read in the write's own transaction.

        A retry of a call that went through (its request_id is on an event of the job) decides and
        writes nothing: it is answered by `replay`, by default with the job as that call left it. On
        PostgreSQL the job can change between the read and the compare-and-set; then it is decided
        again (a few times, then ABORTED / CONFLICT, retryable).

        On a batch parent, `cascade` is decided on each of its unfinished children and written in the
        same transaction (a parent's cancel). A retry on a parent is answered with the parent as it is
        now: the server drives it, so how the first call left it is no answer worth rebuilding.

        `validate_only` answers the same way (the job as the change would leave it, or the very
        error) from a plain read, and writes and publishes nothing (see `_dry_run`)."""
        with logs.about_job(job_id):
            if validate_only:
                return await self._dry_run(owner, job_id, decide, request, replay)
            return await self._change(owner, job_id, decide, request, replay, cascade)

    async def _change(
        self,
        owner: str,
        job_id: str,
        decide: Decide,
        request: RequestKey,
        replay: Replay | None,
        cascade: Decide | None,
    ) -> Job:
        for _ in range(MAX_CAS_TRIES):
            now = self._clock()

            def params(job: Job, now: dt.datetime = now) -> store.JobUpdateParams | None:
                decision = decide(job, now)
                return None if decision is None else store.JobUpdateParams.of(job_id, owner, now, decision)

            def child_params(job: Job, now: dt.datetime = now) -> store.JobUpdateParams | None:
                decision = None if cascade is None else cascade(job, now)
                return None if decision is None else store.JobUpdateParams.of(job.id, owner, now, decision)

            try:
                change = await self._store.job_modify(
                    owner, job_id, params, request_id=request.id, cascade=child_params if cascade else None
                )
            except store.Replayed as first:
                idempotency.check_event(first.event, request)
                if first.job.batch is not None:
                    return first.job
                if replay is not None:
                    return replay(first.job, first.event)
                return await replays.outcome_of(self._store, first.job, first.event)
            if change is not None:
                return await self._published(change)
        raise errors.Conflict(
            f"job {job_id} kept changing while this call was deciding; retry", metadata={"job_id": job_id}
        )

    async def _dry_run(
        self, owner: str, job_id: str, decide: Decide, request: RequestKey, replay: Replay | None
    ) -> Job:
        """`change`'s answer, taken in the same order (the job, then a replay, then the decision) on
        a read: no row, event, lease renewal or publication."""
        job = await self._store.job_get(owner, job_id)
        if request.id:
            first = await self._store.event_by_request(owner, job_id, request.id)
            if first is not None:
                idempotency.check_event(first, request)
                if replay is not None:
                    return replay(job, first)
                return await replays.outcome_of(self._store, job, first)
        now = self._clock()
        decision = decide(job, now)
        return job if decision is None else preview.applied(job, decision, now)

    async def change_as_read(self, job: Job, decision: Decision) -> Job | None:
        """Apply a system decision (the reaper's, any owner) taken on `job` as read; None if the job
        changed since (someone else moved it first: the decision no longer stands)."""
        change = await self._store.job_update(store.JobUpdateParams.of(job.id, None, self._clock(), decision))
        return None if change is None else await self._published(change)

    async def create_many(
        self, params: Sequence[store.JobCreateParams]
    ) -> Sequence[store.JobCreateResult | errors.DomainError]:
        """Insert jobs in one transaction (see Store.job_create_many) and publish the new ones."""
        results = await self._store.job_create_many(params)
        created = [r.change for r in results if isinstance(r, store.JobCreateResult) and r.created]
        for change in created:
            self._publish(change)
        if any(change.job.status is JobStatus.QUEUED for change in created):
            await self._bus.work_available()
        return results

    async def create_batch(
        self, parent: store.JobCreateParams, children: Sequence[store.JobCreateParams], *, dry_run: bool
    ) -> store.JobCreateResult:
        """Insert a batch in one transaction (see Store.batch_create) and publish what it created
        (nothing for a dry run)."""
        result = await self._store.batch_create(parent, children, dry_run=dry_run)
        if result.created and not dry_run:
            self._publish(result.change)
            if any(c.status is JobStatus.QUEUED for c in children):
                await self._bus.work_available()
        return result

    async def claim(self, params: store.JobClaimParams) -> list[Job]:
        """Lease jobs (see Store.job_claim) and publish their claims."""
        return [self._publish(change) for change in await self._store.job_claim(params)]

    async def add_asset(self, params: store.AssetAddParams, request: RequestKey = ANONYMOUS) -> Asset:
        """Attach an asset under the caller's lease (LEASE_LOST otherwise); a retry of a call that went
        through gets the asset that call added."""
        try:
            added = await self._store.asset_add(params)
        except store.Replayed as first:
            event = idempotency.check_event(first.event, request)
            return await self._store.asset_get(params.owner, event.data["asset_id"])
        if added is None:
            raise errors.LeaseLost(params.job_id)
        asset, change = added
        self._publish(change)
        return asset

    async def renew_leases(self, params: store.LeaseRenewParams) -> Sequence[store.RenewedLease]:
        """Renew a session's leases in one write (see Store.job_renew_leases); it records no events."""
        return await self._store.job_renew_leases(params)

    async def _published(self, change: store.Change) -> Job:
        """Publish a committed change; a job queued again may be claimed at once: wake the claimers."""
        job = self._publish(change)
        if job.status is JobStatus.QUEUED and any(e.kind is EventKind.TRANSITION for e in change.events):
            await self._bus.work_available()
        return job

    def _publish(self, change: store.Change) -> Job:
        """Publish a committed change's events, then its followers', log its transitions and count
        them; return the job."""
        for event in change.events:
            if event.kind is EventKind.TRANSITION:
                logger.log(
                    _log_level(event),
                    "transition job=%s owner=%s from=%s to=%s actor=%s reason=%r",
                    event.job_id,
                    event.owner,
                    event.data.get("from"),
                    event.data.get("to"),
                    event.actor,
                    event.data.get("reason", ""),
                    extra={"job_id": event.job_id},
                )
        self._metrics.record_change(change.job, change.events)
        self._bus.publish(change.events)
        for follower in change.followers:
            self._publish(follower)
        return change.job
