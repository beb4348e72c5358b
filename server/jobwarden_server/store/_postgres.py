"""What differs on PostgreSQL, each with its reason: the engine, the claim and the singleton lock.

(Cross-replica wake-ups, LISTEN/NOTIFY, are in _pg_notify.py.) Both need asyncpg, which only the
`postgres` extra installs: they are imported only once a postgresql:// database is configured (see
_open.require_postgres), so a server on SQLite starts without it.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from jobwarden_server.store import _claim as claim
from jobwarden_server.store import _create as create
from jobwarden_server.store import _pg_notify as pg_notify
from jobwarden_server.store import _rows as rows
from jobwarden_server.store import _tables as tables
from jobwarden_server.store._protocol import JobClaimParams
from jobwarden_server.store._sql import Dialect

# Taken (transaction-scoped) around migrations, so replicas starting together upgrade one at a time.
MIGRATION_LOCK_KEY = 0x6A6F6277  # "jobw"
# Singleton locks use the two-key form (this class, a hash of the name), a key space PostgreSQL keeps
# apart from the one-bigint form of the migration lock.
SINGLETON_LOCK_CLASS = 0x6A6F6273  # "jobs"
SINGLETON_IDLE_LIMIT = "60s"
"""A singleton holder idle in its transaction this long is cut off by the server, freeing the lock
even when its host vanished without closing the connection (the kernel may take hours to notice)."""

jobs = tables.jobs


def create_engine(url: sa.URL, *, pool_size: int, max_overflow: int = 0) -> AsyncEngine:
    """One engine for reads and writes: PostgreSQL runs many writers at once, so no split is needed.

    `max_overflow` is 0 by default so a replica never opens more than `pool_size` connections (plus
    the one its change feed LISTENs on); with several replicas, their sum must stay under the server's
    max_connections.
    """
    return create_async_engine(
        url,
        pool_size=max(1, pool_size),
        max_overflow=max_overflow,
        # A server restart or failover leaves dead connections in the pool; one cheap round trip at
        # checkout replaces them instead of failing the next request.
        pool_pre_ping=True,
    )


def claim_rows(conn: sa.Connection, params: JobClaimParams) -> Sequence[sa.RowMapping]:
    """Claim on PostgreSQL: one statement, `FOR UPDATE SKIP LOCKED` in a CTE feeding the UPDATE.

    Many replicas and connections claim at once. SKIP LOCKED lets each pass over rows another
    transaction is claiming instead of queueing behind it (or, under READ COMMITTED, re-checking and
    dropping them after the wait), so concurrent claimers get disjoint jobs without blocking. The
    locked rows are numbered and each takes its own lease token from a bound array, so tokens come
    from Python's CSPRNG and the claim stays one round trip.
    """
    binds = claim.claim_binds(params)
    binds["lease_tokens"] = [rows.new_lease_token() for _ in range(params.limit)]
    return list(conn.execute(_claim_statement(len(params.job_types)), binds).mappings())


@functools.cache
def _claim_statement(job_types: int) -> sa.Update:
    """The claim of `claim_rows` for this many job types, built once (values bound per call)."""
    picked = (
        sa.select(jobs.c.id)
        .where(*claim.claimable(job_types))
        .order_by(*claim.CLAIM_ORDER)
        .limit(sa.bindparam("p_limit"))
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    numbered = sa.select(picked.c.id, sa.func.row_number().over().label("n")).cte("numbered")
    tokens = sa.bindparam("lease_tokens", type_=postgresql.ARRAY(sa.String()))
    return (
        sa.update(jobs)
        .where(jobs.c.id == numbered.c.id)
        # Grouped: PostgreSQL parses `$1::VARCHAR[][n]` as a type, so the array needs parentheses.
        .values(claim.claim_values(sa.Grouping(tokens)[numbered.c.n]))
        .returning(*jobs.c)
    )


def singleton_key(name: str) -> int:
    """A stable 32-bit key for a lock name (crc32, as a signed int4)."""
    key = zlib.crc32(name.encode())
    return key - (1 << 32) if key >= 1 << 31 else key


async def try_singleton(conn: AsyncConnection, name: str) -> bool:
    """`pg_try_advisory_xact_lock`: never waits, and the transaction's end (or the session's) frees it.

    So one replica at a time does the named work; when it dies, the server drops its session and the
    lock with it, and the next replica to try takes over. No leader election of our own.
    """
    statement = sa.select(
        # Local to this transaction (the third argument), so the pooled connection keeps its defaults.
        sa.func.set_config("idle_in_transaction_session_timeout", SINGLETON_IDLE_LIMIT, True),
        sa.func.pg_try_advisory_xact_lock(SINGLETON_LOCK_CLASS, singleton_key(name)),
    )
    return bool((await conn.execute(statement)).one()[1])


def labels_match(labels: Mapping[str, str]) -> sa.ColumnElement[bool]:
    """Every label present with its value: one JSONB containment test, `labels @> '{...}'`.

    Exact for any key, and a GIN index on labels would serve it should label filters need one.
    """
    return sa.type_coerce(jobs.c.labels, postgresql.JSONB()).contains(dict(labels))


DIALECT = Dialect(
    claim_rows=claim_rows,
    insert_jobs=create.insert_statement(postgresql.insert),
    labels_match=labels_match,
    append_events=pg_notify.append_events,
    try_singleton=try_singleton,
    change_feed=pg_notify.PgChangeFeed,
)
