"""Client use cases: create, read, list, cancel and release jobs; read their events and assets."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from jobwarden_server import store
from jobwarden_server.domain import batches, decisions, errors, limits
from jobwarden_server.domain.auth import Principal
from jobwarden_server.domain.changes import Decision
from jobwarden_server.domain.idempotency import ANONYMOUS, RequestKey
from jobwarden_server.domain.lifecycle import Lifecycle, Lifecycles
from jobwarden_server.domain.records import Asset, Event, EventKind, Job
from jobwarden_server.domain.retention import DELETE_REPLAY_S
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.service import paging
from jobwarden_server.service.writer import Clock, JobWriter

logger = logging.getLogger(__name__)

JOB_PAGE = (50, 500)
ITEM_PAGE = (100, 1000)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """What a client asks for when creating a job (already decoded from the wire)."""

    job_type: str
    parameters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    priority: int = 0
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    max_attempts: int = 0
    run_after: dt.datetime | None = None
    deadline: dt.datetime | None = None
    callback_url: str = ""
    callback_statuses: tuple[JobStatus, ...] = ()  # sorted, terminal (api: webhooks.check_statuses)
    hold: bool = False
    request: RequestKey = ANONYMOUS
    retry_initial_backoff_s: float | None = None
    retry_max_backoff_s: float | None = None
    retry_multiplier: float | None = None
    """The job's own backoff; each None takes the server's default."""
    queue_timeout_s: float | None = None
    """How long the job may wait to start; None takes its type's default (if any)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Rerun:
    """A job created to run an ended one again (AdminService.RetryJob), not by a client."""

    retry_of: str
    """The ended job."""
    lifecycle: str
    """Its table, which the new job keeps."""
    actor: str
    """Who asked, for the new job's history."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobQuery:
    """ListJobs filters; empty means any."""

    statuses: frozenset[JobStatus] = frozenset()
    job_types: frozenset[str] = frozenset()
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    stop_reasons: frozenset[StopReason] = frozenset()
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    descending: bool = False
    parent_id: str = ""
    """Only the children of this batch parent."""

    def params(
        self, owner: str, limit: int, after: tuple[dt.datetime, str] | None = None
    ) -> store.JobListParams:
        """The store's listing of these filters for `owner`, `limit` rows after the keyset `after`."""
        return store.JobListParams(
            owner=owner,
            limit=limit,
            statuses=self.statuses,
            job_types=self.job_types,
            labels=self.labels,
            stop_reasons=self.stop_reasons,
            created_after=self.created_after,
            created_before=self.created_before,
            after=after,
            descending=self.descending,
            parent_id=self.parent_id,
        )


