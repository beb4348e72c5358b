"""Completion callbacks: the outbox of deliveries, and each job's callback statuses and summary.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DUE = sa.text("state = 'PENDING'")


def upgrade() -> None:
    """Add the job columns (defaults for the jobs already there) and the outbox table."""
    op.add_column("jobs", sa.Column("callback_statuses", sa.String(), nullable=False, server_default=""))
    op.add_column("jobs", sa.Column("callback_state", sa.String(), nullable=False, server_default=""))
    op.add_column("jobs", sa.Column("callback_attempts", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("jobs", sa.Column("callback_error", sa.Text(), nullable=False, server_default=""))
    op.create_table(
        "callback_outbox",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.Column("next_attempt_us", sa.BigInteger(), nullable=False),
        sa.Column("lease_token", sa.String(), nullable=True),
        sa.Column("lease_expire_us", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.CheckConstraint(
            "state IN ('PENDING', 'DELIVERED', 'FAILED')", name=op.f("ck_callback_outbox_state")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_callback_outbox_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_outbox")),
    )
    op.create_index(
        op.f("ix_callback_outbox_due"),
        "callback_outbox",
        ["next_attempt_us"],
        sqlite_where=_DUE,
        postgresql_where=_DUE,
    )
    op.create_index(op.f("ix_callback_outbox_job_id"), "callback_outbox", ["job_id"])


def downgrade() -> None:
    """Drop them."""
    op.drop_table("callback_outbox")
    with op.batch_alter_table("jobs") as batch:
        for name in ("callback_statuses", "callback_state", "callback_attempts", "callback_error"):
            batch.drop_column(name)
