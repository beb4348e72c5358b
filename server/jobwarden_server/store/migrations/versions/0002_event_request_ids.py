"""Job events remember the request_id of the call that made them.

A retried worker or cancel call (same request_id) after an ambiguous failure is answered with the
first outcome instead of an error: the service finds the earlier call's event by this column.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add job_events.request_id ('' for events not made by an identified request) and its index."""
    op.add_column("job_events", sa.Column("request_id", sa.String(), nullable=False, server_default=""))
    op.create_index("ix_job_events_job_id_request_id", "job_events", ["job_id", "request_id"])


def downgrade() -> None:
    """Drop the column and its index."""
    op.drop_index("ix_job_events_job_id_request_id", table_name="job_events")
    with op.batch_alter_table("job_events") as batch:
        batch.drop_column("request_id")
