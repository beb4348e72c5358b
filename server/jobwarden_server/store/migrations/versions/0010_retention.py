"""Deleting jobs: an index for retention by status and end time, and the request ids of deletes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the index and the table."""
    op.create_index("ix_jobs_status_complete_us", "jobs", ["status", "complete_us"])
    op.create_table(
        "job_deletions",
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("request_fingerprint", sa.String(), nullable=False),
        sa.Column("delete_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_job_deletions")),
    )
    op.create_index(
        "uq_job_deletions_owner_request_id", "job_deletions", ["owner", "request_id"], unique=True
    )
    op.create_index("ix_job_deletions_delete_us", "job_deletions", ["delete_us"])


def downgrade() -> None:
    """Drop them (retries of earlier deletes are then answered NOT_FOUND)."""
    op.drop_index("ix_job_deletions_delete_us", table_name="job_deletions")
    op.drop_index("uq_job_deletions_owner_request_id", table_name="job_deletions")
    op.drop_table("job_deletions")
    op.drop_index("ix_jobs_status_complete_us", table_name="jobs")
