"""SqlStore: the Store on SQLAlchemy 2 Core, shared by SQLite and PostgreSQL.

Each method is one transaction: reads on the read engine, writes as a synchronous unit run by the
dialect's `Writes` (_writes.py: group commit, on SQLite's writer thread or PostgreSQL's write lane). A
change to a job is a single `UPDATE ... WHERE <expectations> RETURNING` that also bumps `version` and
reserves `last_sequence` for the events inserted right after it in the same transaction, so a job's
state and its history cannot disagree and sequences have no gaps. What differs per dialect (engines,
the claim, label matching) comes in through `Dialect`, chosen by open_store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from jobwarden_server.domain import decisions, errors, queue_charts
from jobwarden_server.domain.records import Asset, Event, EventKind, Job
from jobwarden_server.domain.retention import RetentionRule
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store import _batches as batches
from jobwarden_server.store import _claim as claim
from jobwarden_server.store import _dashboard as dashboard
from jobwarden_server.store import _delete as delete
from jobwarden_server.store import _outbox as outbox
from jobwarden_server.store import _rows as rows
from jobwarden_server.store import _stats as stats
from jobwarden_server.store import _tables as tables
from jobwarden_server.store._create import Creation
from jobwarden_server.store._errors import translated
from jobwarden_server.store._feed import ChangeFeed, ChangeSink
from jobwarden_server.store._prepared import Prepared
from jobwarden_server.store._protocol import (
    AssetAddParams,
    CallbackAttemptParams,
    CallbackClaimParams,
    CallbackDelivery,
    Change,
    JobClaimParams,
    JobCreateParams,
    JobCreateResult,
    JobDeleteParams,
    JobDueParams,
    JobListParams,
    JobStatsParams,
    JobTypeFigures,
    JobUpdateParams,
    LeaseRenewParams,
    PageParams,
    RenewedLease,
    Replayed,
)
from jobwarden_server.store._recent import RecentRows
from jobwarden_server.store._writes import T, Unit, Writes

jobs, job_events, assets = tables.jobs, tables.job_events, tables.assets


class AppendEvents(Protocol):
    """Inserts a write's events and queues its wake-ups in its transaction: see Dialect.append_events."""

    def __call__(
        self, conn: sa.Connection, event_rows: Sequence[Mapping[str, Any]], *, work: bool
    ) -> None: ...


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Dialect:
    """The statements that differ per database; _sqlite.py and _postgres.py each provide one."""

    claim_rows: claim.ClaimRows
    """Move the chosen QUEUED jobs to RUNNING under fresh leases and return their rows."""
    insert_jobs: sa.Insert
    """Insert new jobs, skipping a taken (owner, request_id), returning the ids inserted (_create.py)."""
    labels_match: Callable[[Mapping[str, str]], sa.ColumnElement[bool]]
    """A WHERE term true for jobs carrying every given label (key and value, matched exactly)."""
    append_events: AppendEvents | None = None
    """Insert a write's events and queue, in the same transaction, the wake-ups for other replicas
    (None: insert them plainly; one process, nobody to tell)."""
    try_singleton: Callable[[AsyncConnection, str], Awaitable[bool]] | None = None
    """Take the named lock for the rest of the connection's transaction; False if another holds it."""
    change_feed: Callable[[AsyncEngine, ChangeSink], ChangeFeed] | None = None
    """The listener that turns other replicas' announcements into wake-ups for `sink`."""


@functools.cache
def _update_statement(
    columns: tuple[str, ...],
    *,
    owner: bool,
    statuses: int,
    lease_token: bool,
    version: bool,
    messages: bool = False,
    returning: bool = True,
) -> Prepared:
    """The compare-and-set UPDATE for one shape of change, built and compiled once: its values and
    guards are bound parameters (v_<column>, p_<guard>, p_status_<i> for each of `statuses` expected
    statuses), so a call costs no statement building. There are few shapes: one per kind of change
    the service makes. With `returning`, it returns the row it changed; without, see `_row_after`."""
    counters: dict[str, Any] = {
        "version": jobs.c.version + 1,
        "last_sequence": jobs.c.last_sequence + sa.bindparam("p_events", type_=sa.BigInteger()),
    }
    if messages:  # added, not set: two calls adding messages at once on PostgreSQL each count theirs
        counters["message_count"] = jobs.c.message_count + sa.bindparam("p_messages", type_=sa.BigInteger())
    statement = (
        sa.update(jobs)
        .where(jobs.c.id == sa.bindparam("p_job_id"))
        .values(
            {
                **{name: sa.bindparam(f"v_{name}", type_=jobs.c[name].type) for name in columns},
                **counters,
                "update_us": sa.bindparam("p_now", type_=sa.BigInteger()),
            }
        )
    )
    if returning:
        statement = statement.returning(*jobs.c)
    if owner:
        statement = statement.where(jobs.c.owner == sa.bindparam("p_owner"))
    if statuses:
        statement = statement.where(
            jobs.c.status.in_([sa.bindparam(f"p_status_{i}") for i in range(statuses)])
        )
    if lease_token:
        statement = statement.where(jobs.c.lease_token == sa.bindparam("p_lease_token"))
    if version:
        statement = statement.where(jobs.c.version == sa.bindparam("p_version"))
    return Prepared(statement)


