"""Wake-ups across replicas on PostgreSQL: NOTIFY inside each write transaction, LISTEN on one connection.

A write that appends events sends `job_id:sequence` (the job's newest sequence) on EVENTS_CHANNEL, and
one that makes a job QUEUED sends an empty payload on WORK_CHANNEL. The notifications ride in the
writing transaction, so PostgreSQL delivers them exactly when it commits and never for a rollback: a
replica that crashes right after committing cannot lose the wake-up the way a NOTIFY sent after the
commit could. They carry no event bodies: listeners re-read the events table, which stays the record.
A write's events are inserted by the same statement that sends their notifications (`append_events`).

Each replica listens on one connection of its own (detached from the pool, so it never counts against
`pool_size`). When that connection is lost, notifications sent meanwhile are gone, so after every
(re)connection the sink is told to resync: every watcher re-reads the table and every claimer re-checks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

import asyncpg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine

from jobwarden_server.store import _tables as tables
from jobwarden_server.store._feed import ChangeSink
from jobwarden_server.store._prepared import Prepared

logger = logging.getLogger(__name__)

EVENTS_CHANNEL = "jobwarden_events"
WORK_CHANNEL = "jobwarden_work"
LISTENER_NAME = "jobwarden-listener"
"""application_name of the listening connection, so operators can tell it apart in pg_stat_activity."""

PING_INTERVAL_S = 5.0
"""How often an idle listening connection is checked: a half-open TCP connection never reports itself."""
PING_TIMEOUT_S = 5.0
INITIAL_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0

# What an unreachable, restarting or cut-off database looks like from here: expected, so logged
# without a traceback (anything else is logged in full, and the listener carries on all the same).
_CONNECTION_ERRORS = (OSError, sa_exc.SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError)

# One round trip for any number of notifications: unnest pairs each channel with its payload, and
# pg_notify is called in that order. Run prepared (store/_prepared.py): every write that appends events
# notifies, so SQLAlchemy's own execution path cost the lane more CPU than any other statement.
_NOTIFY_SQL = (
    "SELECT pg_notify(n.channel, n.payload) FROM unnest(:channels, :payloads) AS n(channel, payload)"
)
_NOTIFY_BINDS = (
    sa.bindparam("channels", type_=postgresql.ARRAY(sa.Text())),
    sa.bindparam("payloads", type_=postgresql.ARRAY(sa.Text())),
)
_NOTIFY = Prepared(sa.text(_NOTIFY_SQL).bindparams(*_NOTIFY_BINDS))

# The events' INSERT and their notifications in one statement, so one round trip: a data-modifying
# WITH runs to completion, and before the SELECT's notifications, whether or not the SELECT reads it.
# Each column is bound as one array (its rows' values in order) and unnested back into rows; the
# events' data as JSON text, cast to JSONB as the column would take it.
_TEXT, _BIGINT = postgresql.ARRAY(sa.Text()), postgresql.ARRAY(sa.BigInteger())


def _array_of(column: sa.Column[Any]) -> tuple[str, Any]:
    """How a `job_events` column is bound as an array: the SQL cast, and the bound array's type."""
    if isinstance(column.type, sa.BigInteger):
        return "BIGINT[]", _BIGINT
    if isinstance(column.type, sa.JSON):
        return "JSONB[]", _TEXT
    return "TEXT[]", _TEXT


_EVENT_COLUMNS: dict[str, tuple[str, Any]] = {c.name: _array_of(c) for c in tables.job_events.c}
_UNNESTED = ", ".join(f"CAST(:e_{name} AS {cast})" for name, (cast, _) in _EVENT_COLUMNS.items())
_INSERT_AND_NOTIFY = Prepared(
    sa.text(
        f"WITH inserted AS (INSERT INTO job_events ({', '.join(_EVENT_COLUMNS)}) "
        f"SELECT * FROM unnest({_UNNESTED})) {_NOTIFY_SQL}"
    ).bindparams(
        *_NOTIFY_BINDS,
        *(sa.bindparam(f"e_{name}", type_=bound) for name, (_, bound) in _EVENT_COLUMNS.items()),
    )
)


def event_payload(job_id: str, sequence: int) -> str:
    """What EVENTS_CHANNEL carries: the job and its newest sequence (ids never contain ':' at the end)."""
    return f"{job_id}:{sequence}"


def parse_event_payload(payload: str) -> tuple[str, int] | None:
    """(job_id, sequence) from an EVENTS_CHANNEL payload; None if it is not one of ours."""
    job_id, _, sequence = payload.rpartition(":")
    if not job_id or not sequence.isdigit():
        return None
    return job_id, int(sequence)


