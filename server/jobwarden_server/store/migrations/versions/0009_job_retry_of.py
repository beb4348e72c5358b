"""Jobs may run an ended job again (AdminService.RetryJob): the new job names the old one.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the column; every existing job runs nothing again ('')."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("retry_of", sa.String(), nullable=False, server_default=""))


def downgrade() -> None:
    """Drop it (the link between a job and its rerun is lost; both jobs stay)."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("retry_of")
