"""Stall detection and job statistics: when a job's progress last changed and when it was flagged
stalled, the stop reason STALLED, an index for the reaper's stall query and one for statistics across
owners.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STOP_REASONS = (
    "UNSPECIFIED",
    "USER_CANCELLED",
    "TIMEOUT_EXCEEDED",
    "RESOURCE_LIMIT_EXCEEDED",
    "VALIDATION_ERROR",
    "PROVIDER_ERROR",
    "INTERNAL_ERROR",
    "LEASE_EXPIRED",
    "MAX_ATTEMPTS_EXCEEDED",
    "QUEUE_TIMEOUT_EXCEEDED",
)
_WITH_STALLED = (*_STOP_REASONS, "STALLED")
_RUNNING = sa.text("status = 'RUNNING'")


def _check(reasons: Sequence[str]) -> str:
    return "stop_reason IN (" + ", ".join(f"'{r}'" for r in reasons) + ")"


def upgrade() -> None:
    """Add the columns (running jobs measure from their attempt's start), admit the stop reason, and
    add the indexes."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("progress_us", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("stall_us", sa.BigInteger(), nullable=True))
        batch.drop_constraint(op.f("ck_jobs_stop_reason"), type_="check")
        batch.create_check_constraint("stop_reason", _check(_WITH_STALLED))
    op.execute("UPDATE jobs SET progress_us = start_us WHERE start_us IS NOT NULL")
    op.create_index(
        "ix_jobs_running_job_type_progress_us",
        "jobs",
        ["job_type", "progress_us"],
        sqlite_where=_RUNNING,
        postgresql_where=_RUNNING,
    )
    op.create_index("ix_jobs_create_us", "jobs", ["create_us"])


def downgrade() -> None:
    """Drop them (a job failed for stalling is recorded as failed on its last attempt)."""
    op.execute("UPDATE jobs SET stop_reason = 'MAX_ATTEMPTS_EXCEEDED' WHERE stop_reason = 'STALLED'")
    op.drop_index("ix_jobs_create_us", table_name="jobs")
    op.drop_index("ix_jobs_running_job_type_progress_us", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_stop_reason"), type_="check")
        batch.create_check_constraint("stop_reason", _check(_STOP_REASONS))
        batch.drop_column("stall_us")
        batch.drop_column("progress_us")
