"""Deleting finished jobs: one by a client (DeleteJob), or many whose retention has passed.

Only the `jobs` row is deleted here: its events, assets and callback outbox row go with it through the
foreign keys' ON DELETE CASCADE, in the same statement (SQLite enforces them because every connection
turns foreign_keys on; see _sqlite.py). Each function runs inside one write unit (_writes.py).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from jobwarden_server.domain import errors
from jobwarden_server.domain.records import CallbackState
from jobwarden_server.domain.retention import RetentionRule
from jobwarden_server.domain.status import TERMINAL
from jobwarden_server.store import _rows as rows
from jobwarden_server.store import _tables as tables
from jobwarden_server.store._protocol import JobDeleteParams

jobs, job_deletions = tables.jobs, tables.job_deletions

_FINISHED = sorted(s.value for s in TERMINAL)
_UNSETTLED_CALLBACK = sorted({CallbackState.PENDING.value, CallbackState.DELIVERING.value})
PRUNE_PER_DELETE = 10
"""Expired delete records removed by each delete that records one: they never pile up, and no loop
is needed for them."""


def delete_job(conn: sa.Connection, params: JobDeleteParams) -> bool:
    """Delete the owner's finished job and remember the request_id; see Store.job_delete."""
    if params.request_id and _replayed(conn, params):
        return False
    deleted = conn.execute(
        sa.delete(jobs)
        .where(jobs.c.id == params.job_id, jobs.c.owner == params.owner, jobs.c.status.in_(_FINISHED))
        .returning(jobs.c.id)
    ).first()
    if deleted is None:
        # A concurrent retry of this very delete may have won (PostgreSQL, read committed: this
        # statement sees what committed since the first look).
        if params.request_id and _replayed(conn, params):
            return False
        status = conn.execute(
            sa.select(jobs.c.status).where(jobs.c.id == params.job_id, jobs.c.owner == params.owner)
        ).scalar_one_or_none()
        if status is None:
            raise errors.NotFound(f"job {params.job_id} not found", metadata={"job_id": params.job_id})
        raise errors.JobNotTerminal(params.job_id, str(status), "cancel it first, then delete it")
    if params.request_id:
        now_us = rows.to_us(params.now)
        # Make room for this delete's record: one under this key past its window is forgotten. Only
        # such a one: a fresh record here was committed meanwhile by another replica's delete, and
        # removing it would let both deletes succeed under one request_id.
        conn.execute(
            sa.delete(job_deletions).where(
                job_deletions.c.owner == params.owner,
                job_deletions.c.request_id == params.request_id,
                job_deletions.c.delete_us < rows.to_us(params.forget_before),
            )
        )
        recorded = conn.execute(
            _record_deletion(conn.dialect.name),
            {
                "job_id": params.job_id,
                "owner": params.owner,
                "request_id": params.request_id,
                "request_fingerprint": params.request_fingerprint,
                "delete_us": now_us,
            },
        ).first()
        if recorded is None:
            # Another replica's delete under this request_id committed while this one ran (PostgreSQL:
            # the INSERT waited for it): this one is the reuse. Raising undoes this unit's DELETE too.
            _replayed(conn, params)
            raise errors.Conflict(
                f"request_id {params.request_id!r} was taken meanwhile; retry",
                metadata={"request_id": params.request_id},
            )
        _prune(conn, rows.to_us(params.forget_before), PRUNE_PER_DELETE)
    return True


def _record_deletion(dialect: str) -> sa.Insert:
    """The INSERT of a delete's record, skipping it (returning no row) when the owner's request_id is
    already recorded, instead of failing on the unique index."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(job_deletions)
        .on_conflict_do_nothing(index_elements=[job_deletions.c.owner, job_deletions.c.request_id])
        .returning(job_deletions.c.job_id)
    )


def _replayed(conn: sa.Connection, params: JobDeleteParams) -> bool:
    """Whether a delete with this request_id went through already (RequestIdMismatch if it was a
    delete of something else)."""
    earlier = conn.execute(
        sa.select(job_deletions.c.job_id, job_deletions.c.request_fingerprint).where(
            job_deletions.c.owner == params.owner,
            job_deletions.c.request_id == params.request_id,
            job_deletions.c.delete_us >= rows.to_us(params.forget_before),
        )
    ).first()
    if earlier is None:
        return False
    if (earlier.job_id, earlier.request_fingerprint) != (params.job_id, params.request_fingerprint):
        raise errors.RequestIdMismatch(
            f"request_id {params.request_id!r} was used for another request",
            metadata={"request_id": params.request_id},
        )
    return True


def _prune(conn: sa.Connection, before_us: int, limit: int) -> None:
    old = sa.select(job_deletions.c.job_id).where(job_deletions.c.delete_us < before_us).limit(limit)
    conn.execute(sa.delete(job_deletions).where(job_deletions.c.job_id.in_(old.scalar_subquery())))


def delete_expired(conn: sa.Connection, rule: RetentionRule, limit: int) -> int:
    """Delete up to `limit` jobs due under `rule`, oldest end first; how many were deleted.

    A job whose completion callback is still being delivered waits for a later pass: deleting it
    would drop the delivery. On PostgreSQL, rows another transaction holds (a callback attempt being
    recorded, another replica's pass) are skipped rather than waited for; SQLite has one writer, so
    there is nothing to skip and SQLAlchemy leaves the clause out."""
    picked = (
        sa.select(jobs.c.id)
        .where(
            jobs.c.status == rule.status.value,
            jobs.c.complete_us < rows.to_us(rule.before),
            jobs.c.callback_state.not_in(_UNSETTLED_CALLBACK),
        )
        .order_by(jobs.c.complete_us)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if rule.job_types:
        picked = picked.where(jobs.c.job_type.in_(sorted(rule.job_types)))
    if rule.except_types:
        picked = picked.where(jobs.c.job_type.not_in(sorted(rule.except_types)))
    ids = list(conn.execute(picked).scalars())
    if not ids:
        return 0
    deleted = conn.execute(
        sa.delete(jobs).where(jobs.c.id.in_(ids), jobs.c.status == rule.status.value).returning(jobs.c.id)
    )
    return len(deleted.all())
