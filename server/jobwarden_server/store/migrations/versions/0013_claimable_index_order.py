"""The claim index sorts priority DESC again on SQLite.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

0001 created `ix_jobs_claimable` on (owner, job_type, priority DESC, create_us, id). On SQLite, the
batch migrations that recreated `jobs` since then rebuilt it from reflection, which does not carry an
index column's direction, so it came back as `priority` ascending. The claim orders by priority DESC,
create_us, id: with the index ascending SQLite could use it for priority only and sorted every queued
job of the type for each claim (a temporary B-tree per claim, growing with the queue). PostgreSQL
never recreates the table; its index is already right and is left alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS: list[str | sa.TextClause] = ["owner", "job_type", sa.text("priority DESC"), "create_us", "id"]
_WHERE = sa.text("status = 'QUEUED'")


def upgrade() -> None:
    """Rebuild the index in the claim's order (SQLite only)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("ix_jobs_claimable", table_name="jobs")
    op.create_index("ix_jobs_claimable", "jobs", _COLUMNS, sqlite_where=_WHERE)


def downgrade() -> None:
    """Nothing to undo: the index 0012 left was a mistake, and the right one serves every revision."""
