"""Jobs keep the W3C trace context of their create call, which workers continue.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the columns; every existing job was created outside any trace ('')."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("traceparent", sa.String(), nullable=False, server_default=""))
        batch.add_column(sa.Column("tracestate", sa.String(), nullable=False, server_default=""))


def downgrade() -> None:
    """Drop them (jobs lose their trace context; workers then start a trace of their own)."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("tracestate")
        batch.drop_column("traceparent")
