"""The reaper's deadline and queue-timeout indexes hold only the jobs it may act on.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06

`ix_jobs_deadline_us` and `ix_jobs_queue_expire_us` indexed every job, finished or not, with a
deadline or without. SQLite's planner preferred a status index for the reaper's "unfinished and past
its deadline" and "waiting and past its queue timeout" reads, so every tick read every unfinished job
and sorted them; and the deadline index could not have served alone, since finished jobs keep their
deadline. The new indexes are partial: unfinished jobs with a deadline, waiting jobs with a queue
timeout. A tick reads the due rows, and jobs with neither never enter them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DEADLINE_WHERE = sa.text("deadline_us IS NOT NULL AND status IN ('CREATED', 'QUEUED', 'RUNNING')")
_QUEUE_EXPIRE_WHERE = sa.text("queue_expire_us IS NOT NULL AND status IN ('CREATED', 'QUEUED')")


def upgrade() -> None:
    """Replace the two whole-table indexes with partial ones."""
    op.create_index(
        "ix_jobs_unfinished_deadline_us",
        "jobs",
        ["deadline_us"],
        sqlite_where=_DEADLINE_WHERE,
        postgresql_where=_DEADLINE_WHERE,
    )
    op.create_index(
        "ix_jobs_waiting_queue_expire_us",
        "jobs",
        ["queue_expire_us"],
        sqlite_where=_QUEUE_EXPIRE_WHERE,
        postgresql_where=_QUEUE_EXPIRE_WHERE,
    )
    op.drop_index("ix_jobs_deadline_us", table_name="jobs")
    op.drop_index("ix_jobs_queue_expire_us", table_name="jobs")


def downgrade() -> None:
    """Back to indexing every job."""
    op.create_index("ix_jobs_deadline_us", "jobs", ["deadline_us"])
    op.create_index("ix_jobs_queue_expire_us", "jobs", ["queue_expire_us"])
    op.drop_index("ix_jobs_waiting_queue_expire_us", table_name="jobs")
    op.drop_index("ix_jobs_unfinished_deadline_us", table_name="jobs")
