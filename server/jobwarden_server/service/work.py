"""Worker use cases: claim jobs, report progress, attach assets, complete and fail.

Every call after the claim carries the lease token; it is checked in the same compare-and-set that
makes the change, so a worker that lost its lease can never write.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from jobwarden_server import store
from jobwarden_server.domain import decisions, errors, limits, messages
from jobwarden_server.domain.auth import Principal
from jobwarden_server.domain.changes import Decision
from jobwarden_server.domain.idempotency import ANONYMOUS, RequestKey
from jobwarden_server.domain.lifecycle import Lifecycles
from jobwarden_server.domain.records import Asset, Event, EventKind, Job, JobError, Progress
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import StopReason
from jobwarden_server.events.bus import EventBus
from jobwarden_server.observability.metrics import Metrics
from jobwarden_server.service import idempotency as replays
from jobwarden_server.service.streams import StreamSlots
from jobwarden_server.service.writer import Clock, JobWriter

logger = logging.getLogger(__name__)

DEFAULT_LEASE_S = 30.0
MIN_LEASE_S = 1.0
MAX_LEASE_S = 3600.0
MAX_WAIT_S = 60.0
_ASSET_IDS = uuid.UUID("6b1d3c52-5a4e-4d8e-9a53-0f1f5b7c2e11")
"""Namespace of asset ids derived from (owner, job, request_id)."""
RECHECK_S = 1.0
"""Long-polling claimers re-check at least this often: scheduled jobs become due without an event."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ClaimRequest:
    """What a worker asks for."""

    worker_id: str
    job_types: frozenset[str]
    max_jobs: int = 1
    lease_duration_s: float = DEFAULT_LEASE_S
    wait_s: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AssetSpec:
    """An asset as the worker describes it."""

    asset_type: str
    uri: str = ""
    storage_path: str = ""
    size_bytes: int = 0
    content_type: str = ""
    sha256: str = ""
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)


def check_claim(request: ClaimRequest) -> ClaimRequest:
    """Validate a decoded ClaimJobs request."""
    limits.check_text("worker_id", request.worker_id, limit=limits.MAX_ID, required=True)
    if not request.job_types:
        raise errors.InvalidArgument("job_types", "name at least one job type")
    for job_type in request.job_types:
        limits.check_job_type("job_types", job_type)
    limits.check_int("max_jobs", request.max_jobs, 1, limits.MAX_CLAIM)
    if not MIN_LEASE_S <= request.lease_duration_s <= MAX_LEASE_S:
        raise errors.InvalidArgument(
            "lease_duration", f"must be between {MIN_LEASE_S:g} s and {MAX_LEASE_S:g} s"
        )
    if not 0 <= request.wait_s <= MAX_WAIT_S:
        raise errors.InvalidArgument("wait", f"must be between 0 and {MAX_WAIT_S:g} s")
    return request


def check_asset(spec: AssetSpec) -> AssetSpec:
    """Validate a decoded asset."""
    limits.check_text("asset.asset_type", spec.asset_type, limit=limits.MAX_ID, required=True)
    limits.check_text("asset.uri", spec.uri, limit=limits.MAX_URL)  # any scheme: s3://, file://, https://
    limits.check_text("asset.storage_path", spec.storage_path, limit=limits.MAX_URL)
    if spec.size_bytes < 0:
        raise errors.InvalidArgument("asset.size_bytes", "must not be negative")
    limits.check_text("asset.content_type", spec.content_type, limit=limits.MAX_LABEL_TEXT)
    limits.check_sha256("asset.sha256", spec.sha256)
    limits.check_string_map("asset.metadata", spec.metadata)
    return spec


def check_error(field: str, error: JobError) -> JobError:
    """A failure needs a message a human can act on."""
    limits.check_text(f"{field}.message", error.message, required=True)
    limits.check_text(f"{field}.reason", error.reason, limit=limits.MAX_ID)
    return error


