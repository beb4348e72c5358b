"""The schema as SQLAlchemy Core tables: the single source the store's queries are written against.

Migrations (store/migrations) spell the same schema out explicitly; a conformance test compares the
two, so a change here without a migration fails the suite.

Times are integer microseconds since the Unix epoch (UTC): exact, orderable and identical on SQLite
and PostgreSQL, where datetime columns differ (SQLite has no timezone-aware type at all).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from jobwarden_server.domain.status import JobStatus, StopReason

# Named constraints: SQLite's batch migrations recreate tables and can only carry over (or drop)
# constraints that have names, and stable names let the store recognise which constraint failed.
metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# JSONB on PostgreSQL: compact, comparable, and indexable should label filters ever need a GIN index.
# none_as_null: Python None is SQL NULL (a job without a result), not the JSON value `null`.
JSON_TYPE = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def _in_values(column: str, values: list[str]) -> str:
    quoted = ", ".join(f"'{v}'" for v in values)
    return f"{column} IN ({quoted})"


STATUS_CHECK = _in_values("status", [s.value for s in JobStatus])
STOP_REASON_CHECK = _in_values("stop_reason", [r.value for r in StopReason])
PROGRESS_CHECK = "progress_percent >= 0 AND progress_percent <= 100"
PROGRESS_CHECK_NAME = "progress_percent"
# The claim query repeats this predicate as a literal so both planners can prove the partial index
# applies (a bound parameter would hide it from SQLite, and from PostgreSQL's generic plans).
CLAIMABLE_WHERE = "status = 'QUEUED'"

BATCH_COUNT_COLUMNS = {status: f"batch_{status.value.lower()}" for status in JobStatus}
"""The column counting a parent's children in each status."""

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("owner", sa.String(), nullable=False),
    sa.Column("job_type", sa.String(), nullable=False),
    sa.Column("lifecycle", sa.String(), nullable=False),
    sa.Column("status", sa.String(), nullable=False),
    sa.Column("progress_percent", sa.Float(), nullable=False),
    sa.Column("progress_message", sa.Text(), nullable=False),
    sa.Column("progress_done", sa.BigInteger(), nullable=False),
    sa.Column("progress_total", sa.BigInteger(), nullable=False),
    sa.Column("parameters", JSON_TYPE, nullable=False),
    sa.Column("result", JSON_TYPE, nullable=True),
    sa.Column("error_message", sa.Text(), nullable=True),
    sa.Column("error_reason", sa.String(), nullable=True),
    sa.Column("error_retryable", sa.Boolean(), nullable=True),
    sa.Column("stop_reason", sa.String(), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("max_attempts", sa.Integer(), nullable=False),
    sa.Column("priority", sa.Integer(), nullable=False),
    sa.Column("labels", JSON_TYPE, nullable=False),
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
    sa.Column("request_id", sa.String(), nullable=False, server_default=""),
    sa.Column("request_fingerprint", sa.String(), nullable=False),
    # The job's own retry backoff; NULL takes the server's defaults (see domain.retry.RetryPolicy).
    sa.Column("retry_initial_backoff_s", sa.Float(), nullable=True),
    sa.Column("retry_max_backoff_s", sa.Float(), nullable=True),
    sa.Column("retry_multiplier", sa.Float(), nullable=True),
    # Completion callback: which terminal statuses fire it (comma-separated; '' = all), and a summary
    # of its delivery (callback_outbox holds the delivery itself).
    sa.Column("callback_statuses", sa.String(), nullable=False, server_default=""),
    sa.Column("callback_state", sa.String(), nullable=False, server_default=""),
    sa.Column("callback_attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("callback_error", sa.Text(), nullable=False, server_default=""),
    # Schedule-to-start: the job's queue timeout (NULL: none), and while it waits, when it expires.
    sa.Column("queue_timeout_s", sa.Float(), nullable=True),
    sa.Column("queue_expire_us", sa.BigInteger(), nullable=True),
    # Batches: a child names its parent; a parent has its children's total (NULL: not a parent) and
    # their count per status (batch_<status>), kept in step by store/_batches.py.
    sa.Column("parent_id", sa.String(), nullable=True),
    sa.Column("batch_total", sa.Integer(), nullable=True),
    *(
        sa.Column(column, sa.Integer(), nullable=False, server_default="0")
        for column in BATCH_COUNT_COLUMNS.values()
    ),
    # Messages its workers attached: the number of its LOG events, kept with them by the same write.
    sa.Column("message_count", sa.BigInteger(), nullable=False, server_default="0"),
    # The job an admin's RetryJob ran again ('' for none): migration 0009.
    sa.Column("retry_of", sa.String(), nullable=False, server_default=""),
    # The W3C trace context of its create call ('' for none; at most 55 and 512 characters, checked by
    # domain/trace.py before it is stored): migration 0012_trace.
    sa.Column("traceparent", sa.String(), nullable=False, server_default=""),
    sa.Column("tracestate", sa.String(), nullable=False, server_default=""),
    # Stall detection (migration 0011): when the current attempt's progress last changed (set by the
    # claim and by every progress change), and when the attempt was flagged stalled (NULL: it is not).
    sa.Column("progress_us", sa.BigInteger(), nullable=True),
    sa.Column("stall_us", sa.BigInteger(), nullable=True),
    sa.CheckConstraint(STATUS_CHECK, name="status"),
    sa.CheckConstraint(STOP_REASON_CHECK, name="stop_reason"),
    sa.CheckConstraint(PROGRESS_CHECK, name=PROGRESS_CHECK_NAME),
)

# Claiming: only QUEUED rows, in the claim's order, so the index stays small however long the history.
# SQLite's reflection does not carry `DESC`, so a batch migration that recreates `jobs` rebuilds this
# index ascending (0013 repaired that): such a migration must create it again after the batch. The
# schema test checks the direction on both databases.
sa.Index(
    "ix_jobs_claimable",
    jobs.c.owner,
    jobs.c.job_type,
    jobs.c.priority.desc(),
    jobs.c.create_us,
    jobs.c.id,
    sqlite_where=sa.text(CLAIMABLE_WHERE),
    postgresql_where=sa.text(CLAIMABLE_WHERE),
)
# Listing: keyset pages on (create_us, id) within an owner, with or without a status filter.
sa.Index("ix_jobs_owner_status_create_us_id", jobs.c.owner, jobs.c.status, jobs.c.create_us, jobs.c.id)
sa.Index("ix_jobs_owner_create_us_id", jobs.c.owner, jobs.c.create_us, jobs.c.id)
# A batch's children, in the order they were given (their ids sort in that order: store/_batches.py).
sa.Index("ix_jobs_owner_parent_id_create_us_id", jobs.c.owner, jobs.c.parent_id, jobs.c.create_us, jobs.c.id)
# Reaping: expired leases; passed deadlines of unfinished jobs; passed queue timeouts of waiting jobs.
sa.Index("ix_jobs_status_lease_expire_us", jobs.c.status, jobs.c.lease_expire_us)
# The deadline and queue-timeout indexes hold only the jobs the reaper may still act on (a finished job
# keeps its deadline_us, and most jobs have neither), so a tick reads the due rows, not the whole queue
# or history, and a claim or a completion of a job without them touches neither index. The reaper's
# queries repeat the status terms literally (store/_sql.py `due_queries`): SQLite uses a partial
# index only for a query whose WHERE holds the index's own terms.
UNFINISHED_WHERE = "status IN ('CREATED', 'QUEUED', 'RUNNING')"
WAITING_WHERE = "status IN ('CREATED', 'QUEUED')"
_DEADLINE_WHERE = f"deadline_us IS NOT NULL AND {UNFINISHED_WHERE}"
_QUEUE_EXPIRE_WHERE = f"queue_expire_us IS NOT NULL AND {WAITING_WHERE}"
sa.Index(
    "ix_jobs_unfinished_deadline_us",
    jobs.c.deadline_us,
    sqlite_where=sa.text(_DEADLINE_WHERE),
    postgresql_where=sa.text(_DEADLINE_WHERE),
)
sa.Index(
    "ix_jobs_waiting_queue_expire_us",
    jobs.c.queue_expire_us,
    sqlite_where=sa.text(_QUEUE_EXPIRE_WHERE),
    postgresql_where=sa.text(_QUEUE_EXPIRE_WHERE),
)
# AIP-155 idempotency: a request_id names one job per owner; the empty string means "none given".
REQUEST_ID_INDEX = "uq_jobs_owner_request_id"
REQUEST_ID_WHERE = "request_id <> ''"
"""The unique index's predicate; an INSERT ... ON CONFLICT naming the index must repeat it."""
sa.Index(
    REQUEST_ID_INDEX,
    jobs.c.owner,
    jobs.c.request_id,
    unique=True,
    sqlite_where=sa.text(REQUEST_ID_WHERE),
    postgresql_where=sa.text(REQUEST_ID_WHERE),
)

job_events = sa.Table(
    "job_events",
    metadata,
    sa.Column("job_id", sa.String(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("sequence", sa.BigInteger(), primary_key=True),
    sa.Column("owner", sa.String(), nullable=False),
    sa.Column("create_us", sa.BigInteger(), nullable=False),
    sa.Column("actor", sa.String(), nullable=False),
    sa.Column("kind", sa.String(), nullable=False),
    sa.Column("data", JSON_TYPE, nullable=False),
    # The request_id of the call that made the event ('' if none): finds a retried call's first outcome.
    sa.Column("request_id", sa.String(), nullable=False, server_default=""),
)
sa.Index("ix_job_events_job_id_request_id", job_events.c.job_id, job_events.c.request_id)
# A retried ClaimJobs finds what the first call claimed, across jobs the caller does not know yet.
sa.Index(
    "ix_job_events_owner_request_id",
    job_events.c.owner,
    job_events.c.request_id,
    sqlite_where=sa.text("request_id <> ''"),
    postgresql_where=sa.text("request_id <> ''"),
)

assets = sa.Table(
    "assets",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("job_id", sa.String(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("owner", sa.String(), nullable=False),
    # The sequence of the asset's asset_added event: assets order and page by it.
    sa.Column("position", sa.BigInteger(), nullable=False),
    sa.Column("asset_type", sa.String(), nullable=False),
    sa.Column("uri", sa.Text(), nullable=False),
    sa.Column("storage_path", sa.Text(), nullable=False),
    sa.Column("size_bytes", sa.BigInteger(), nullable=False),
    sa.Column("content_type", sa.String(), nullable=False),
    sa.Column("sha256", sa.String(), nullable=False),
    sa.Column("metadata", JSON_TYPE, nullable=False),
    sa.Column("create_us", sa.BigInteger(), nullable=False),
)

sa.Index("ix_assets_job_id_position", assets.c.job_id, assets.c.position, unique=True)
sa.Index("ix_assets_owner_id", assets.c.owner, assets.c.id)

# The outbox of completion callbacks: a row is written in the transaction that ends a job whose
# callback fires, so no delivery is lost to a crash; the dispatcher (service/callbacks.py) claims due
# rows under a lease, sends them, and records each attempt. `id` is the webhook-id of the delivery.
OUTBOX_PENDING = "PENDING"
OUTBOX_DUE_WHERE = "state = 'PENDING'"
callback_outbox = sa.Table(
    "callback_outbox",
    metadata,
    sa.Column("id", sa.String(), primary_key=True),
    sa.Column("job_id", sa.String(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("owner", sa.String(), nullable=False),
    sa.Column("url", sa.Text(), nullable=False),
    # The exact body, fixed when the job ended: every attempt signs and sends the same bytes.
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("state", sa.String(), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("create_us", sa.BigInteger(), nullable=False),
    sa.Column("next_attempt_us", sa.BigInteger(), nullable=False),
    sa.Column("lease_token", sa.String(), nullable=True),
    sa.Column("lease_expire_us", sa.BigInteger(), nullable=True),
    sa.Column("last_error", sa.Text(), nullable=False),
    sa.CheckConstraint("state IN ('PENDING', 'DELIVERED', 'FAILED')", name="state"),
)
# Finding due deliveries: only undelivered rows, so the index stays small however long the history.
sa.Index(
    "ix_callback_outbox_due",
    callback_outbox.c.next_attempt_us,
    sqlite_where=sa.text(OUTBOX_DUE_WHERE),
    postgresql_where=sa.text(OUTBOX_DUE_WHERE),
)
sa.Index("ix_callback_outbox_job_id", callback_outbox.c.job_id)

# Stall detection: running jobs of a type by when their progress last changed (the reaper's query).
# Only RUNNING rows, so it stays as small as the work in flight.
RUNNING_WHERE = "status = 'RUNNING'"
sa.Index(
    "ix_jobs_running_job_type_progress_us",
    jobs.c.job_type,
    jobs.c.progress_us,
    sqlite_where=sa.text(RUNNING_WHERE),
    postgresql_where=sa.text(RUNNING_WHERE),
)
# Statistics across every owner (GetJobStats with all_owners): jobs created in a window. create_us
# never changes, so updates never touch this index.
sa.Index("ix_jobs_create_us", jobs.c.create_us)

# Retention: finished jobs by status, oldest end first (the retention loop's query).
sa.Index("ix_jobs_status_complete_us", jobs.c.status, jobs.c.complete_us)

# A DeleteJob's request_id, kept for a while after its job is gone (the job's events, which answer
# other calls' retries, went with it), so a retried delete is answered as the first one was.
job_deletions = sa.Table(
    "job_deletions",
    metadata,
    sa.Column("job_id", sa.String(), primary_key=True),
    sa.Column("owner", sa.String(), nullable=False),
    sa.Column("request_id", sa.String(), nullable=False),
    sa.Column("request_fingerprint", sa.String(), nullable=False),
    sa.Column("delete_us", sa.BigInteger(), nullable=False),
)
sa.Index("uq_job_deletions_owner_request_id", job_deletions.c.owner, job_deletions.c.request_id, unique=True)
sa.Index("ix_job_deletions_delete_us", job_deletions.c.delete_us)