def _row_after(
    read: rows.Row, values: Mapping[str, Any], *, events: int, messages: int, now_us: int
) -> rows.Row:
    """The row `_update_statement` leaves when it matched the row as `read` (its guard held that
    row's version, so nothing else had changed it): the values it set, the counters it advanced."""
    return {
        **read,
        **values,
        "version": read["version"] + 1,
        "last_sequence": read["last_sequence"] + events,
        "message_count": read["message_count"] + messages,
        "update_us": now_us,
    }


class _Common(sa.ColumnElement[Any]):
    """A term not worth walking an index for. SQLite, which keeps no statistics, is told that most rows
    meet it (`likelihood`), so that it walks the index serving the rest of the WHERE and the ORDER BY
    instead of one on this term; other databases, which plan by their statistics, get the term as is."""

    inherit_cache = True
    # No boolean type: SQLite's compiler would write `... = 1` after it, which no index term matches.
    type: sa.types.TypeEngine[Any] = sa.types.NullType()
    _traverse_internals = [("term", InternalTraversal.dp_clauseelement)]  # noqa: RUF012 - SQLAlchemy's own shape

    def __init__(self, term: sa.ColumnElement[bool] | sa.TextClause) -> None:
        self.term = term


@compiles(_Common)
def _common(element: _Common, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.term, **kw))


@compiles(_Common, "sqlite")
def _common_on_sqlite(element: _Common, compiler: Any, **kw: Any) -> str:
    return f"likelihood({compiler.process(element.term, **kw)}, 0.9)"


def due_queries(params: JobDueParams) -> list[sa.Select[Any]]:
    """The reaper's reads, each walking an index of only the jobs it may act on (see Store.job_due)."""
    now_us = rows.to_us(params.now)
    governed = [] if params.lifecycles is None else [jobs.c.lifecycle.in_(sorted(params.lifecycles))]
    expired = (
        sa.select(jobs)
        .where(jobs.c.status == JobStatus.RUNNING.value, jobs.c.lease_expire_us < now_us, *governed)
        .order_by(jobs.c.lease_expire_us)
        .limit(params.limit)
    )
    # The status terms are the partial indexes' own, as literal text (see _tables.py); left to itself,
    # SQLite would take a status index and sort every unfinished job at each tick.
    overdue = (
        sa.select(jobs)
        .where(jobs.c.deadline_us <= now_us, _Common(sa.text(tables.UNFINISHED_WHERE)), *governed)
        .order_by(jobs.c.deadline_us)
        .limit(params.limit)
    )
    unclaimed = (
        sa.select(jobs)
        .where(jobs.c.queue_expire_us <= now_us, _Common(sa.text(tables.WAITING_WHERE)), *governed)
        .order_by(jobs.c.queue_expire_us)
        .limit(params.limit)
    )
    # Stalled: running jobs of a type with a stall rule whose progress stood still too long and that
    # are not flagged yet (ix_jobs_running_job_type_progress_us: the literal status lets both planners
    # use the partial index).
    stalled = [
        sa.select(jobs)
        .where(
            jobs.c.status == sa.literal_column(f"'{JobStatus.RUNNING.value}'"),
            jobs.c.job_type == job_type,
            jobs.c.progress_us <= now_us - round(after_s * 1_000_000),
            jobs.c.stall_us.is_(None),
            *governed,
        )
        .order_by(jobs.c.progress_us)
        .limit(params.limit)
        for job_type, after_s in sorted(params.stall_after_s.items())
    ]
    return [expired, overdue, unclaimed, *stalled]


Applied = tuple[Change, rows.Row | None]
"""A committed write's change, and the job's row after it when the write knows it (to keep)."""


