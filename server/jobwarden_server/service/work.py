"""Worker use cases: claim jobs, report progress, attach assets, complete and fail.

Every call after the claim carries the lease token; it is checked in the same compare-and-set that
makes the change, so a worker that lost its lease can never write.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from jobwarden_server import store
from jobwarden_server.domain import errors, limits
from jobwarden_server.domain.auth import Principal
from jobwarden_server.domain.records import Asset, EventKind, Job, JobError, Progress
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.service.attempts import end_attempt_params
from jobwarden_server.service.streams import StreamSlots
from jobwarden_server.service.writer import ANONYMOUS, JobWriter, Request

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


def worker_actor(worker_id: str) -> str:
    """How a worker appears in job histories."""
    return f"worker:{worker_id}"


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

    def __init__(self, writer: JobWriter, retry: RetryPolicy, slots: StreamSlots) -> None:
        self._writer = writer
        self._store = writer.store
        self._retry = retry
        self._slots = slots

    async def claim(self, who: Principal, request: ClaimRequest, idem: Request = ANONYMOUS) -> Sequence[Job]:
        """Lease up to max_jobs jobs; with wait_s, wait for work to arrive (long poll).

        A retry of a call that went through (same request_id) claims nothing new: it answers with
        the jobs that call claimed and still holds, so a lost reply strands no job until its lease
        runs out."""
        if idem.id:
            earlier = await self._claimed_by(who, request, idem)
            if earlier is not None:
                return earlier
        if request.wait_s <= 0:
            return await self._claim(who, request, idem)
        with self._slots.hold(who.owner):
            return await self._claim(who, request, idem)

    async def _claimed_by(self, who: Principal, request: ClaimRequest, idem: Request) -> list[Job] | None:
        """The jobs an earlier call with `idem`'s id claimed and still holds; None if there was none."""
        events = await self._store.events_by_request(who.owner, idem.id)
        if not events:
            return None
        if any(e.data.get("request_fingerprint") != idem.fingerprint for e in events):
            raise errors.RequestIdMismatch(
                f"request_id {idem.id!r} was used for a different request",
                metadata={"request_id": idem.id},
            )
        held = []
        for event in events:
            job = await self._store.job_get(who.owner, event.job_id)
            # Only a claim sets start_time, so an unchanged one means the lease is still this claim's.
            if (
                job.status is JobStatus.RUNNING
                and job.worker_id == request.worker_id
                and job.start_time == event.create_time
            ):
                held.append(job)
        held.sort(key=lambda j: (-j.priority, j.create_time, j.id))  # best first, as the claim answered
        return held

    async def _claim(self, who: Principal, request: ClaimRequest, idem: Request) -> Sequence[Job]:
        loop_deadline = self._writer.clock() + dt.timedelta(seconds=request.wait_s)
        while True:
            changes = await self._store.job_claim(
                store.JobClaimParams(
                    owner=who.owner,
                    worker_id=request.worker_id,
                    job_types=request.job_types,
                    limit=request.max_jobs,
                    lease_duration_s=request.lease_duration_s,
                    now=self._writer.clock(),
                    request_id=idem.id,
                    request_fingerprint=idem.fingerprint,
                )
            )
            if changes:
                return [self._writer.published(change) for change in changes]
            remaining = (loop_deadline - self._writer.clock()).total_seconds()
            if remaining <= 0 or self._writer.bus.closed:
                return []
            await self._writer.bus.wait_for_work(min(remaining, RECHECK_S))

    async def progress(
        self, who: Principal, job_id: str, lease_token: str, progress: Progress, request: Request = ANONYMOUS
    ) -> Job:
        """Record progress and renew the lease. A repeat of the last report (a heartbeat) only renews
        the lease: it adds no event, so histories stay readable and watchers are not woken for nothing.

        A report that changes progress records its request_id with its event. A retry of it (same id)
        changes nothing, not even after newer reports, and is answered with the job as it is while the
        caller still holds the lease (LEASE_LOST once it does not, as any call under a lost lease)."""
        limits.check_text("lease_token", lease_token, limit=limits.MAX_ID, required=True)

        def decide(job: Job) -> tuple[store.JobChanges, list[store.NewEvent]]:
            events = []
            if progress != job.progress:
                events.append(
                    store.NewEvent(
                        kind=EventKind.PROGRESS,
                        actor=worker_actor(job.worker_id),
                        request_id=request.id,
                        data={**request.event_data(), **dataclasses.asdict(progress)},
                    )
                )
            renewed = self._renewed_lease(job, self._writer.clock())
            return store.JobChanges(progress=progress, lease_expire_time=renewed), events

        return await self._writer.update_leased(job_id, who.owner, lease_token, decide, request=request)

    async def add_asset(
        self, who: Principal, job_id: str, lease_token: str, spec: AssetSpec, request: Request = ANONYMOUS
    ) -> Asset:
        """Attach an asset to a job under the caller's live lease.

        With a request_id the asset's id is derived from it, so a retried call finds the asset the
        first call added (and answers with it) instead of adding a second one."""
        asset_id = str(uuid.uuid5(_ASSET_IDS, f"{who.owner}/{job_id}/{request.id}")) if request.id else ""
        if asset_id:
            earlier = await self._earlier_asset(who, asset_id, spec)
            if earlier is not None:
                return earlier
        job = await self._leased(who, job_id, lease_token)
        added = await self._store.asset_add(
            store.AssetAddParams(
                id=asset_id or str(uuid.uuid4()),
                job_id=job_id,
                owner=who.owner,
                lease_token=lease_token,
                now=self._writer.clock(),
                actor=worker_actor(job.worker_id),
                **dataclasses.asdict(spec),
            )
        )
        if added is None:
            raise errors.LeaseLost(job_id)
        asset, change = added
        self._writer.published(change)
        return asset

    async def _earlier_asset(self, who: Principal, asset_id: str, spec: AssetSpec) -> Asset | None:
        try:
            asset = await self._store.asset_get(who.owner, asset_id)
        except errors.NotFound:
            return None
        stored = AssetSpec(
            asset_type=asset.asset_type,
            uri=asset.uri,
            storage_path=asset.storage_path,
            size_bytes=asset.size_bytes,
            content_type=asset.content_type,
            sha256=asset.sha256,
            metadata=dict(asset.metadata),
        )
        if stored != dataclasses.replace(spec, metadata=dict(spec.metadata)):
            raise errors.RequestIdMismatch(
                f"request_id was used for a different asset ({asset_id})", metadata={"asset_id": asset_id}
            )
        return asset

    async def complete(
        self,
        who: Principal,
        job_id: str,
        lease_token: str,
        result: Mapping[str, Any],
        partial: JobError | None,
        request: Request = ANONYMOUS,
    ) -> Job:
        """Finish COMPLETED, or PARTIAL when `partial` says what went wrong. Progress becomes 100."""

        def plan(job: Job) -> store.JobUpdateParams:
            _check_leased(job, lease_token)
            return self._writer.transition_params(
                job,
                JobStatus.PARTIAL if partial is not None else JobStatus.COMPLETED,
                actor=worker_actor(job.worker_id),
                reason=partial.message if partial is not None else "completed by worker",
                owner=who.owner,
                lease_token=lease_token,
                request=request,
                changes=store.JobChanges(
                    result=result,
                    error=partial,
                    progress=dataclasses.replace(job.progress, percent=100.0),
                    complete_time=self._writer.clock(),
                    clear_lease=True,
                ),
            )

        return await self._finish(who, job_id, lease_token, request, plan)

    async def fail(
        self,
        who: Principal,
        job_id: str,
        lease_token: str,
        error: JobError,
        stop_reason: StopReason,
        request: Request = ANONYMOUS,
    ) -> Job:
        """End the attempt: CANCELLED if a cancel was requested, QUEUED again if retryable with
        attempts left, else FAILED."""

        def plan(job: Job) -> store.JobUpdateParams:
            _check_leased(job, lease_token)
            return end_attempt_params(
                self._writer,
                self._retry,
                job,
                error,
                actor=worker_actor(job.worker_id),
                owner=who.owner,
                cancel_reason="cancel confirmed by worker",
                stop_reason=stop_reason,
                lease_token=lease_token,
                request=request,
            )

        return await self._finish(who, job_id, lease_token, request, plan)

    async def _finish(
        self,
        who: Principal,
        job_id: str,
        lease_token: str,
        request: Request,
        plan: Callable[[Job], store.JobUpdateParams],
    ) -> Job:
        """End the attempt as `plan` decides on the job, read in the same transaction; a retry of a
        call that went through gets its first outcome."""
        limits.check_text("lease_token", lease_token, limit=limits.MAX_ID, required=True)
        return await self._writer.once(
            who.owner,
            job_id,
            request,
            lambda: self._writer.retrying(lambda: self._writer.transition_current(who.owner, job_id, plan)),
        )

    def now(self) -> dt.datetime:
        """The service clock."""
        return self._writer.clock()

    def session_slot(self, owner: str) -> contextlib.AbstractContextManager[None]:
        """A Work session holds one of the owner's stream slots for its whole life."""
        return self._slots.hold(owner)

    async def wait_for_work(self, timeout_s: float) -> bool:
        """Wait until a job may have become claimable (or `timeout_s` passed); False once shut down."""
        if self._writer.bus.closed:
            return False
        await self._writer.bus.wait_for_work(timeout_s)
        return not self._writer.bus.closed

    async def renew_leases(self, params: store.LeaseRenewParams) -> Sequence[store.RenewedLease]:
        """Renew a session's leases in one write; see Store.job_renew_leases."""
        return await self._store.job_renew_leases(params)

    @staticmethod
    def _renewed_lease(job: Job, now: dt.datetime) -> dt.datetime | None:
        """A heartbeat renews the lease, except after a cancel request: the grace period stands."""
        if job.cancel_requested:
            return job.lease_expire_time
        return now + dt.timedelta(seconds=job.lease_duration_s)

    async def _leased(self, who: Principal, job_id: str, lease_token: str) -> Job:
        """The job, if the caller holds its current lease (LEASE_LOST otherwise)."""
        limits.check_text("lease_token", lease_token, limit=limits.MAX_ID, required=True)
        return _check_leased(await self._store.job_get(who.owner, job_id), lease_token)


def _check_leased(job: Job, lease_token: str) -> Job:
    """`job`, if it is RUNNING under `lease_token` (LEASE_LOST otherwise)."""
    if job.status is not JobStatus.RUNNING or job.lease_token != lease_token:
        raise errors.LeaseLost(job.id)
    return job
