"""Every change to a job goes through JobWriter: one compare-and-set in the store, then publication.

A refused compare-and-set is diagnosed by reading the job back, so the caller gets the precise error
(NOT_FOUND, LEASE_LOST, ETAG_MISMATCH, INVALID_TRANSITION) and the job is left untouched.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Sequence

from jobwarden_server import store
from jobwarden_server.domain import errors
from jobwarden_server.domain.lifecycle import Lifecycles
from jobwarden_server.domain.records import Event, EventKind, Job
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.events.bus import EventBus

logger = logging.getLogger(__name__)

Clock = Callable[[], dt.datetime]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """Who is asking, for idempotency: the call's request_id and a hash of everything else in it.

    A retry after an ambiguous failure (deadline exceeded, connection reset) carries the same id; if
    the first call went through, the retry is answered with its outcome instead of an error.
    """

    id: str = ""
    fingerprint: str = ""

    def event_data(self) -> dict[str, str]:
        """What an event records so a retry can be matched (nothing for anonymous calls)."""
        return {"request_fingerprint": self.fingerprint} if self.id else {}


ANONYMOUS = Request()

REPLAY_PAGE = 1000


def is_claim(event: Event) -> bool:
    """Whether `event` is a QUEUED -> RUNNING transition, the start of an attempt."""
    return event.kind is EventKind.TRANSITION and event.data.get("to") == JobStatus.RUNNING.value


def as_left_by(job: Job, event: Event, *, claims_since: int) -> Job:
    """`job` as the call that recorded `event` left it, though later changes followed.

    A retry can arrive after the job moved on (a FailJob that re-queued it, retried once another
    worker claimed it): it must still be answered with what that call did, not with a later attempt.
    The fields later attempts change are taken back to the event; the others are as they are now.
    """
    if event.kind is EventKind.CANCEL_REQUESTED:
        status, cancel_requested = JobStatus.RUNNING, True
    else:
        status, cancel_requested = JobStatus(event.data["to"]), False
    running = status is JobStatus.RUNNING and claims_since == 0
    return dataclasses.replace(
        job,
        status=status,
        attempt=job.attempt - claims_since,
        cancel_requested=cancel_requested,
        stop_reason=StopReason(event.data.get("stop_reason", StopReason.UNSPECIFIED.value)),
        complete_time=event.create_time if status.terminal else None,
        update_time=event.create_time,
        last_sequence=event.sequence,
        worker_id=job.worker_id if running else "",
        lease_token=job.lease_token if running else "",
        lease_expire_time=job.lease_expire_time if running else None,
    )


MAX_CAS_TRIES = 5


def utc_now() -> dt.datetime:
    """The server clock (UTC, microsecond precision as stored)."""
    return dt.datetime.now(dt.UTC)


class JobWriter:
    """Applies compare-and-set changes, publishes their events and logs each transition."""

    def __init__(self, store: store.Store, bus: EventBus, lifecycles: Lifecycles, clock: Clock) -> None:
        self.store = store
        self.bus = bus
        self.lifecycles = lifecycles
        self.clock = clock

    def published(self, change: store.Change) -> Job:
        """Publish a committed change's events, log its transitions, return the job."""
        for event in change.events:
            if event.kind is EventKind.TRANSITION:
                logger.info(
                    "transition job=%s owner=%s from=%s to=%s actor=%s reason=%r",
                    event.job_id,
                    event.owner,
                    event.data.get("from"),
                    event.data.get("to"),
                    event.actor,
                    event.data.get("reason", ""),
                )
        self.bus.publish(change.events)
        return change.job

    async def transition(
        self,
        job: Job,
        to: JobStatus,
        *,
        actor: str,
        reason: str = "",
        owner: str | None,
        changes: store.JobChanges | None = None,
        stop_reason: StopReason = StopReason.UNSPECIFIED,
        lease_token: str | None = None,
        request: Request = ANONYMOUS,
    ) -> Job:
        """Move `job` to `to` if its lifecycle allows it from the job's status as the caller read it.

        One compare-and-set on that read (status and version), so the recorded `from` is the real one
        and the caller's decision was taken on what is really there. If the job changed meanwhile, the
        refusal is diagnosed on a fresh read: LEASE_LOST, INVALID_TRANSITION, or Conflict when the
        change is still possible and the caller should decide again (see `retrying`).
        """
        params = self.transition_params(
            job,
            to,
            actor=actor,
            reason=reason,
            owner=owner,
            changes=changes,
            stop_reason=stop_reason,
            lease_token=lease_token,
            request=request,
        )
        return await self.apply(job, params)

    def transition_params(
        self,
        job: Job,
        to: JobStatus,
        *,
        actor: str,
        reason: str = "",
        owner: str | None,
        changes: store.JobChanges | None = None,
        stop_reason: StopReason = StopReason.UNSPECIFIED,
        lease_token: str | None = None,
        request: Request = ANONYMOUS,
    ) -> store.JobUpdateParams:
        """The compare-and-set that moves `job` (as read) to `to`, with its event; LEASE_LOST or
        INVALID_TRANSITION at once if the read already rules it out."""
        table = self.lifecycles.named(job.lifecycle)
        if lease_token is not None and job.lease_token != lease_token:
            raise errors.LeaseLost(job.id)
        if not table.allows(job.status, to):
            raise errors.InvalidTransition(job.id, table.name, job.status, to)
        base = changes or store.JobChanges()
        return store.JobUpdateParams(
            job_id=job.id,
            owner=owner,
            now=self.clock(),
            changes=dataclasses.replace(
                base,
                status=to,
                stop_reason=stop_reason if stop_reason != StopReason.UNSPECIFIED else base.stop_reason,
            ),
            events=[
                store.NewEvent(
                    kind=EventKind.TRANSITION,
                    actor=actor,
                    request_id=request.id,
                    data={
                        **request.event_data(),
                        "from": job.status.value,
                        "to": to.value,
                        "reason": reason,
                        "stop_reason": stop_reason.value,
                    },
                )
            ],
            expect_statuses=frozenset({job.status}),
            expect_lease_token=lease_token,
            expect_version=job.version,
        )

    async def apply(self, job: Job, params: store.JobUpdateParams) -> Job:
        """Run a transition's compare-and-set made from `job`; if refused, diagnose on a fresh read."""
        change = await self.store.job_update(params)
        if change is not None:
            return self.published(change)
        to, lease_token = params.changes.status, params.expect_lease_token
        assert to is not None, "a transition sets a status"
        table = self.lifecycles.named(job.lifecycle)
        now = await self.store.job_get(params.owner, job.id)
        if lease_token is not None and now.lease_token != lease_token:
            raise errors.LeaseLost(job.id)
        if not table.allows(now.status, to):
            raise errors.InvalidTransition(job.id, table.name, now.status, to)
        raise errors.Conflict(
            f"job {job.id} changed while this call was deciding; retry", metadata={"job_id": job.id}
        )

    async def transition_current(
        self, owner: str, job_id: str, plan: Callable[[Job], store.JobUpdateParams]
    ) -> Job:
        """A transition `plan` decides on the job as read in the write's own transaction (one
        transaction instead of a read and a write; see store.job_modify). `plan` raises to refuse.
        Conflict if the job changed between that read and the write (PostgreSQL only): decide again."""
        change = await self.store.job_modify(owner, job_id, plan)
        if change is None:
            raise errors.Conflict(
                f"job {job_id} changed while this call was deciding; retry", metadata={"job_id": job_id}
            )
        return self.published(change)

    async def retrying(self, decide_and_change: Callable[[], Awaitable[Job]]) -> Job:
        """Run a read-decide-change step again while it meets a concurrent change (bounded)."""
        for _ in range(MAX_CAS_TRIES - 1):
            try:
                return await decide_and_change()
            except errors.Conflict:
                continue
        return await decide_and_change()

    async def once(
        self, owner: str, job_id: str, request: Request, change: Callable[[], Awaitable[Job]]
    ) -> Job:
        """Run `change`; if it is refused because the same request already went through (a retry
        after an ambiguous failure), answer with that first outcome instead."""
        try:
            return await change()
        except (errors.LeaseLost, errors.InvalidTransition, errors.EtagMismatch):
            first = await self.replayed(owner, job_id, request)
            if first is None:
                raise
            return first

    async def recorded(self, owner: str, job_id: str, request: Request) -> Event | None:
        """The first event of this job recorded by the call with `request`'s id; None if there is none.
        A reused id with other content is refused (REQUEST_ID_MISMATCH)."""
        if not request.id:
            return None
        event = await self.store.event_by_request(owner, job_id, request.id)
        if event is not None:
            _same_request(event, request, job_id)
        return event

    async def replayed(self, owner: str, job_id: str, request: Request) -> Job | None:
        """If the call with `request`'s id already changed this job, the job as that call left it (its
        outcome); None if no such call was recorded. A reused id with other content is refused."""
        event = await self.recorded(owner, job_id, request)
        if event is None:
            return None
        job = await self.store.job_get(owner, job_id)
        if job.last_sequence == event.sequence:
            return job  # nothing happened since
        return as_left_by(job, event, claims_since=await self._claims_after(owner, job_id, event.sequence))

    async def _claims_after(self, owner: str, job_id: str, sequence: int) -> int:
        claims = 0
        while True:
            page = await self.store.event_list(
                store.PageParams(owner=owner, job_id=job_id, after=sequence, limit=REPLAY_PAGE)
            )
            claims += sum(is_claim(e) for e in page)
            if len(page) < REPLAY_PAGE:
                return claims
            sequence = page[-1].sequence

    async def update_leased(
        self,
        job_id: str,
        owner: str,
        lease_token: str,
        decide: Callable[[Job], tuple[store.JobChanges, Sequence[store.NewEvent]]],
        *,
        request: Request = ANONYMOUS,
    ) -> Job:
        """Change a RUNNING job without moving it, only under the caller's current lease; `decide`
        makes the change from the job as it is (read in the same transaction as the write)."""
        now = self.clock()

        def update(job: Job) -> store.JobUpdateParams:
            if job.status is not JobStatus.RUNNING or job.lease_token != lease_token:
                raise errors.LeaseLost(job_id)
            changes, events = decide(job)
            return store.JobUpdateParams(
                job_id=job_id,
                owner=owner,
                now=now,
                changes=changes,
                events=events,
                expect_statuses=frozenset({JobStatus.RUNNING}),
                expect_lease_token=lease_token,
            )

        try:
            change = await self.store.job_modify(owner, job_id, update, request_id=request.id)
        except store.Replayed as replay:
            # A retry of a call that went through: it changes nothing, and answers with the job as it
            # is while the caller still holds the lease (LEASE_LOST after, as any call under a lost one).
            _same_request(replay.event, request, job_id)
            if replay.job.status is not JobStatus.RUNNING or replay.job.lease_token != lease_token:
                raise errors.LeaseLost(job_id) from None
            return replay.job
        if change is None:  # the lease moved on between the read and the write (PostgreSQL)
            raise errors.LeaseLost(job_id)
        return self.published(change)


def _same_request(event: Event, request: Request, job_id: str) -> None:
    """REQUEST_ID_MISMATCH unless `event` was recorded by a call with `request`'s very content."""
    if event.data.get("request_fingerprint") != request.fingerprint:
        raise errors.RequestIdMismatch(
            f"request_id {request.id!r} was used for a different request on job {job_id}",
            metadata={"job_id": job_id, "request_id": request.id},
        )