class WorkService:
    """What workers can do. Workers see only their owner's jobs, like clients."""

    def __init__(
        self,
        db: store.Store,
        writer: JobWriter,
        bus: EventBus,
        lifecycles: Lifecycles,
        clock: Clock,
        retry: RetryPolicy,
        slots: StreamSlots,
        metrics: Metrics,
    ) -> None:
        self._store = db
        self._writer = writer
        self._bus = bus
        self._lifecycles = lifecycles
        self._clock = clock
        self._retry = retry
        self._slots = slots
        self._sessions = metrics.work_sessions

    async def claim(
        self, who: Principal, request: ClaimRequest, key: RequestKey = ANONYMOUS
    ) -> Sequence[Job]:
        """Lease up to max_jobs jobs; with wait_s, wait for work to arrive (long poll).

        A retry of a call that went through (same request_id) claims nothing new: it answers with
        the jobs that call claimed and still holds, so a lost reply strands no job until its lease
        runs out."""
        if key.id:
            earlier = await replays.claimed_by(self._store, who.owner, request.worker_id, key)
            if earlier is not None:
                return earlier
        if request.wait_s <= 0:
            return await self._claim(who, request, key)
        with self._slots.hold(who.owner):
            return await self._claim(who, request, key)

    async def _claim(self, who: Principal, request: ClaimRequest, key: RequestKey) -> Sequence[Job]:
        loop_deadline = self._clock() + dt.timedelta(seconds=request.wait_s)
        while True:
            claimed = await self._claim_delivered(
                who.owner,
                store.JobClaimParams(
                    owner=who.owner,
                    worker_id=request.worker_id,
                    job_types=request.job_types,
                    limit=request.max_jobs,
                    lease_duration_s=request.lease_duration_s,
                    now=self._clock(),
                    request_id=key.id,
                    request_fingerprint=key.fingerprint,
                ),
            )
            if claimed:
                return claimed
            remaining = (loop_deadline - self._clock()).total_seconds()
            if remaining <= 0 or self._bus.closed:
                return []
            await self._bus.wait_for_work(min(remaining, RECHECK_S))

    async def _claim_delivered(self, owner: str, params: store.JobClaimParams) -> Sequence[Job]:
        """Claim; and if the caller's call ends while the claim is being written (the client went
        away, or its deadline passed), let the write finish and put its jobs straight back in the queue:
        nobody will get the reply, and otherwise they would wait out leases nobody holds."""
        write = asyncio.ensure_future(self._writer.claim(params))
        try:
            return await asyncio.shield(write)
        except asyncio.CancelledError:
            try:
                claimed = await write
            except errors.DomainError:
                claimed = []  # nothing was claimed (the store is failing)
            for job in claimed:
                await self._take_back(owner, job)
            raise

    async def _take_back(self, owner: str, job: Job) -> None:
        def decide(current: Job, now: dt.datetime) -> Decision | None:
            table = self._lifecycles.named(current.lifecycle)
            return decisions.undelivered_claim(current, table, lease_token=job.lease_token)

        try:
            await self._writer.change(owner, job.id, decide)
        except errors.DomainError:
            logger.warning(
                "job %s: an undelivered claim could not be taken back; its lease will run out", job.id
            )

    async def progress(
        self,
        who: Principal,
        job_id: str,
        lease_token: str,
        progress: Progress,
        request: RequestKey = ANONYMOUS,
    ) -> Job:
        """Record progress and renew the lease (decisions.report_progress).

        A retry of a report (same request_id) changes nothing, not even after newer reports, and is
        answered with the job as it is while the caller still holds the lease (LEASE_LOST once it does
        not, as any call under a lost lease)."""
        limits.check_text("lease_token", lease_token, limit=limits.MAX_ID, required=True)

        def decide(job: Job, now: dt.datetime) -> Decision:
            return decisions.report_progress(
                job, lease_token=lease_token, progress=progress, now=now, request=request
            )

        def replay(job: Job, event: Event) -> Job:
            return decisions.check_leased(job, lease_token)

        return await self._writer.change(who.owner, job_id, decide, request=request, replay=replay)

    async def add_asset(
        self, who: Principal, job_id: str, lease_token: str, spec: AssetSpec, request: RequestKey = ANONYMOUS
    ) -> Asset:
        """Attach an asset to a job under the caller's live lease.

        With a request_id the asset's id is derived from it, so even two retries racing each other
        cannot add it twice; a retry of a call that went through is answered with that asset."""
        limits.check_text("lease_token", lease_token, limit=limits.MAX_ID, required=True)
        asset_id = str(uuid.uuid5(_ASSET_IDS, f"{who.owner}/{job_id}/{request.id}")) if request.id else ""
        return await self._writer.add_asset(
            store.AssetAddParams(
                id=asset_id or str(uuid.uuid4()),
                job_id=job_id,
                owner=who.owner,
                lease_token=lease_token,
                now=self._clock(),
                request_id=request.id,
                request_fingerprint=request.fingerprint,
                **dataclasses.asdict(spec),
            ),
            request,
        )

    async def add_messages(
        self,
        who: Principal,
        job_id: str,
        lease_token: str,
        added: Sequence[messages.JobMessage],
        request: RequestKey = ANONYMOUS,
    ) -> tuple[Job, list[Event]]:
        """Attach messages to a job under the caller's live lease (decisions.add_messages): the job
        after the write, and the LOG events recorded, in order.

        A retry of a call that went through (same request_id and content) adds nothing: it is answered
        with the events that call recorded, rebuilt from the first of them (the same messages, at
        consecutive sequences), even once the lease is gone, as a retried AddAsset is."""
        limits.check_text("lease_token", lease_token, limit=limits.MAX_ID, required=True)
        first: list[Event] = []

        def decide(job: Job, now: dt.datetime) -> Decision | None:
            return decisions.add_messages(job, lease_token=lease_token, added=added, request=request)

        def replay(job: Job, event: Event) -> Job:
            first.append(event)
            return job

        job = await self._writer.change(who.owner, job_id, decide, request=request, replay=replay)
        if first:
            start, when, actor = first[0].sequence, first[0].create_time, first[0].actor
        else:
            start, when = job.last_sequence - len(added) + 1, job.update_time
            actor = decisions.worker_actor(job.worker_id)
        recorded = [
            Event(
                job_id=job.id,
                owner=job.owner,
                sequence=start + offset,
                create_time=when,
                actor=actor,
                kind=EventKind.LOG,
                data=messages.event_data(message),
            )
            for offset, message in enumerate(added)
        ]
        return job, recorded

    async def complete(
        self,
        who: Principal,
        job_id: str,
        lease_token: str,
        result: Mapping[str, Any],
        partial: JobError | None,
        request: RequestKey = ANONYMOUS,
        *,
        validate_only: bool = False,
    ) -> Job:
        """Finish COMPLETED, or PARTIAL when `partial` says what went wrong (decisions.complete)."""
        limits.check_text("lease_token", lease_token, limit=limits.MAX_ID, required=True)

        def decide(job: Job, now: dt.datetime) -> Decision:
            table = self._lifecycles.named(job.lifecycle)
            return decisions.complete(
                job, table, lease_token=lease_token, result=result, partial=partial, now=now, request=request
            )

        return await self._writer.change(
            who.owner, job_id, decide, request=request, validate_only=validate_only
        )

    async def fail(
        self,
        who: Principal,
        job_id: str,
        lease_token: str,
        error: JobError,
        stop_reason: StopReason,
        request: RequestKey = ANONYMOUS,
        *,
        validate_only: bool = False,
    ) -> Job:
        """End the attempt: CANCELLED if a cancel was requested, QUEUED again if retryable with
        attempts left, else FAILED (decisions.fail)."""
        limits.check_text("lease_token", lease_token, limit=limits.MAX_ID, required=True)

        def decide(job: Job, now: dt.datetime) -> Decision:
            return decisions.fail(
                job,
                self._lifecycles.named(job.lifecycle),
                lease_token=lease_token,
                error=error,
                stop_reason=stop_reason,
                default_retry=self._retry,
                now=now,
                request=request,
            )

        return await self._writer.change(
            who.owner, job_id, decide, request=request, validate_only=validate_only
        )

    def now(self) -> dt.datetime:
        """The service clock."""
        return self._clock()

    @contextlib.contextmanager
    def session_slot(self, owner: str) -> Iterator[None]:
        """A Work session holds one of the owner's stream slots for its whole life (and is counted
        as open meanwhile)."""
        with self._slots.hold(owner), self._sessions.track_inprogress():
            yield

    async def wait_for_work(self, timeout_s: float) -> bool:
        """Wait until a job may have become claimable (or `timeout_s` passed); False once shut down."""
        if self._bus.closed:
            return False
        await self._bus.wait_for_work(timeout_s)
        return not self._bus.closed

    async def renew_leases(self, params: store.LeaseRenewParams) -> Sequence[store.RenewedLease]:
        """Renew a session's leases in one write; see Store.job_renew_leases."""
        return await self._writer.renew_leases(params)