class JobsService:
    """What clients can do with their own jobs. Every read and write is scoped to the caller's owner."""

    def __init__(
        self,
        db: store.Store,
        writer: JobWriter,
        lifecycles: Lifecycles,
        clock: Clock,
        retry: RetryPolicy,
        *,
        cancel_grace_s: float = 30.0,
        queue_timeouts: Mapping[str, float] | None = None,
    ) -> None:
        self._store = db
        self._writer = writer
        self._lifecycles = lifecycles
        self._clock = clock
        self._retry = retry
        self._cancel_grace = dt.timedelta(seconds=cancel_grace_s)
        self._queue_timeouts = dict(queue_timeouts or {})

    async def create(
        self, who: Principal, spec: JobSpec, *, validate_only: bool = False, rerun: Rerun | None = None
    ) -> Job:
        """Accept a job; a retried request_id returns the first job. `validate_only` answers what the
        call would answer (the job it would create, under an id that is not kept) and writes nothing."""
        outcome: Job | errors.DomainError
        if validate_only or rerun is not None:
            params = self._new_job(who, spec, self._clock(), rerun)
            if validate_only:
                [planned] = await self._store.job_create_preview([params])
            else:
                [planned] = await self._writer.create_many([params])
            outcome = planned.change.job if isinstance(planned, store.JobCreateResult) else planned
        else:
            [outcome] = await self.create_many(who, [spec])
        if isinstance(outcome, errors.DomainError):
            raise outcome
        return outcome

    async def create_many(self, who: Principal, specs: Sequence[JobSpec]) -> list[Job | errors.DomainError]:
        """Accept jobs in one transaction, each answered on its own and in order: its job (for a
        retried request_id, the first job), or why it alone was refused. A refused item never stops
        the others; only a failure of the database fails the call."""
        now = self._clock()
        planned: list[store.JobCreateParams | errors.DomainError] = []
        for spec in specs:
            try:
                planned.append(self._new_job(who, spec, now))
            except errors.InvalidArgument as err:
                planned.append(err)
        accepted = [p for p in planned if isinstance(p, store.JobCreateParams)]
        written = iter(await self._writer.create_many(accepted))
        outcomes: list[Job | errors.DomainError] = []
        for item in planned:
            result = item if isinstance(item, errors.DomainError) else next(written)
            outcomes.append(result if isinstance(result, errors.DomainError) else result.change.job)
        return outcomes

    def planned(self, who: Principal, spec: JobSpec, now: dt.datetime) -> store.JobCreateParams:
        """The row a checked spec becomes (a batch's child): as for CreateJob, InvalidArgument for
        what its lifecycle or the clock rules out."""
        return self._new_job(who, spec, now)

    def _new_job(
        self, who: Principal, spec: JobSpec, now: dt.datetime, rerun: Rerun | None = None
    ) -> store.JobCreateParams:
        """The row a valid spec becomes; InvalidArgument for what only its lifecycle or the clock rules
        out (the spec's own shape was checked by check_spec)."""
        table = (
            self._lifecycles.named(rerun.lifecycle)
            if rerun is not None
            else self._lifecycles.for_job_type(spec.job_type)
        )
        if spec.hold and not table.can_hold():
            raise errors.InvalidArgument("hold", f"lifecycle {table.name!r} has no held (CREATED) state")
        if spec.deadline is not None and spec.deadline <= now:
            raise errors.InvalidArgument("deadline", "is in the past")
        if spec.deadline is not None and not table.allows(table.initial, JobStatus.EXPIRED):
            raise errors.InvalidArgument("deadline", f"lifecycle {table.name!r} has no EXPIRED state")
        if spec.run_after is not None and spec.deadline is not None and spec.run_after >= spec.deadline:
            raise errors.InvalidArgument("run_after", "is not before the deadline")
        queue_timeout_s = spec.queue_timeout_s or self._queue_timeouts.get(spec.job_type)
        waits_in = JobStatus.CREATED if spec.hold else table.initial
        if queue_timeout_s is not None and not table.allows(waits_in, JobStatus.EXPIRED):
            raise errors.InvalidArgument(
                "queue_timeout", f"lifecycle {table.name!r} cannot expire a job in {waits_in.value}"
            )
        due = max(now, spec.run_after) if spec.run_after is not None else now
        return store.JobCreateParams(
            id=str(uuid.uuid4()),
            owner=who.owner,
            job_type=spec.job_type,
            lifecycle=table.name,
            status=JobStatus.CREATED if spec.hold else table.initial,
            parameters=spec.parameters,
            priority=spec.priority,
            labels=spec.labels,
            max_attempts=spec.max_attempts or self._retry.default_max_attempts,
            run_after=spec.run_after,
            deadline=spec.deadline,
            callback_url=spec.callback_url,
            callback_statuses=frozenset(spec.callback_statuses),
            request_id=spec.request.id,
            request_fingerprint=spec.request.fingerprint,
            now=now,
            actor=rerun.actor if rerun is not None else decisions.client_actor(who.owner),
            retry=self._retry_of(spec),
            retry_of=rerun.retry_of if rerun is not None else "",
            queue_timeout_s=queue_timeout_s,
            queue_expire_time=decisions.queue_expire_time(due, queue_timeout_s),
        )

    def _retry_of(self, spec: JobSpec) -> RetryPolicy | None:
        """The job's backoff: its own values over the server's defaults (None if it set none)."""
        given = (spec.retry_initial_backoff_s, spec.retry_max_backoff_s, spec.retry_multiplier)
        if all(v is None for v in given):
            return None
        policy = dataclasses.replace(
            self._retry,
            initial_backoff_s=self._retry.initial_backoff_s if given[0] is None else given[0],
            max_backoff_s=self._retry.max_backoff_s if given[1] is None else given[1],
            multiplier=self._retry.multiplier if given[2] is None else given[2],
        )
        if policy.max_backoff_s < policy.initial_backoff_s:
            raise errors.InvalidArgument("retry_policy.max_backoff", "must not be below initial_backoff")
        return policy

    async def get(self, who: Principal, job_id: str) -> Job:
        """One of the caller's jobs."""
        return await self._store.job_get(who.owner, job_id)

    async def list_jobs(
        self, who: Principal, query: JobQuery, page_size: int, page_token: str
    ) -> tuple[list[Job], str]:
        """One page of the caller's jobs and the token of the next page ("" on the last)."""
        size = paging.page_size("page_size", page_size, *JOB_PAGE)
        key = paging.query_key("jobs", who.owner, dataclasses.asdict(query))
        position = paging.decode(page_token, key)
        after = None
        if position is not None:
            try:
                after = (dt.datetime.fromisoformat(position[0]), str(position[1]))
            except (IndexError, TypeError, ValueError) as err:
                raise errors.InvalidArgument(
                    "page_token", "is malformed", reason="INVALID_PAGE_TOKEN"
                ) from err
        jobs = list(await self._store.job_list(query.params(who.owner, size + 1, after)))
        if len(jobs) <= size:
            return jobs, ""
        last = jobs[size - 1]
        return jobs[:size], paging.encode(key, [last.create_time.isoformat(), last.id])

    async def cancel(
        self,
        who: Principal,
        job_id: str,
        reason: str,
        etag: str,
        request: RequestKey = ANONYMOUS,
        *,
        validate_only: bool = False,
    ) -> Job:
        """Cancel at once when not running; ask the worker to stop when running (decisions.cancel).
        A batch's parent is marked, and its unfinished children are cancelled with it (batches.cancel)."""
        actor = decisions.client_actor(who.owner)

        def cascade(child: Job, now: dt.datetime) -> Decision | None:
            try:
                return decisions.cancel(
                    child,
                    self._lifecycles.named(child.lifecycle),
                    actor=actor,
                    reason=f"its batch {job_id} was cancelled",
                    etag="",
                    now=now,
                    grace=self._cancel_grace,
                )
            except errors.DomainError:
                return None  # its table cannot cancel it from where it is: the batch waits for its end

        def decide(job: Job, now: dt.datetime) -> Decision | None:
            if job.batch is not None:
                return batches.cancel(job, actor=actor, reason=reason, etag=etag, request=request)
            return decisions.cancel(
                job,
                self._lifecycles.named(job.lifecycle),
                actor=decisions.client_actor(who.owner),
                reason=reason,
                etag=etag,
                now=now,
                grace=self._cancel_grace,
                request=request,
            )

        return await self._writer.change(
            who.owner, job_id, decide, request=request, validate_only=validate_only, cascade=cascade
        )

    async def release(
        self, who: Principal, job_id: str, request: RequestKey = ANONYMOUS, *, validate_only: bool = False
    ) -> Job:
        """Move a held (CREATED) job to its lifecycle's initial state."""

        def decide(job: Job, now: dt.datetime) -> Decision:
            table = self._lifecycles.named(job.lifecycle)
            return decisions.release(job, table, actor=decisions.client_actor(who.owner), request=request)

        return await self._writer.change(
            who.owner, job_id, decide, request=request, validate_only=validate_only
        )

    async def delete(self, who: Principal, job_id: str, request: RequestKey = ANONYMOUS) -> None:
        """Delete a finished job with everything of it; a retried request_id is answered as the first
        delete was (for DELETE_REPLAY_S after it). JobNotTerminal if it has not ended."""
        now = self._clock()
        params = store.JobDeleteParams(
            owner=who.owner,
            job_id=job_id,
            now=now,
            forget_before=now - dt.timedelta(seconds=DELETE_REPLAY_S),
            request_id=request.id,
            request_fingerprint=request.fingerprint,
        )
        if await self._store.job_delete(params):
            logger.info("deleted job=%s owner=%s", job_id, who.owner)

    async def events(
        self,
        who: Principal,
        job_id: str,
        page_size: int,
        page_token: str,
        kinds: frozenset[EventKind] = frozenset(),
    ) -> tuple[list[Event], str]:
        """One page of a job's history, in sequence order; only events of `kinds` if any are given
        (a page token is bound to its kinds)."""
        scope = ("events", *sorted(kinds)) if kinds else "events"
        size, after, key = self._item_page(scope, who, job_id, page_size, page_token)
        await self._store.job_get(who.owner, job_id)
        events = list(
            await self._store.event_list(
                store.PageParams(owner=who.owner, job_id=job_id, after=after, limit=size + 1, kinds=kinds)
            )
        )
        if len(events) <= size:
            return events, ""
        return events[:size], paging.encode(key, [events[size - 1].sequence])

    async def assets(
        self, who: Principal, job_id: str, page_size: int, page_token: str
    ) -> tuple[list[Asset], str]:
        """One page of a job's assets, in the order they were added."""
        size, after, key = self._item_page("assets", who, job_id, page_size, page_token)
        await self._store.job_get(who.owner, job_id)
        assets = list(
            await self._store.asset_list(
                store.PageParams(owner=who.owner, job_id=job_id, after=after, limit=size + 1)
            )
        )
        if len(assets) <= size:
            return assets, ""
        return assets[:size], paging.encode(key, [assets[size - 1].sequence])

    def _item_page(
        self, kind: object, who: Principal, job_id: str, page_size: int, page_token: str
    ) -> tuple[int, int, str]:
        size = paging.page_size("page_size", page_size, *ITEM_PAGE)
        key = paging.query_key(kind, who.owner, job_id)
        position = paging.decode(page_token, key)
        if position is None:
            return size, 0, key
        if len(position) != 1 or not isinstance(position[0], int):
            raise errors.InvalidArgument("page_token", "is malformed", reason="INVALID_PAGE_TOKEN")
        return size, position[0], key

    async def asset(self, who: Principal, asset_id: str) -> Asset:
        """One of the caller's assets."""
        return await self._store.asset_get(who.owner, asset_id)

    def lifecycle(self, job_type: str) -> Lifecycle:
        """The table governing `job_type` (the default table for an empty type)."""
        return self._lifecycles.for_job_type(job_type)


