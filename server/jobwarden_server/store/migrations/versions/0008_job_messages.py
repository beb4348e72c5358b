"""Jobs count the messages their workers attach (their log events).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the counter (0 for the jobs already there), then count any log events they have: none were
    written before this revision, so the UPDATE finds nothing to change, but the count is then right
    whatever the database holds."""
    op.add_column("jobs", sa.Column("message_count", sa.BigInteger(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE jobs SET message_count = "
        "(SELECT count(*) FROM job_events WHERE job_events.job_id = jobs.id AND job_events.kind = 'log') "
        "WHERE id IN (SELECT job_id FROM job_events WHERE kind = 'log')"
    )


def downgrade() -> None:
    """Drop the counter (the log events stay, as events of their jobs)."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("message_count")
