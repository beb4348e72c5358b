"""Initial schema: jobs, job_events, assets.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Written out in full rather than imported from store/_tables.py: a migration is a snapshot and must
not change when the tables module does. The conformance suite checks the two still agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

_STATUSES = "'CREATED', 'QUEUED', 'RUNNING', 'COMPLETED', 'PARTIAL', 'FAILED', 'CANCELLED', 'EXPIRED'"
_STOP_REASONS = (
    "'UNSPECIFIED', 'USER_CANCELLED', 'TIMEOUT_EXCEEDED', 'RESOURCE_LIMIT_EXCEEDED', 'VALIDATION_ERROR', "
    "'PROVIDER_ERROR', 'INTERNAL_ERROR', 'LEASE_EXPIRED', 'MAX_ATTEMPTS_EXCEEDED'"
)


def upgrade() -> None:
    """Create the three tables with their constraints and indexes."""
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("job_type", sa.String(), nullable=False),
        sa.Column("lifecycle", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("progress_percent", sa.Float(), nullable=False),
        sa.Column("progress_message", sa.Text(), nullable=False),
        sa.Column("progress_done", sa.BigInteger(), nullable=False),
        sa.Column("progress_total", sa.BigInteger(), nullable=False),
        sa.Column("parameters", _JSON, nullable=False),
        sa.Column("result", _JSON, nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("error_reason", sa.String(), nullable=True),
        sa.Column("error_retryable", sa.Boolean(), nullable=True),
        sa.Column("stop_reason", sa.String(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("labels", _JSON, nullable=False),
        sa.Column("run_after_us", sa.BigInteger(), nullable=True),
        sa.Column("deadline_us", sa.BigInteger(), nullable=True),
        sa.Column("callback_url", sa.Text(), nullable=False),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.Column("update_us", sa.BigInteger(), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=True),
        sa.Column("complete_us", sa.BigInteger(), nullable=True),
        sa.Column("worker_id", sa.String(), nullable=False),
        sa.Column("lease_token", sa.String(), nullable=True),
        sa.Column("lease_expire_us", sa.BigInteger(), nullable=True),
        sa.Column("lease_duration_s", sa.Float(), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("request_id", sa.String(), server_default="", nullable=False),
        sa.Column("request_fingerprint", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.CheckConstraint(f"status IN ({_STATUSES})", name=op.f("ck_jobs_status")),
        sa.CheckConstraint(f"stop_reason IN ({_STOP_REASONS})", name=op.f("ck_jobs_stop_reason")),
        sa.CheckConstraint(
            "progress_percent >= 0 AND progress_percent <= 100", name=op.f("ck_jobs_progress_percent")
        ),
    )
    op.create_index(
        op.f("ix_jobs_claimable"),
        "jobs",
        ["owner", "job_type", sa.text("priority DESC"), "create_us", "id"],
        sqlite_where=sa.text("status = 'QUEUED'"),
        postgresql_where=sa.text("status = 'QUEUED'"),
    )
    op.create_index(op.f("ix_jobs_owner_status_create_us_id"), "jobs", ["owner", "status", "create_us", "id"])
    op.create_index(op.f("ix_jobs_owner_create_us_id"), "jobs", ["owner", "create_us", "id"])
    op.create_index(op.f("ix_jobs_status_lease_expire_us"), "jobs", ["status", "lease_expire_us"])
    op.create_index(op.f("ix_jobs_deadline_us"), "jobs", ["deadline_us"])
    op.create_index(
        op.f("uq_jobs_owner_request_id"),
        "jobs",
        ["owner", "request_id"],
        unique=True,
        sqlite_where=sa.text("request_id <> ''"),
        postgresql_where=sa.text("request_id <> ''"),
    )

    op.create_table(
        "job_events",
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("data", _JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_job_events_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("job_id", "sequence", name=op.f("pk_job_events")),
    )

    op.create_table(
        "assets",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("job_id", sa.String(), nullable=False),
        sa.Column("owner", sa.String(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("asset_type", sa.String(), nullable=False),
        sa.Column("uri", sa.Text(), nullable=False),
        sa.Column("storage_path", sa.Text(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(), nullable=False),
        sa.Column("sha256", sa.String(), nullable=False),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("create_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_assets_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assets")),
    )
    op.create_index(op.f("ix_assets_job_id_position"), "assets", ["job_id", "position"], unique=True)
    op.create_index(op.f("ix_assets_owner_id"), "assets", ["owner", "id"])


def downgrade() -> None:
    """Drop everything (and every job with it)."""
    op.drop_table("assets")
    op.drop_table("job_events")
    op.drop_index(op.f("uq_jobs_owner_request_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_deadline_us"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_status_lease_expire_us"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_owner_create_us_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_owner_status_create_us_id"), table_name="jobs")
    op.drop_index(op.f("ix_jobs_claimable"), table_name="jobs")
    op.drop_table("jobs")
