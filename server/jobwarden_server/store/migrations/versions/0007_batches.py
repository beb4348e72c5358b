"""Batches: a child names its parent; a parent counts its children by status.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES = ("created", "queued", "running", "completed", "partial", "failed", "cancelled", "expired")
_INDEX = "ix_jobs_owner_parent_id_create_us_id"


def upgrade() -> None:
    """Add the columns (every existing job is neither child nor parent) and the children's index."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(), nullable=True))
        batch.add_column(sa.Column("batch_total", sa.Integer(), nullable=True))
        for status in _STATUSES:
            batch.add_column(sa.Column(f"batch_{status}", sa.Integer(), nullable=False, server_default="0"))
    op.create_index(_INDEX, "jobs", ["owner", "parent_id", "create_us", "id"])


def downgrade() -> None:
    """Drop them (parents and children stay, as plain jobs)."""
    op.drop_index(_INDEX, table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        for status in reversed(_STATUSES):
            batch.drop_column(f"batch_{status}")
        batch.drop_column("batch_total")
        batch.drop_column("parent_id")