def check_spec(spec: JobSpec) -> JobSpec:
    """Validate a decoded CreateJob request; raise InvalidArgument naming the field."""
    limits.check_job_type("job_type", spec.job_type)
    limits.check_struct("parameters", spec.parameters)
    limits.check_int("priority", spec.priority, -limits.MAX_PRIORITY, limits.MAX_PRIORITY)
    limits.check_string_map("labels", spec.labels)
    limits.check_int("max_attempts", spec.max_attempts, 0, limits.MAX_ATTEMPTS)
    limits.check_url("callback_url", spec.callback_url)
    limits.check_queue_timeout("queue_timeout", spec.queue_timeout_s)
    for field, seconds in (
        ("retry_policy.initial_backoff", spec.retry_initial_backoff_s),
        ("retry_policy.max_backoff", spec.retry_max_backoff_s),
    ):
        if seconds is not None and not 0 <= seconds <= limits.MAX_BACKOFF_S:
            raise errors.InvalidArgument(field, f"must be between 0 s and {limits.MAX_BACKOFF_S:g} s")
    if spec.retry_multiplier is not None and not 1 <= spec.retry_multiplier <= limits.MAX_BACKOFF_MULTIPLIER:
        raise errors.InvalidArgument(
            "retry_policy.multiplier", f"must be between 1 and {limits.MAX_BACKOFF_MULTIPLIER}"
        )
    return spec


def terminal_event(event: Event) -> bool:
    """Whether the event ends its job's history."""
    return event.kind is EventKind.TRANSITION and JobStatus(event.data["to"]).terminal


def reopens(event: Event) -> bool:
    """Whether the event takes its job out of a terminal status (an admin's forced change)."""
    return event.kind is EventKind.TRANSITION and JobStatus(event.data["from"]).terminal


__all__: Sequence[str] = [
    "JobQuery",
    "JobSpec",
    "JobsService",
    "Rerun",
    "check_spec",
    "reopens",
    "terminal_event",
]
