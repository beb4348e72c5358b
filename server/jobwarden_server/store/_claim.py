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

ClaimRows = Callable[[sa.Connection, JobClaimParams], Sequence[rows.Row]]
"""A dialect's claim: moves the chosen QUEUED rows to RUNNING and returns them (any order)."""

CLAIM_ORDER: tuple[sa.ColumnElement[Any], ...] = (jobs.c.priority.desc(), jobs.c.create_us, jobs.c.id)
"""Best first: highest priority, then oldest, then id so the order is total."""


# The claim's statements are built once per number of job types, their values bound at each call
# (claim_binds): building a statement costs more CPU than SQLite takes to run it.
_NOW = sa.bindparam("p_now", type_=sa.BigInteger())


def claimable(job_types: int) -> list[sa.ColumnElement[bool]]:
    """WHERE terms for the jobs a claim may take: the caller's QUEUED jobs of its types, due now
    (`job_types` of them, bound as p_type_<i>)."""
    return [
        # A literal, not a parameter, so the planner can prove the partial index ix_jobs_claimable
        # applies (SQLite never matches a bound parameter against an index's WHERE).
        jobs.c.status == sa.literal_column(f"'{JobStatus.QUEUED.value}'"),
        jobs.c.owner == sa.bindparam("p_owner"),
        jobs.c.job_type.in_([sa.bindparam(f"p_type_{i}") for i in range(job_types)]),
        sa.or_(jobs.c.run_after_us.is_(None), jobs.c.run_after_us <= _NOW),
        # A job past its deadline is the reaper's (it becomes EXPIRED), never a worker's.
        sa.or_(jobs.c.deadline_us.is_(None), jobs.c.deadline_us > _NOW),
        # A batch's parent is the server's to drive (from its children), never a worker's.
        jobs.c.batch_total.is_(None),
    ]


def claim_values(lease_token: sa.ColumnElement[Any]) -> dict[str, Any]:
    """The SET clause of a claim; `lease_token` is the dialect's per-row token expression."""
    return {
        "status": JobStatus.RUNNING.value,
        "attempt": jobs.c.attempt + 1,
        "start_us": _NOW,
        # A new attempt: stall detection measures from its start, unflagged.
        "progress_us": _NOW,
        "stall_us": None,
        "worker_id": sa.bindparam("p_worker_id"),
        "lease_token": lease_token,
        "lease_expire_us": sa.bindparam("p_lease_expire_us", type_=sa.BigInteger()),
        "lease_duration_s": sa.bindparam("p_lease_duration_s", type_=sa.Float()),
        "version": jobs.c.version + 1,
        "last_sequence": jobs.c.last_sequence + 1,
        "update_us": _NOW,
    }


def claim_binds(params: JobClaimParams) -> dict[str, Any]:
    """The values `claimable` and `claim_values` take for this claim (and its LIMIT, p_limit)."""
    now_us = rows.to_us(params.now)
    return {
        "p_owner": params.owner,
        **{f"p_type_{i}": job_type for i, job_type in enumerate(sorted(params.job_types))},
        "p_now": now_us,
        "p_limit": params.limit,
        "p_worker_id": params.worker_id,
        "p_lease_expire_us": now_us + round(params.lease_duration_s * 1_000_000),
        "p_lease_duration_s": params.lease_duration_s,
    }


def sort_claimed(claimed: Sequence[rows.Row]) -> list[rows.Row]:
    """RETURNING gives no order; hand jobs back best first, as the claim chose them."""
    return sorted(claimed, key=lambda r: (-r["priority"], r["create_us"], r["id"]))


def claim_event_row(row: rows.Row, params: JobClaimParams) -> dict[str, Any]:
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