class SqlStore:
    """The Store protocol over SQLAlchemy async engines; build it with `open_store`."""

    def __init__(self, *, writes: Writes, writer: AsyncEngine, reader: AsyncEngine, dialect: Dialect) -> None:
        """Wrap the write runner and engines (which the store then owns and closes) and the dialect."""
        self._writes = writes
        self._writer = writer
        self._reader = reader
        self._dialect = dialect
        self._recent = RecentRows()

    @property
    def write_engine(self) -> AsyncEngine:
        """An engine that may write, for maintenance tasks and tests; the service writes through units."""
        return self._writer

    async def _write(self, unit: Unit[T]) -> T:
        with translated():
            return await self._writes.run(unit)

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        with translated():
            async with self._reader.begin() as conn:
                yield conn

    def _append_events(
        self, conn: sa.Connection, event_rows: Sequence[Mapping[str, Any]], *, work: bool = False
    ) -> None:
        """Insert a write's events; with them, in the same transaction, the wake-ups for other replicas.

        Every write that appends events goes through here, so no write path can forget to announce."""
        if self._dialect.append_events is not None:
            self._dialect.append_events(conn, event_rows, work=work)
        elif event_rows:
            _insert_events(tuple(event_rows[0])).run_many(conn, event_rows)

    @contextlib.asynccontextmanager
    async def singleton(self, name: str) -> AsyncIterator[bool]:
        """Whether this store may do the named background work now; see Store.singleton."""
        if self._dialect.try_singleton is None:
            yield True  # one process per SQLite database: nobody to share the work with
            return
        with translated():
            # The lock is transaction-scoped on a connection held for the block: it is released
            # when the block ends, and by the server if this process dies mid-block.
            async with self._writer.connect() as conn:
                yield await self._dialect.try_singleton(conn, name)
                await conn.rollback()

    def change_feed(self, sink: ChangeSink) -> ChangeFeed | None:
        """A listener for other replicas' changes, to run for the store's life; None if there can
        be no other replicas (SQLite)."""
        if self._dialect.change_feed is None:
            return None
        return self._dialect.change_feed(self._writer, sink)

    async def job_create(self, params: JobCreateParams) -> JobCreateResult:
        """Insert a job and its CREATED event; see Store.job_create (job_create_many with one item)."""
        [outcome] = await self.job_create_many([params])
        if isinstance(outcome, errors.DomainError):
            raise outcome
        return outcome

    async def job_create_many(
        self, params: Sequence[JobCreateParams]
    ) -> Sequence[JobCreateResult | errors.DomainError]:
        """Insert jobs (version 1) and their CREATED events (sequence 1) in one write unit, skipping
        request_ids already taken; an outcome per item, in order. See Store.job_create_many."""
        if not params:
            return []
        creation = Creation(params)

        def create(conn: sa.Connection) -> tuple[set[str], dict[Any, Any]]:
            inserted, earlier = creation.insert(conn, self._dialect.insert_jobs)
            self._append_events(conn, creation.event_rows(inserted), work=creation.queues_work(inserted))
            return inserted, earlier

        inserted, earlier = await self._write(create)
        return creation.outcomes(inserted, earlier)

    async def job_create_preview(
        self, params: Sequence[JobCreateParams]
    ) -> Sequence[JobCreateResult | errors.DomainError]:
        """See Store.job_create_preview: one read, no write."""
        creation = Creation(params)
        async with self._read() as conn:
            earlier = await conn.run_sync(creation.taken)
        return creation.preview(earlier)

    async def job_get(self, owner: str | None, job_id: str) -> Job:
        """One job; NotFound if missing or, when owner is given, not that owner's."""
        async with self._read() as conn:
            return await _job_read(conn, owner, job_id)

    async def job_list(self, params: JobListParams) -> Sequence[Job]:
        """One keyset page of the owner's jobs matching every filter; see Store.job_list."""
        async with self._read() as conn:
            result = await conn.execute(_list_query(params, self._dialect))
            return [rows.job_from_row(row) for row in result.mappings()]

    async def job_count(self, params: JobListParams) -> int:
        """How many of the owner's jobs match the filters, counting at most `params.limit`."""
        async with self._read() as conn:
            return await dashboard.count_at_most(conn, _list_query(params, self._dialect), params.limit)

    async def job_get_many(self, job_ids: Sequence[str]) -> Sequence[Job]:
        """The jobs of `job_ids` that exist, of any owner; see Store.job_get_many."""
        async with self._read() as conn:
            return await dashboard.jobs_by_id(conn, job_ids)

    async def queue_counts(self, owner: str, window: queue_charts.StatsWindow) -> queue_charts.StatsCounts:
        """Grouped counts of the owner's queues; see Store.queue_counts."""
        async with self._read() as conn:
            return await dashboard.queue_counts(conn, owner, window)

    async def job_due(self, params: JobDueParams) -> Sequence[Job]:
        """RUNNING jobs with an expired lease, unfinished jobs past their deadline, waiting jobs past
        their queue timeout, then running jobs whose progress stood still past their type's stall rule."""
        async with self._read() as conn:
            found: dict[str, Job] = {}
            for query in due_queries(params):
                for row in (await conn.execute(query)).mappings():
                    found.setdefault(row["id"], rows.job_from_row(row))
            return list(found.values())

    async def job_stats(self, params: JobStatsParams) -> Sequence[JobTypeFigures]:
        """Counts and durations per job type in one read transaction; see Store.job_stats, _stats.py."""
        async with self._read() as conn:
            return await stats.read_stats(conn, params)

    async def job_renew_leases(self, params: LeaseRenewParams) -> Sequence[RenewedLease]:
        """One UPDATE for every lease of a session; see Store.job_renew_leases."""
        if not params.leases:
            return []
        now_us = rows.to_us(params.now)
        renewed_until = sa.literal(now_us, sa.BigInteger) + sa.cast(
            jobs.c.lease_duration_s * 1_000_000, sa.BigInteger
        )
        statement = (
            sa.update(jobs)
            .where(
                jobs.c.owner == params.owner,
                jobs.c.status == JobStatus.RUNNING.value,
                jobs.c.id.in_(sorted(params.leases)),
                # Tokens are random per claim, so a token matches only its own job; the pairs are
                # checked again below all the same.
                jobs.c.lease_token.in_(sorted(set(params.leases.values()))),
            )
            .values(
                lease_expire_us=sa.case(
                    (jobs.c.cancel_requested, jobs.c.lease_expire_us), else_=renewed_until
                ),
                version=jobs.c.version + 1,
                update_us=now_us,
            )
            .returning(jobs.c.id, jobs.c.lease_token, jobs.c.lease_expire_us, jobs.c.cancel_requested)
        )
        found = await self._write(lambda conn: list(conn.execute(statement).mappings()))
        return [
            RenewedLease(
                job_id=row["id"],
                lease_expire_time=rows.from_us(row["lease_expire_us"]),
                cancel_requested=bool(row["cancel_requested"]),
            )
            for row in found
            if params.leases.get(row["id"]) == row["lease_token"]
        ]

    async def job_lifecycles_in_use(self) -> Mapping[str, int]:
        """Unfinished jobs per lifecycle table (checked at start-up against the config)."""
        unfinished = [s.value for s in JobStatus if not s.terminal]
        query = (
            sa.select(jobs.c.lifecycle, sa.func.count())
            .where(jobs.c.status.in_(unfinished))
            .group_by(jobs.c.lifecycle)
        )
        async with self._read() as conn:
            return {name: int(count) for name, count in (await conn.execute(query)).all()}

    async def job_depth(self) -> Mapping[tuple[str, JobStatus], int]:
        """Unfinished jobs per (job type, status), any owner, read at each scrape; see Store.job_depth."""
        async with self._read() as conn:
            return await dashboard.unfinished_counts(conn, None)

    async def job_update(self, params: JobUpdateParams) -> Change | None:
        """The compare-and-set: one guarded UPDATE, then its events; None if a guard failed."""
        return self._kept(await self._write(lambda conn: self._update(conn, params)))

    async def job_modify(
        self,
        owner: str,
        job_id: str,
        decide: Callable[[Job], JobUpdateParams | None],
        *,
        request_id: str = "",
        cascade: Callable[[Job], JobUpdateParams | None] | None = None,
    ) -> Change | None:
        """Read the job and apply the compare-and-set `decide` makes of it, in one write transaction.

        On a batch parent, `cascade` (if given) is decided on each unfinished child and written in the
        same transaction, before the parent (see _batches.py for the lock order); the children's
        changes are the result's followers.

        One transaction instead of a read and then a write: the hot worker calls (progress, heartbeats)
        pay for one. `decide` may raise to refuse (nothing is written). The compare-and-set still
        guards the write: on PostgreSQL the row can change between the read and the update; on SQLite
        the write lock, taken at BEGIN, already rules that out. NotFound if missing or not the owner's.
        """

        def modify(conn: sa.Connection) -> Applied | None:
            kept = self._recent.take(job_id)
            if kept is not None and (applied := self._modify_kept(conn, kept, owner, decide, request_id)):
                return applied
            if request_id:  # the replay lookup rides on the job's read: one statement, not two
                keys = _request_keys(owner, job_id, request_id)
                found = _JOB_OF_OWNER_WITH_REPLAY.rows(conn, keys)
            else:
                found = _JOB_OF_OWNER.rows(conn, {"p_job_id": job_id, "p_owner": owner})
            row = found[0] if found else None
            if row is None:
                raise errors.NotFound(f"job {job_id} not found", metadata={"job_id": job_id})
            job = rows.job_from_row(row)
            if request_id and row["replayed_sequence"] is not None:
                self._refuse_replay(conn, owner, job_id, request_id, job)
            params = decide(job)
            if params is None:
                return Change(job=job, events=()), None
            if cascade is None or job.batch is None:
                return self._update(conn, params, read=row)
            return self._cascaded(conn, job, params, cascade), None

        try:
            return self._kept(await self._write(modify))
        except _RolledBack:
            return None

    def _modify_kept(
        self,
        conn: sa.Connection,
        kept: tuple[rows.Row, Job],
        owner: str,
        decide: Callable[[Job], JobUpdateParams | None],
        request_id: str,
    ) -> Applied | None:
        """`job_modify`'s change decided on the job's row as this process last committed it (see
        _recent.py); None if that row cannot answer, and the change is decided on a fresh read.

        Only a change that is written here takes this way: a retried request, a refusal, a change to
        nothing and a batch parent's change are answered from the fresh read, as ever."""
        row, job = kept
        if job.owner != owner or job.batch is not None:
            return None
        if request_id and _EVENT_OF_REQUEST.rows(conn, _request_keys(owner, job.id, request_id)):
            return None
        try:
            params = decide(job)
        except errors.DomainError:
            return None
        if params is None or params.expect_version != row["version"]:
            return None
        return self._update(conn, params, read=row)  # None if the row is no longer the job's

    def _kept(self, applied: Applied | None) -> Change | None:
        """The change of a committed write, keeping the job's row after it for its next change."""
        if applied is None:
            return None
        change, row = applied
        if row is not None:
            self._recent.keep(row, change.job)
        return change

    def _cascaded(
        self,
        conn: sa.Connection,
        parent: Job,
        params: JobUpdateParams,
        cascade: Callable[[Job], JobUpdateParams | None],
    ) -> Change:
        """A parent's change with its children's: children first, then the parent, then what the
        parent does on its counts. If the parent's guard fails, everything is rolled back."""
        children, moves = batches.cascade(conn, parent, cascade, self._apply)
        change = self._apply(conn, params)
        if change is None:
            raise _RolledBack  # the parent moved since it was read: undo the children, decide again
        followers = batches.settle(conn, moves, params.now, self._apply)
        return dataclasses.replace(batches.merged(change, followers), followers=children)

    async def batch_create(
        self, parent: JobCreateParams, children: Sequence[JobCreateParams], *, dry_run: bool = False
    ) -> JobCreateResult:
        """Insert a batch's parent and children, and their CREATED events, in one write unit; see
        Store.batch_create."""
        creation = Creation([parent])

        def create(conn: sa.Connection) -> JobCreateResult:
            inserted, earlier = creation.insert(conn, self._dialect.insert_jobs)
            child_values, child_events = [], []
            if inserted:
                child_values = [rows.create_values(c, rows.to_us(c.now)) for c in children]
                conn.execute(_INSERT_JOBS, child_values)
                child_events = [
                    rows.created_event_row(c, v["create_us"])
                    for c, v in zip(children, child_values, strict=True)
                ]
                self._append_events(
                    conn,
                    creation.event_rows(inserted) + child_events,
                    work=any(c.status is JobStatus.QUEUED for c in children),
                )
            [outcome] = creation.outcomes(inserted, earlier)
            if isinstance(outcome, errors.DomainError):
                raise outcome
            if inserted:
                followers = [
                    Change(job=rows.job_from_row(v), events=(rows.event_from_row(e),))
                    for v, e in zip(child_values, child_events, strict=True)
                ]
                outcome = dataclasses.replace(
                    outcome, change=dataclasses.replace(outcome.change, followers=followers)
                )
            if dry_run:
                raise _RolledBack(outcome)
            return outcome

        try:
            return await self._write(create)
        except _RolledBack as dry:
            assert dry.result is not None
            return dry.result

    def _refuse_replay(
        self, conn: sa.Connection, owner: str, job_id: str, request_id: str, job: Job | None = None
    ) -> None:
        """Replayed if an event of the job already records `request_id`: that call went through."""
        found = conn.execute(_FIRST_EVENT_OF_REQUEST, _request_keys(owner, job_id, request_id))
        earlier = found.mappings().first()
        if earlier is None:
            return
        if job is None:
            row = _JOB_OF_OWNER.rows(conn, {"p_job_id": job_id, "p_owner": owner})[0]
            job = rows.job_from_row(row)
        raise Replayed(job, rows.event_from_row(earlier))

    def _update(
        self, conn: sa.Connection, params: JobUpdateParams, read: rows.Row | None = None
    ) -> Applied | None:
        """The compare-and-set, and (a batch child's status moved) its parent's change with it;
        `read` as for `_applied`."""
        applied = self._applied(conn, params, read)
        if applied is None:
            return None
        change, row = applied
        move = batches.move_of(params, change)
        if move is None:
            return applied
        followers = batches.settle(conn, [move], params.now, self._apply)
        return dataclasses.replace(change, followers=followers), row

    def _apply(
        self, conn: sa.Connection, params: JobUpdateParams, read: rows.Row | None = None
    ) -> Change | None:
        """`_applied`'s change alone."""
        applied = self._applied(conn, params, read)
        return None if applied is None else applied[0]

    def _applied(
        self, conn: sa.Connection, params: JobUpdateParams, read: rows.Row | None = None
    ) -> tuple[Change, rows.Row] | None:
        """The compare-and-set of `params`, its events (and outbox row) after it, and the job's row
        after it; None if its guards no longer hold.

        `read`: the job's row as this transaction read it. When the change expects that row's version,
        a match means the row was exactly that, so the row after is built from it (`_row_after`)
        instead of returned: RETURNING costs SQLite a temporary table per statement, about a fifth of
        its work on a claim and a completion, and the rows' conversion is as dear again in Python."""
        now_us = rows.to_us(params.now)
        values = rows.change_values(params.changes)
        statuses = sorted(s.value for s in params.expect_statuses or ())
        as_read = read is not None and params.expect_version == read["version"]
        statement = _update_statement(
            tuple(values),
            owner=params.owner is not None,
            statuses=len(statuses),
            lease_token=params.expect_lease_token is not None,
            version=params.expect_version is not None,
            messages=params.changes.messages_added > 0,
            returning=not as_read,
        )
        bound = {f"v_{name}": value for name, value in values.items()}
        bound |= {
            "p_job_id": params.job_id,
            "p_events": len(params.events),
            "p_messages": params.changes.messages_added,
            "p_now": now_us,
            "p_owner": params.owner,
            "p_lease_token": params.expect_lease_token,
            "p_version": params.expect_version,
        }
        bound |= {f"p_status_{i}": status for i, status in enumerate(statuses)}
        row: rows.Row
        if as_read:
            assert read is not None
            if statement.run(conn, bound) == 0:
                return None
            row = _row_after(
                read, values, events=len(params.events), messages=params.changes.messages_added, now_us=now_us
            )
        else:
            found = statement.rows(conn, bound)
            if not found:
                return None
            row = found[0]
        if params.changes.status is not None and params.changes.status.terminal:
            # The job ended: its callback's outbox row commits (or not) with this very change.
            row = outbox.enqueue(conn, row, now_us)
        event_rows = rows.event_rows(row, params.events, now_us)
        self._append_events(conn, event_rows, work=params.changes.status is JobStatus.QUEUED)
        change = Change(job=rows.job_from_row(row), events=tuple(rows.event_from_row(e) for e in event_rows))
        return change, row

    async def job_delete(self, params: JobDeleteParams) -> bool:
        """Delete a finished job and everything of it (by cascade); see Store.job_delete, _delete.py."""
        return await self._write(lambda conn: delete.delete_job(conn, params))

    async def job_delete_expired(self, rule: RetentionRule, limit: int) -> int:
        """One batch of retention; see Store.job_delete_expired and _delete.py."""
        return await self._write(lambda conn: delete.delete_expired(conn, rule, limit))

    async def job_claim(self, params: JobClaimParams) -> Sequence[Change]:
        """Lease up to `limit` due QUEUED jobs, best first, each with its own token and event."""
        if params.limit <= 0 or not params.job_types:
            return []

        def claim_some(
            conn: sa.Connection,
        ) -> tuple[list[rows.Row], list[dict[str, Any]], list[Change]]:
            claimed = claim.sort_claimed(self._dialect.claim_rows(conn, params))
            event_rows = [claim.claim_event_row(row, params) for row in claimed]
            self._append_events(conn, event_rows)
            moves = [
                batches.Move(row["parent_id"], JobStatus.QUEUED, JobStatus.RUNNING)
                for row in claimed
                if row["parent_id"]
            ]
            parents = batches.settle(conn, moves, params.now, self._apply) if moves else []
            return claimed, event_rows, parents

        claimed, event_rows, parents = await self._write(claim_some)
        changes = [
            Change(job=rows.job_from_row(row), events=(rows.event_from_row(event),))
            for row, event in zip(claimed, event_rows, strict=True)
        ]
        for row, change in zip(claimed, changes, strict=True):
            self._recent.keep(row, change.job)  # the worker's next change to it reads no row
        if parents:  # published with the claims: the first carries them
            changes[0] = dataclasses.replace(changes[0], followers=parents)
        return changes

    async def asset_add(self, params: AssetAddParams) -> tuple[Asset, Change] | None:
        """Attach an asset under the caller's lease: job CAS, asset row and event in one transaction;
        NotFound if the job is missing or not the owner's, None if the lease is not the job's."""
        now_us = rows.to_us(params.now)
        statement = (
            sa.update(jobs)
            .where(
                jobs.c.id == params.job_id,
                jobs.c.owner == params.owner,
                jobs.c.status == JobStatus.RUNNING.value,
                jobs.c.lease_token == params.lease_token,
            )
            .values(version=jobs.c.version + 1, last_sequence=jobs.c.last_sequence + 1, update_us=now_us)
            .returning(*jobs.c)
        )
        asset = Asset(
            id=params.id,
            job_id=params.job_id,
            owner=params.owner,
            asset_type=params.asset_type,
            uri=params.uri,
            storage_path=params.storage_path,
            size_bytes=params.size_bytes,
            content_type=params.content_type,
            sha256=params.sha256,
            metadata=dict(params.metadata),
            create_time=rows.from_us(now_us),
        )

        def add(conn: sa.Connection) -> tuple[sa.RowMapping, dict[str, Any]] | None:
            if params.request_id:
                self._refuse_replay(conn, params.owner, params.job_id, params.request_id)
            row = conn.execute(statement).mappings().one_or_none()
            if row is None:
                keys = {"p_job_id": params.job_id, "p_owner": params.owner}
                if not _JOB_OF_OWNER.rows(conn, keys):
                    raise errors.NotFound(
                        f"job {params.job_id} not found", metadata={"job_id": params.job_id}
                    )
                return None
            conn.execute(sa.insert(assets), rows.asset_values(asset, row["last_sequence"], now_us))
            event = {
                "job_id": params.job_id,
                "sequence": row["last_sequence"],
                "owner": params.owner,
                "create_us": now_us,
                "actor": decisions.worker_actor(row["worker_id"]),
                "kind": EventKind.ASSET_ADDED.value,
                "data": rows.asset_event_data(asset, params.request_fingerprint),
                "request_id": params.request_id,
            }
            self._append_events(conn, [event])
            return row, event

        written = await self._write(add)
        if written is None:
            return None
        row, event = written
        sequence = row["last_sequence"]
        added = dataclasses.replace(asset, sequence=sequence)
        return added, Change(job=rows.job_from_row(row), events=(rows.event_from_row(event),))

    async def callback_claim(self, params: CallbackClaimParams) -> Sequence[CallbackDelivery]:
        """Lease due callback deliveries; see Store.callback_claim and _outbox.py."""
        if params.limit <= 0:
            return []
        async with self._read() as conn:
            if (await conn.execute(outbox.any_due(rows.to_us(params.now)))).first() is None:
                return []
        return await self._write(lambda conn: outbox.claim(conn, params))

    async def callback_record(self, params: CallbackAttemptParams) -> Change | None:
        """Record one delivery attempt under its lease; see Store.callback_record."""
        written = await self._write(lambda conn: outbox.record(conn, params, self._append_events))
        if written is None:
            return None
        job_row, event_rows = written
        return Change(
            job=rows.job_from_row(job_row), events=tuple(rows.event_from_row(e) for e in event_rows)
        )

    async def event_by_request(self, owner: str, job_id: str, request_id: str) -> Event | None:
        """The first event of the job recorded by the call with `request_id`, if any."""
        async with self._read() as conn:
            found = await conn.execute(_FIRST_EVENT_OF_REQUEST, _request_keys(owner, job_id, request_id))
            row = found.mappings().first()
        return None if row is None else rows.event_from_row(row)

    async def events_by_request(self, owner: str, request_id: str) -> Sequence[Event]:
        """Every event, of any of the owner's jobs, recorded by the call with `request_id`."""
        query = (
            sa.select(job_events)
            .where(job_events.c.owner == owner, job_events.c.request_id == request_id)
            .order_by(job_events.c.job_id, job_events.c.sequence)
        )
        async with self._read() as conn:
            found = (await conn.execute(query)).mappings().all()
        return [rows.event_from_row(row) for row in found]

    async def asset_get(self, owner: str, asset_id: str) -> Asset:
        """One asset; NotFound if missing or not the owner's."""
        query = sa.select(assets).where(assets.c.id == asset_id, assets.c.owner == owner)
        async with self._read() as conn:
            row = (await conn.execute(query)).mappings().one_or_none()
        if row is None:
            raise errors.NotFound(f"asset {asset_id} not found", metadata={"asset_id": asset_id})
        return rows.asset_from_row(row)

    async def asset_list(self, params: PageParams) -> Sequence[Asset]:
        """A job's assets in the order they were added, after position `after`."""
        query = (
            sa.select(assets)
            .where(
                assets.c.job_id == params.job_id,
                assets.c.owner == params.owner,
                assets.c.position > params.after,
            )
            .order_by(assets.c.position)
            .limit(params.limit)
        )
        async with self._read() as conn:
            return [rows.asset_from_row(row) for row in (await conn.execute(query)).mappings()]

    async def event_list(self, params: PageParams) -> Sequence[Event]:
        """A job's events with sequence > `after`, ascending."""
        async with self._read() as conn:
            return await _events_read(conn, params)

    async def job_with_events(self, params: PageParams) -> tuple[Job, Sequence[Event]]:
        """The job and its first page of events after `after`, in one read transaction.

        A watch opens with both; one transaction instead of two saves a pooled connection's checkout,
        a BEGIN and an end, each a hand-off to the driver's thread, on every watch."""
        async with self._read() as conn:
            job = await _job_read(conn, params.owner, params.job_id)
            if job.last_sequence <= params.after:
                return job, []
            return job, await _events_read(conn, params)

    async def close(self) -> None:
        """Finish queued writes, then dispose of the engines (once, when they are the same)."""
        await self._writes.close()
        await self._writer.dispose()
        if self._reader is not self._writer:
            await self._reader.dispose()


