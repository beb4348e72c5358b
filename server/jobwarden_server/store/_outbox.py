"""The callback outbox: written with the change that ends a job, claimed and settled by the dispatcher.

`enqueue` runs inside the job's compare-and-set unit (SqlStore._update, the one place a job changes
with its events), so the row commits or rolls back with the terminal transition itself: a crash can
lose neither, and a job never gets two rows for one ending. `claim` leases due rows: PostgreSQL
skips rows another replica's claim holds (`FOR UPDATE SKIP LOCKED`), SQLite's single writer needs
no such clause; the lease then keeps other replicas off a row while its attempt is in flight, and
hands it over once the lease runs out (its server died). `record` settles one attempt under that
lease: outbox row, job summary and the job's callback_attempt event in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from jobwarden_server.domain import decisions, webhooks
from jobwarden_server.domain.changes import NewEvent
from jobwarden_server.domain.records import CallbackState, EventKind
from jobwarden_server.store import _rows as rows
from jobwarden_server.store import _tables as tables
from jobwarden_server.store._protocol import (
    CallbackAttemptParams,
    CallbackClaimParams,
    CallbackDelivery,
)

jobs, outbox = tables.jobs, tables.callback_outbox


_INSERT = sa.insert(outbox)
_MARK_PENDING = (
    sa.update(jobs)
    .where(jobs.c.id == sa.bindparam("p_job_id"))
    .values(callback_state=CallbackState.PENDING.value)
)


def enqueue(conn: sa.Connection, job_row: rows.Row, now_us: int) -> rows.Row:
    """Write the outbox row of a job that just ended, if its callback fires for how it ended; the
    job row as it now stands (its callback_state PENDING when a row was written)."""
    if not job_row["callback_url"]:
        return job_row  # most jobs: no callback, nothing more to build
    job = rows.job_from_row(job_row)
    if not webhooks.fires(job):
        return job_row
    conn.execute(
        _INSERT,
        {
            "id": f"msg_{uuid.uuid4().hex}",
            "job_id": job.id,
            "owner": job.owner,
            "url": job.callback_url,
            "body": webhooks.payload(job),
            "state": tables.OUTBOX_PENDING,
            "attempts": 0,
            "create_us": now_us,
            "next_attempt_us": now_us,
            "lease_token": None,
            "lease_expire_us": None,
            "last_error": "",
        },
    )
    conn.execute(_MARK_PENDING, {"p_job_id": job.id})
    return {**job_row, "callback_state": CallbackState.PENDING.value}


def _due(now_us: int) -> tuple[sa.ColumnElement[bool], ...]:
    """Undelivered, due, and not leased (or its lease ran out: its claimer died or stalled)."""
    return (
        outbox.c.state == tables.OUTBOX_PENDING,
        outbox.c.next_attempt_us <= now_us,
        sa.or_(outbox.c.lease_expire_us.is_(None), outbox.c.lease_expire_us < now_us),
    )


def any_due(now_us: int) -> sa.Select[tuple[str]]:
    """Whether a delivery is due: read first, so an idle poll costs a read, not a write transaction
    (on SQLite, a turn of the single writer)."""
    return sa.select(outbox.c.id).where(*_due(now_us)).limit(1)


def claim(conn: sa.Connection, params: CallbackClaimParams) -> list[CallbackDelivery]:
    """Lease up to `limit` due deliveries (oldest due first) to the caller."""
    now_us = rows.to_us(params.now)
    due = sa.select(outbox.c.id).where(*_due(now_us)).order_by(outbox.c.next_attempt_us).limit(params.limit)
    if conn.dialect.name == "postgresql":
        # Concurrent claims on other replicas pass over the rows this one is taking instead of
        # waiting for them; the lease below then keeps them off while the attempt runs.
        due = due.with_for_update(skip_locked=True)
    token = rows.new_lease_token()
    statement = (
        sa.update(outbox)
        .where(outbox.c.id.in_(due.scalar_subquery()))
        .values(lease_token=token, lease_expire_us=now_us + int(params.lease_s * 1_000_000))
        .returning(*outbox.c)
    )
    return [
        CallbackDelivery(
            id=row["id"],
            job_id=row["job_id"],
            owner=row["owner"],
            url=row["url"],
            body=row["body"],
            attempts=row["attempts"],
            create_time=rows.from_us(row["create_us"]),
            lease_token=token,
        )
        for row in conn.execute(statement).mappings()
    ]


def record(
    conn: sa.Connection,
    params: CallbackAttemptParams,
    append_events: Callable[[sa.Connection, Sequence[Mapping[str, Any]]], None],
) -> tuple[rows.Row, list[dict[str, Any]]] | None:
    """Settle one attempt under the caller's lease: the outbox row (retry due at next_attempt_time, or
    done), the job's callback summary and its callback_attempt event. None if the lease was lost."""
    now_us = rows.to_us(params.now)
    settled = params.state in (CallbackState.DELIVERED, CallbackState.FAILED)
    next_us = now_us if params.next_attempt_time is None else rows.to_us(params.next_attempt_time)
    found = conn.execute(
        sa.update(outbox)
        .where(
            outbox.c.id == params.delivery_id,
            outbox.c.lease_token == params.lease_token,
            outbox.c.state == tables.OUTBOX_PENDING,
        )
        .values(
            state=params.state.value if settled else tables.OUTBOX_PENDING,
            attempts=outbox.c.attempts + 1,
            next_attempt_us=next_us,
            lease_token=None,
            lease_expire_us=None,
            last_error=params.error,
        )
        .returning(outbox.c.job_id, outbox.c.attempts)
    ).one_or_none()
    if found is None:
        return None
    job_id, attempts = found
    job_row = (
        conn.execute(
            sa.update(jobs)
            .where(jobs.c.id == job_id)
            .values(
                callback_state=params.state.value,
                callback_attempts=attempts,
                callback_error=params.error,
                version=jobs.c.version + 1,
                last_sequence=jobs.c.last_sequence + 1,
                update_us=now_us,
            )
            .returning(*jobs.c)
        )
        .mappings()
        .one()
    )
    data: dict[str, Any] = {
        "webhook_id": params.delivery_id,
        "attempt": attempts,
        "http_status": params.http_status,
        "error": params.error,
        "duration_s": params.duration_s,
        "state": params.state.value,
        "next_attempt_us": None if settled else next_us,
    }
    event_rows = rows.event_rows(
        job_row, [NewEvent(kind=EventKind.CALLBACK_ATTEMPT, actor=decisions.SYSTEM, data=data)], now_us
    )
    append_events(conn, event_rows)
    return job_row, event_rows
