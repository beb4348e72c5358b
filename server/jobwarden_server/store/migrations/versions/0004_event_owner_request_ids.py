"""Find the claim events of a retried ClaimJobs by the owner and request_id alone.

A claim spans jobs the caller does not know yet, so the per-job index of 0002 cannot serve it. Partial:
most events carry no request_id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INDEX = "ix_job_events_owner_request_id"
_WHERE = sa.text("request_id <> ''")


def upgrade() -> None:
    """Add the partial index."""
    op.create_index(
        _INDEX, "job_events", ["owner", "request_id"], sqlite_where=_WHERE, postgresql_where=_WHERE
    )


def downgrade() -> None:
    """Drop it."""
    op.drop_index(_INDEX, table_name="job_events")