async def _job_read(conn: AsyncConnection, owner: str | None, job_id: str) -> Job:
    query = sa.select(jobs).where(jobs.c.id == job_id)
    if owner is not None:
        query = query.where(jobs.c.owner == owner)
    row = (await conn.execute(query)).mappings().one_or_none()
    if row is None:
        raise errors.NotFound(f"job {job_id} not found", metadata={"job_id": job_id})
    return rows.job_from_row(row)


async def _events_read(conn: AsyncConnection, params: PageParams) -> list[Event]:
    query = (
        sa.select(job_events)
        .where(
            job_events.c.job_id == params.job_id,
            job_events.c.owner == params.owner,
            job_events.c.sequence > params.after,
        )
        .order_by(job_events.c.sequence)
        .limit(params.limit)
    )
    if params.kinds:
        # Filtered on the job's own events, read in sequence order from the primary key: no index of
        # its own, which every event written would pay for.
        query = query.where(job_events.c.kind.in_(sorted(k.value for k in params.kinds)))
    return [rows.event_from_row(row) for row in (await conn.execute(query)).mappings()]


def _list_query(params: JobListParams, dialect: Dialect) -> sa.Select[Any]:
    """The keyset query of job_list: filters, then rows strictly after the cursor in list order."""
    query = sa.select(jobs).where(jobs.c.owner == params.owner)
    if params.statuses:
        query = query.where(jobs.c.status.in_(sorted(s.value for s in params.statuses)))
    if params.job_types:
        query = query.where(jobs.c.job_type.in_(sorted(params.job_types)))
    if params.stop_reasons:
        query = query.where(jobs.c.stop_reason.in_(sorted(r.value for r in params.stop_reasons)))
    if params.labels:
        query = query.where(dialect.labels_match(params.labels))
    if params.parent_id:
        query = query.where(jobs.c.parent_id == params.parent_id)
    if params.stalled:
        query = query.where(jobs.c.stall_us.is_not(None))
    if params.created_after is not None:
        query = query.where(jobs.c.create_us >= rows.to_us(params.created_after))
    if params.created_before is not None:
        query = query.where(jobs.c.create_us < rows.to_us(params.created_before))
    key_columns = sa.tuple_(jobs.c.create_us, jobs.c.id)
    if params.after is not None:
        cursor = sa.tuple_(sa.literal(rows.to_us(params.after[0])), sa.literal(params.after[1]))
        query = query.where(key_columns < cursor if params.descending else key_columns > cursor)
    if params.descending:
        query = query.order_by(jobs.c.create_us.desc(), jobs.c.id.desc())
    else:
        query = query.order_by(jobs.c.create_us, jobs.c.id)
    return query.limit(params.limit)


