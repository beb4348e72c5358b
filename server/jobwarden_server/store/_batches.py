"""Batches in the store: a parent follows its children in the very transaction that moves them.

Where the hook sits: in the store's write units (SqlStore._update, the claim, a parent's cancel), not in
the service's write entry. A child moves by several paths -- a decision through JobWriter.change, the
claim (which never goes through a decision), the reaper -- and all of them end in these units, so no
path can forget its parent, and the parent's counts, transitions and events commit or roll back with
the child's change itself (as _outbox.py does for callbacks).

`settle` folds the status moves of a unit's children into their parents' counts with one relative
UPDATE per parent (`batch_<status> = batch_<status> + :delta`), which on PostgreSQL also locks the
parent row until the commit: concurrent children of one parent queue there, each adding its delta to
the counts the previous one committed, so no move is lost and none is counted twice. The parent's own
decision (domain/batches.follow) is then taken on the row that UPDATE returned and written through the
same compare-and-set as any change (with its events, and the parent's callback row when it ends).

Lock order, so transactions never wait on each other in a cycle (PostgreSQL): children first, then
parents in id order. Every unit here follows it: a child's change locks the child, then its parent;
a claim locks its children, then their parents sorted; a parent's cancel locks its unfinished children
(in id order) before it writes the parent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable, Sequence

import sqlalchemy as sa

from jobwarden_server.domain import batches
from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store import _rows as rows
from jobwarden_server.store import _tables as tables
from jobwarden_server.store._protocol import Change, JobUpdateParams

jobs = tables.jobs

Apply = Callable[[sa.Connection, JobUpdateParams], Change | None]
"""The plain compare-and-set of one job (SqlStore._apply): no batch hook of its own."""


@dataclasses.dataclass(frozen=True, slots=True)
class Move:
    """A child's status change within a unit; `from_status` None: not known (the counts are redone)."""

    parent_id: str
    from_status: JobStatus | None
    to_status: JobStatus


def move_of(params: JobUpdateParams, change: Change) -> Move | None:
    """The move a compare-and-set made of a batch child (None: not a child, or no status change).

    Every status change is guarded by the one status it was decided on (decisions.transition), so that
    is where the child came from."""
    to_status = params.changes.status
    if to_status is None or not change.job.parent_id:
        return None
    expected = params.expect_statuses or frozenset()
    from_status = next(iter(expected)) if len(expected) == 1 else None
    return Move(change.job.parent_id, from_status, to_status)


@functools.cache
def _count_statement(columns: tuple[str, ...]) -> sa.Update:
    """UPDATE a parent's counts by relative deltas (bound as d_<column>), returning the row."""
    return (
        sa.update(jobs)
        .where(jobs.c.id == sa.bindparam("p_id"), jobs.c.batch_total.is_not(None))
        .values(
            {
                **{c: jobs.c[c] + sa.bindparam(f"d_{c}", type_=sa.Integer()) for c in columns},
                "version": jobs.c.version + 1,
                "update_us": sa.bindparam("p_now", type_=sa.BigInteger()),
            }
        )
        .returning(*jobs.c)
    )


_CHILD_COUNTS = (
    sa.select(jobs.c.status, sa.func.count())
    .where(jobs.c.parent_id == sa.bindparam("p_id"))
    .group_by(jobs.c.status)
)


def _recounted(conn: sa.Connection, parent_id: str, now_us: int) -> rows.Row | None:
    """Set a parent's counts from its children as they stand (a move whose origin is unknown)."""
    found: dict[str, int] = dict(conn.execute(_CHILD_COUNTS, {"p_id": parent_id}).tuples().all())
    values = {
        column: int(found.get(status.value, 0)) for status, column in tables.BATCH_COUNT_COLUMNS.items()
    }
    statement = (
        sa.update(jobs)
        .where(jobs.c.id == parent_id, jobs.c.batch_total.is_not(None))
        .values(**values, version=jobs.c.version + 1, update_us=now_us)
        .returning(*jobs.c)
    )
    return conn.execute(statement).mappings().one_or_none()


def settle(conn: sa.Connection, moves: Sequence[Move], now: dt.datetime, apply: Apply) -> list[Change]:
    """Fold `moves` into their parents' counts and write what each parent then does; the parents'
    changes (with their events, possibly none), in parent id order."""
    deltas: dict[str, Counter[str]] = {}
    unknown: set[str] = set()
    for move in moves:
        delta = deltas.setdefault(move.parent_id, Counter())
        if move.from_status is None:
            unknown.add(move.parent_id)
            continue
        if move.from_status is not move.to_status:
            delta[tables.BATCH_COUNT_COLUMNS[move.from_status]] -= 1
            delta[tables.BATCH_COUNT_COLUMNS[move.to_status]] += 1
    now_us = rows.to_us(now)
    changes = []
    for parent_id in sorted(deltas):  # one lock order for every transaction
        if parent_id in unknown:
            row = _recounted(conn, parent_id, now_us)
        else:
            columns = tuple(sorted(c for c, n in deltas[parent_id].items() if n))
            if not columns:
                continue
            bound = {f"d_{c}": deltas[parent_id][c] for c in columns} | {"p_id": parent_id, "p_now": now_us}
            row = conn.execute(_count_statement(columns), bound).mappings().one_or_none()
        if row is None:
            continue  # the parent is gone (deleted with its history): nothing left to follow
        parent = rows.job_from_row(row)
        decision = batches.follow(parent, now)
        if decision is None:
            changes.append(Change(job=parent, events=()))
            continue
        written = apply(conn, JobUpdateParams.of(parent.id, None, now, decision))
        if written is None:  # the row is locked by this transaction and was just read: cannot happen
            raise RuntimeError(f"batch parent {parent.id} changed under its own lock")
        changes.append(written)
    return changes


def unfinished_children(conn: sa.Connection, parent: Job) -> list[Job]:
    """A parent's children that have not ended, locked in id order (PostgreSQL) for a cascade."""
    query = (
        sa.select(jobs)
        .where(
            jobs.c.owner == parent.owner,
            jobs.c.parent_id == parent.id,
            jobs.c.status.in_([s.value for s in JobStatus if not s.terminal]),
        )
        .order_by(jobs.c.id)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return [rows.job_from_row(row) for row in conn.execute(query).mappings()]


def cascade(
    conn: sa.Connection,
    parent: Job,
    decide: Callable[[Job], JobUpdateParams | None],
    apply: Apply,
) -> tuple[list[Change], list[Move]]:
    """Apply `decide` to each unfinished child of `parent` (a cancel): the children's changes, and the
    moves to settle on the parent once it is written."""
    changes: list[Change] = []
    moves: list[Move] = []
    for child in unfinished_children(conn, parent):
        params = decide(child)
        if params is None:
            continue
        change = apply(conn, params)
        if change is None:
            continue  # cannot happen under the children's locks; the child is left as it is
        changes.append(change)
        move = move_of(params, change)
        if move is not None:
            moves.append(dataclasses.replace(move, from_status=child.status))
    return changes, moves


def merged(first: Change, later: Sequence[Change]) -> Change:
    """`first` (a change of a parent) followed by the parent's own later changes in the same unit:
    the parent as it ends up, with every event in order."""
    job, events = first.job, list(first.events)
    for change in later:
        if change.job.id == job.id:
            job = change.job
            events.extend(change.events)
    return Change(job=job, events=events, followers=first.followers)
