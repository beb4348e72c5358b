"""The parts of claiming both dialects share: which jobs qualify, their order, and what a claim sets.

How the rows are picked and locked differs per dialect and lives in _sqlite.py and _postgres.py; this
module keeps the two from drifting apart on *what* a claim means.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from jobwarden_server.domain.records import EventKind
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.store import _rows as rows
from jobwarden_server.store import _tables as tables
from jobwarden_server.store._protocol import JobClaimParams

jobs = tables.jobs

ClaimRows = Callable[[sa.Connection, JobClaimParams], Sequence[sa.RowMapping]]
"""A dialect's claim: moves the chosen QUEUED rows to RUNNING and returns them (any order)."""

CLAIM_ORDER: tuple[sa.ColumnElement[Any], ...] = (jobs.c.priority.desc(), jobs.c.create_us, jobs.c.id)
"""Best first: highest priority, then oldest, then id so the order is total."""


def claimable(params: JobClaimParams) -> list[sa.ColumnElement[bool]]:
    """WHERE terms for the jobs a claim may take: the caller's QUEUED jobs of its types, due now."""
    now_us = rows.to_us(params.now)
    return [
        # A literal, not a parameter, so the planner can prove the partial index ix_jobs_claimable
        # applies (SQLite never matches a bound parameter against an index's WHERE).
        jobs.c.status == sa.literal_column(f"'{JobStatus.QUEUED.value}'"),
        jobs.c.owner == params.owner,
        jobs.c.job_type.in_(sorted(params.job_types)),
        sa.or_(jobs.c.run_after_us.is_(None), jobs.c.run_after_us <= now_us),
        # A job past its deadline is the reaper's (it becomes EXPIRED), never a worker's.
        sa.or_(jobs.c.deadline_us.is_(None), jobs.c.deadline_us > now_us),
        # A batch's parent is the server's to drive (from its children), never a worker's.
        jobs.c.batch_total.is_(None),
    ]


def claim_values(params: JobClaimParams, lease_token: sa.ColumnElement[Any]) -> dict[str, Any]:
    """The SET clause of a claim; `lease_token` is the dialect's per-row token expression."""
    now_us = rows.to_us(params.now)
    return {
        "status": JobStatus.RUNNING.value,
        "attempt": jobs.c.attempt + 1,
        "start_us": now_us,
        # A new attempt: stall detection measures from its start, unflagged.
        "progress_us": now_us,
        "stall_us": None,
        "worker_id": params.worker_id,
        "lease_token": lease_token,
        "lease_expire_us": now_us + round(params.lease_duration_s * 1_000_000),
        "lease_duration_s": params.lease_duration_s,
        "version": jobs.c.version + 1,
        "last_sequence": jobs.c.last_sequence + 1,
        "update_us": now_us,
    }


def sort_claimed(claimed: Sequence[sa.RowMapping]) -> list[sa.RowMapping]:
    """RETURNING gives no order; hand jobs back best first, as the claim chose them."""
    return sorted(claimed, key=lambda r: (-r["priority"], r["create_us"], r["id"]))


def claim_event_row(row: sa.RowMapping, params: JobClaimParams) -> dict[str, Any]:
    """The QUEUED -> RUNNING event of one claimed row (whose last_sequence the claim already bumped)."""
    return {
        "job_id": row["id"],
        "sequence": row["last_sequence"],
        "owner": row["owner"],
        "create_us": row["update_us"],
        "actor": f"worker:{params.worker_id}",
        "kind": EventKind.TRANSITION.value,
        "data": {
            "from": JobStatus.QUEUED.value,
            "to": JobStatus.RUNNING.value,
            "reason": f"claimed by worker {params.worker_id} (attempt {row['attempt']})",
            "stop_reason": StopReason.UNSPECIFIED.value,
            **({"request_fingerprint": params.request_fingerprint} if params.request_id else {}),
        },
        "request_id": params.request_id,
    }
