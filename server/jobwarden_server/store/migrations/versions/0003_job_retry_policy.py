"""Jobs carry their own retry backoff (NULL: the server's defaults).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = ("retry_initial_backoff_s", "retry_max_backoff_s", "retry_multiplier")


def upgrade() -> None:
    """Add the three nullable policy columns."""
    for name in _COLUMNS:
        op.add_column("jobs", sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("jobs") as batch:
        for name in _COLUMNS:
            batch.drop_column(name)
