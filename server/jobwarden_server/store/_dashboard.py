"""The dashboard's reads: grouped counts for queue statistics, a bounded count of a list's matches, and
jobs by id. Each is one indexed query whose answer is counts, never a scan handed to Python.

- depth: (owner, status) prefix of ix_jobs_owner_status_create_us_id, three statuses;
- arrivals: (owner, create_us) of ix_jobs_owner_create_us_id, the window's range;
- ends and departures: (status, complete_us) of ix_jobs_status_complete_us, the window's range, and
  the owner's RUNNING jobs through the owner/status index.

Bucket numbers and bounds are whole numbers we compute, written into the statement as literals: the
same expression must appear in SELECT and GROUP BY, and PostgreSQL does not see two bound parameters
of equal value as the same expression.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from jobwarden_server.domain import queue_charts
from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store import _rows as rows
from jobwarden_server.store._tables import jobs

_TERMINAL = sorted(s.value for s in JobStatus if s.terminal)
_UNFINISHED = sorted(s.value for s in JobStatus if not s.terminal)


def _int(value: int) -> sa.ColumnElement[int]:
    return sa.literal_column(str(int(value)), sa.BigInteger)


def _bucket(column: sa.ColumnElement[Any], window: queue_charts.StatsWindow) -> sa.ColumnElement[int]:
    start_us = rows.to_us(window.start)
    return (column - _int(start_us)) // _int(window.bucket_s * 1_000_000)


async def unfinished_counts(conn: AsyncConnection, owner: str | None) -> dict[tuple[str, JobStatus], int]:
    """Unfinished jobs per (job type, status), of one owner or (None) of every owner: the queues
    page's depth now, and the metrics' queue depth. Only rows of the three unfinished statuses are
    read (status leads the owner/status index and ix_jobs_status_lease_expire_us)."""
    query = (
        sa.select(jobs.c.job_type, jobs.c.status, sa.func.count())
        .where(jobs.c.status.in_(_UNFINISHED))
        .group_by(jobs.c.job_type, jobs.c.status)
    )
    if owner is not None:
        query = query.where(jobs.c.owner == owner)
    return {(job_type, JobStatus(status)): int(n) for job_type, status, n in await conn.execute(query)}


async def queue_counts(
    conn: AsyncConnection, owner: str, window: queue_charts.StatsWindow
) -> queue_charts.StatsCounts:
    """Grouped counts of the owner's jobs within `window` (see domain/queue_charts.py)."""
    start_us = _int(rows.to_us(window.start))
    end_us = _int(rows.to_us(window.end))
    mine = jobs.c.owner == owner
    arrival = _bucket(jobs.c.create_us, window)
    arrived_q = (
        sa.select(jobs.c.job_type, arrival, sa.func.count())
        .where(mine, jobs.c.create_us >= start_us, jobs.c.create_us < end_us)
        .group_by(jobs.c.job_type, arrival)
    )
    end = _bucket(jobs.c.complete_us, window)
    ended_in_window = sa.and_(
        jobs.c.status.in_(_TERMINAL), jobs.c.complete_us >= start_us, jobs.c.complete_us < end_us
    )
    ended_q = (
        sa.select(jobs.c.job_type, end, jobs.c.status, sa.func.count())
        .where(mine, ended_in_window)
        .group_by(jobs.c.job_type, end, jobs.c.status)
    )
    left_at = sa.func.coalesce(jobs.c.start_us, jobs.c.complete_us)
    departure = _bucket(left_at, window)
    left_q = (
        sa.select(jobs.c.job_type, departure, sa.func.count())
        .where(
            mine,
            sa.or_(ended_in_window, jobs.c.status == JobStatus.RUNNING.value),
            left_at >= start_us,
            left_at < end_us,
        )
        .group_by(jobs.c.job_type, departure)
    )
    depth = await unfinished_counts(conn, owner)
    arrived = {(r[0], int(r[1])): int(r[2]) for r in await conn.execute(arrived_q)}
    ended = {(r[0], int(r[1]), JobStatus(r[2])): int(r[3]) for r in await conn.execute(ended_q)}
    left = {(r[0], int(r[1])): int(r[2]) for r in await conn.execute(left_q)}
    return queue_charts.StatsCounts(depth=depth, arrived=arrived, left=left, ended=ended)


async def jobs_by_id(conn: AsyncConnection, job_ids: Sequence[str]) -> list[Job]:
    """The jobs of `job_ids` that exist, any owner (the caller filters)."""
    if not job_ids:
        return []
    query = sa.select(jobs).where(jobs.c.id.in_(sorted(set(job_ids))))
    return [rows.job_from_row(row) for row in (await conn.execute(query)).mappings()]


async def count_at_most(conn: AsyncConnection, matching: sa.Select[Any], limit: int) -> int:
    """How many rows `matching` selects, counting no further than `limit` (a bounded index walk)."""
    capped = matching.with_only_columns(jobs.c.id).order_by(None).limit(limit).subquery()
    return int((await conn.execute(sa.select(sa.func.count()).select_from(capped))).scalar_one())
