"""What differs on SQLite, each with its reason: engines, PRAGMAs, transactions and the claim."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool

from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store import _claim as claim
from jobwarden_server.store import _create as create
from jobwarden_server.store import _rows as rows
from jobwarden_server.store import _tables as tables
from jobwarden_server.store._prepared import Prepared, run_plain
from jobwarden_server.store._protocol import JobClaimParams
from jobwarden_server.store._sql import Dialect

DEFAULT_BUSY_TIMEOUT_MS = 5_000
# Writers queue in-process on the single write connection, so SQLite's busy handler only ever waits
# for other processes (a second server, a backup); this long is already an outage.

jobs = tables.jobs


def _url(path: str, driver: str = "sqlite+aiosqlite") -> sa.URL:
    return sa.URL.create(driver, database=path)


SYNCHRONOUS = ("NORMAL", "FULL")
"""What `synchronous` may be. In WAL mode both survive a crash of the process and neither can
corrupt the database. NORMAL (the default) syncs only at checkpoints, so a power loss or an OS crash
can take the last commits with it; FULL syncs the log at every commit, so an acknowledged change
survives those too, at the price of a disk sync per commit (on the single writer, so every write
waits for it)."""


def _pragmas(busy_timeout_ms: int, *, foreign_keys: bool, synchronous: str = "NORMAL") -> list[str]:
    if synchronous not in SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, not {synchronous!r}")
    return [
        # WAL: readers never block the writer nor the writer readers; one writer at a time remains.
        "PRAGMA journal_mode=WAL",
        # Wait this long for another connection's lock instead of failing at once with SQLITE_BUSY.
        f"PRAGMA busy_timeout={int(busy_timeout_ms)}",
        f"PRAGMA synchronous={synchronous}",
        # SQLite enforces foreign keys (and so ON DELETE CASCADE) only when asked, per connection.
        f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}",
    ]


def _configure(engine: AsyncEngine | sa.Engine, *, begin: str, pragmas: list[str]) -> None:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the sqlite3 module from issuing its own implicit BEGIN (it would be deferred, and only
        # before DML), so the `begin` hook below decides how every transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    def on_begin(connection: sa.Connection) -> None:
        run_plain(connection, begin)

    sync_engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    event.listen(sync_engine, "connect", on_connect)
    event.listen(sync_engine, "begin", on_begin)


def create_engines(
    path: str,
    *,
    read_pool_size: int,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    synchronous: str = "NORMAL",
) -> tuple[sa.Engine, AsyncEngine, AsyncEngine]:
    """The engine of the writer thread, a write engine for maintenance, and the read engine.

    Writes: one connection, BEGIN IMMEDIATE. SQLite has a single writer per database; a transaction
    that starts deferred and upgrades to a write lock later can fail with SQLITE_BUSY without waiting
    (the busy handler cannot help a reader that must upgrade), and several writer connections in
    one process would only fight over that lock. So the service's writes queue for the one
    connection the writer thread owns (_writes.WriteThread), plain pysqlite with no async layer, and
    IMMEDIATE takes the write lock at BEGIN, where busy_timeout can wait for other processes. The
    maintenance engine (tests, tools) connects only when used, and then waits its turn like another
    process would.

    Reads: a small pool with deferred BEGIN. Under WAL they see a consistent snapshot and never queue
    behind the writer.
    """
    write_pragmas = _pragmas(busy_timeout_ms, foreign_keys=True, synchronous=synchronous)
    thread_engine = sa.create_engine(_url(path, "sqlite+pysqlite"), pool_size=1, max_overflow=0)
    _configure(thread_engine, begin="BEGIN IMMEDIATE", pragmas=write_pragmas)
    writer = create_async_engine(
        _url(path), poolclass=AsyncAdaptedQueuePool, pool_size=1, max_overflow=0, pool_timeout=30
    )
    _configure(writer, begin="BEGIN IMMEDIATE", pragmas=write_pragmas)
    reader = create_async_engine(
        _url(path), poolclass=AsyncAdaptedQueuePool, pool_size=max(1, read_pool_size), max_overflow=0
    )
    _configure(reader, begin="BEGIN", pragmas=_pragmas(busy_timeout_ms, foreign_keys=True))
    return thread_engine, writer, reader


def create_migration_engine(path: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> AsyncEngine:
    """An engine for Alembic: IMMEDIATE so concurrent migrators queue, and foreign keys OFF.

    Foreign keys must be off while migrating: batch operations copy a table and drop the original,
    and with enforcement on, dropping `jobs` would cascade-delete every event and asset.
    """
    engine = create_async_engine(_url(path), poolclass=AsyncAdaptedQueuePool, pool_size=1, max_overflow=0)
    _configure(engine, begin="BEGIN IMMEDIATE", pragmas=_pragmas(busy_timeout_ms, foreign_keys=False))
    return engine


def claim_rows(conn: sa.Connection, params: JobClaimParams) -> Sequence[rows.Row]:
    """Claim on SQLite: pick the ids, then one UPDATE per id with its own token, each row read back.

    No row locking is needed (or available): the transaction began IMMEDIATE, so it holds the
    database's only write lock from the first statement, and no other connection or process can
    claim between the SELECT and the UPDATEs. Each job needs its own lease token, and the tokens come
    from Python's CSPRNG (`secrets`) like everywhere else, rather than from SQLite's randomblob(); an
    UPDATE per id binds its token as a plain parameter, one prepared statement for any claim size.
    Each claimed row is then read back by its key: cheaper than RETURNING, for which SQLite builds a
    temporary table per statement.
    """
    binds = claim.claim_binds(params)
    picked = _pick(len(params.job_types)).rows(conn, binds)
    claimed = []
    for pick in picked:
        taken = _TAKE.run(conn, binds | {"p_id": pick["id"], "p_lease_token": rows.new_lease_token()})
        if taken:  # always, under the write lock: the job was QUEUED a statement ago
            claimed.extend(_TAKEN.rows(conn, {"p_id": pick["id"]}))
    return claimed


@functools.cache
def _pick(job_types: int) -> Prepared:
    """The ids a claim takes, best first (see claim.claimable)."""
    return Prepared(
        sa.select(jobs.c.id)
        .where(*claim.claimable(job_types))
        .order_by(*claim.CLAIM_ORDER)
        .limit(sa.bindparam("p_limit"))
    )


_TAKE = Prepared(
    sa.update(jobs)
    .where(jobs.c.id == sa.bindparam("p_id"), jobs.c.status == JobStatus.QUEUED.value)
    .values(claim.claim_values(sa.bindparam("p_lease_token")))
)
"""One picked job moved to RUNNING under its own lease."""
_TAKEN = Prepared(sa.select(jobs).where(jobs.c.id == sa.bindparam("p_id")))
"""A job just taken, as it now stands."""


def labels_match(labels: Mapping[str, str]) -> sa.ColumnElement[bool]:
    """Every label present with its value, via json_each.

    Not `labels[key]` (JSON_EXTRACT with a path built from the key): keys holding a double quote,
    and non-ASCII keys (which SQLAlchemy escapes into the path as \\u sequences SQLite does not
    decode), would never match. json_each compares the stored key itself.
    """
    terms = []
    for key, value in sorted(labels.items()):
        label = sa.func.json_each(jobs.c.labels).table_valued("key", "value").alias("label")
        terms.append(sa.exists().where(label.c.key == key, label.c.value == value))
    return sa.and_(*terms)


DIALECT = Dialect(
    claim_rows=claim_rows, insert_jobs=create.insert_statement(sqlite.insert), labels_match=labels_match
)