def append_events(conn: sa.Connection, event_rows: Sequence[Mapping[str, Any]], *, work: bool) -> None:
    """Insert a write's events and queue its notifications in its transaction, in one round trip: each
    job's newest sequence, and work when the write made a job QUEUED."""
    newest: dict[str, int] = {}
    for row in event_rows:
        newest[row["job_id"]] = max(newest.get(row["job_id"], 0), row["sequence"])
    channels = [EVENTS_CHANNEL] * len(newest)
    payloads = [event_payload(job_id, sequence) for job_id, sequence in newest.items()]
    if work:
        channels.append(WORK_CHANNEL)
        payloads.append("")
    notify = {"channels": channels, "payloads": payloads}
    if not event_rows:
        if channels:
            _NOTIFY.run(conn, notify)
        return
    given = [{"request_id": "", **row} for row in event_rows]  # the column's default, as in the table
    columns = {f"e_{c}": [row[c] for row in given] for c in _EVENT_COLUMNS}
    columns["e_data"] = [json.dumps(data) for data in columns["e_data"]]  # as the JSONB column would
    _INSERT_AND_NOTIFY.run(conn, notify | columns)


class _Listening(Protocol):
    """The part of asyncpg's Connection the listener uses (asyncpg ships no type information)."""

    async def add_listener(self, channel: str, callback: Any) -> None: ...
    def add_termination_listener(self, callback: Any) -> None: ...
    async def execute(self, query: str) -> str: ...
    async def fetchval(self, query: str) -> Any: ...
    def is_closed(self) -> bool: ...
    async def close(self) -> None: ...
    def terminate(self) -> None: ...


class PgChangeFeed:
    """LISTENs for other replicas' (and this replica's own) notifications and hands them to a sink."""

    def __init__(
        self,
        engine: AsyncEngine,
        sink: ChangeSink,
        *,
        ping_interval_s: float = PING_INTERVAL_S,
        max_backoff_s: float = MAX_BACKOFF_S,
    ) -> None:
        self._engine = engine
        self._sink = sink
        self._ping_interval_s = ping_interval_s
        self._max_backoff_s = max_backoff_s
        self.connections = 0
        """How many times a listening connection was established (for tests and metrics)."""

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop` is set, reconnecting with backoff whenever the connection is lost."""
        loop = asyncio.get_running_loop()
        backoff = INITIAL_BACKOFF_S
        while not stop.is_set():
            conn = await self._connect_or_none()
            if conn is not None:
                self.connections += 1
                began = loop.time()
                try:
                    # Listening before resyncing: what commits from now on is notified, and what
                    # committed while nobody listened is found by the re-reads the resync causes.
                    self._sink.resync()
                    await self._until_lost(conn, stop)
                finally:
                    await _close(conn)
                if stop.is_set():
                    return
                logger.warning("listener: connection lost; reconnecting")
                if loop.time() - began > self._max_backoff_s:
                    backoff = INITIAL_BACKOFF_S  # it had been healthy: try again at once
                    continue
            # Backing off (and jittered, so replicas cut off together do not return in lockstep)
            # after a failed attempt, or a connection that died young: the database may be flapping.
            await _wait(stop, backoff * random.uniform(0.75, 1.25))
            backoff = min(backoff * 2, self._max_backoff_s)

    async def _connect_or_none(self) -> _Listening | None:
        try:
            return await self._connect()
        except _CONNECTION_ERRORS as err:
            logger.warning("listener: cannot connect (%s); retrying", err)
        except Exception:
            logger.exception("listener: unexpected failure connecting; retrying")
        return None

    async def _connect(self) -> _Listening:
        # A pooled connection gets exactly the engine's connect arguments (TLS included); detached,
        # it leaves the pool for good: a LISTENing session must never serve a request, and the
        # pool's limit stays whole for requests.
        pooled = await self._engine.raw_connection()
        conn: _Listening | None = pooled.driver_connection
        assert conn is not None, "a checked-out connection has a driver connection"
        pooled.detach()
        try:
            await conn.execute(f"SET application_name = '{LISTENER_NAME}'")
            await conn.add_listener(EVENTS_CHANNEL, self._on_notification)
            await conn.add_listener(WORK_CHANNEL, self._on_notification)
        except BaseException:
            await _close(conn)
            raise
        return conn

    async def _until_lost(self, conn: _Listening, stop: asyncio.Event) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        while not stop.is_set() and not lost.is_set() and not conn.is_closed():
            await _wait_either(stop, lost, self._ping_interval_s)
            if stop.is_set() or lost.is_set():
                return
            try:
                await asyncio.wait_for(conn.fetchval("SELECT 1"), PING_TIMEOUT_S)
            except _CONNECTION_ERRORS as err:  # TimeoutError is an OSError
                logger.warning("listener: ping failed (%r)", err)
                return
            except Exception:
                logger.exception("listener: ping failed")
                return

    def _on_notification(self, _conn: object, _pid: int, channel: str, payload: str) -> None:
        if channel == WORK_CHANNEL:
            self._sink.work_available()
            return
        parsed = parse_event_payload(payload)
        if parsed is None:
            logger.debug("listener: ignoring payload %r on %s", payload, channel)
            return
        self._sink.job_changed(*parsed)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


async def _wait_either(first: asyncio.Event, second: asyncio.Event, seconds: float) -> None:
    waiters: Collection[asyncio.Task[bool]] = (
        asyncio.create_task(first.wait()),
        asyncio.create_task(second.wait()),
    )
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def _close(conn: _Listening) -> None:
    if conn.is_closed():
        return
    try:
        await asyncio.wait_for(conn.close(), 2.0)
    except _CONNECTION_ERRORS:  # broken, or slow to say goodbye: drop it
        conn.terminate()