class _RolledBack(Exception):
    """Raised inside a write unit to undo all of it: a dry run (carrying what it would have answered),
    or a cascade whose parent moved under it."""

    def __init__(self, result: JobCreateResult | None = None) -> None:
        super().__init__("rolled back")
        self.result = result


# The hot statements are built once, their values bound at each call: building a statement costs more
# CPU than running it on SQLite, and a prebuilt one goes straight to the compiled cache.
_INSERT_EVENTS = sa.insert(job_events)
_INSERT_JOBS = sa.insert(jobs)
_JOB_OF_OWNER_SELECT = sa.select(jobs).where(
    jobs.c.id == sa.bindparam("p_job_id"), jobs.c.owner == sa.bindparam("p_owner")
)
_JOB_OF_OWNER = Prepared(_JOB_OF_OWNER_SELECT)
_OF_REQUEST = (
    job_events.c.job_id == sa.bindparam("p_job_id"),
    job_events.c.request_id == sa.bindparam("p_request_id"),
    job_events.c.owner == sa.bindparam("p_owner"),
)
"""An event of a job recorded by the call with a request_id (see `_request_keys`)."""
_FIRST_EVENT_OF_REQUEST = sa.select(job_events).where(*_OF_REQUEST).order_by(job_events.c.sequence).limit(1)
"""The first event of a job recorded by the call with a request_id (a retry's first outcome)."""
_EVENT_OF_REQUEST = Prepared(sa.select(job_events.c.sequence).where(*_OF_REQUEST).limit(1))
"""Whether the call with a request_id already recorded an event of the job (then it is a retry)."""
_JOB_OF_OWNER_WITH_REPLAY = Prepared(
    _JOB_OF_OWNER_SELECT.add_columns(
        sa.select(sa.func.min(job_events.c.sequence))
        .where(*_OF_REQUEST)
        .scalar_subquery()
        .label("replayed_sequence")
    )
)
"""The job, and the sequence of its first event recorded by the call with a request_id (None if none)."""


@functools.cache
def _insert_events(keys: tuple[str, ...]) -> Prepared:
    """The INSERT of event rows that give `keys` (every writer gives the same few)."""
    return Prepared(_INSERT_EVENTS, keys=keys)


def _request_keys(owner: str, job_id: str, request_id: str) -> dict[str, str]:
    return {"p_owner": owner, "p_job_id": job_id, "p_request_id": request_id}
