"""Jobs may carry a queue timeout (schedule-to-start), and expire with stop reason QUEUE_TIMEOUT_EXCEEDED.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
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
)
_WITH_QUEUE_TIMEOUT = (*_STOP_REASONS, "QUEUE_TIMEOUT_EXCEEDED")


def _check(reasons: Sequence[str]) -> str:
    return "stop_reason IN (" + ", ".join(f"'{r}'" for r in reasons) + ")"


def upgrade() -> None:
    """Add the two nullable columns and their index; admit the new stop reason."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("queue_timeout_s", sa.Float(), nullable=True))
        batch.add_column(sa.Column("queue_expire_us", sa.BigInteger(), nullable=True))
        batch.drop_constraint(op.f("ck_jobs_stop_reason"), type_="check")
        batch.create_check_constraint("stop_reason", _check(_WITH_QUEUE_TIMEOUT))
    op.create_index("ix_jobs_queue_expire_us", "jobs", ["queue_expire_us"])


def downgrade() -> None:
    """Drop them (a job that expired this way is recorded as an ordinary deadline expiry)."""
    op.execute(
        "UPDATE jobs SET stop_reason = 'TIMEOUT_EXCEEDED' WHERE stop_reason = 'QUEUE_TIMEOUT_EXCEEDED'"
    )
    op.drop_index("ix_jobs_queue_expire_us", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(op.f("ck_jobs_stop_reason"), type_="check")
        batch.create_check_constraint("stop_reason", _check(_STOP_REASONS))
        batch.drop_column("queue_expire_us")
        batch.drop_column("queue_timeout_s")
