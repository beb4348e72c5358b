"""Where write transactions run: whole units of synchronous SQL work, committed before they answer.

A *unit* is a plain function of a SQLAlchemy `Connection` (one job change, one claim, one create).
Writing units as synchronous code lets each database run them the cheapest way it can:

- SQLite (`WriteThread`): one dedicated thread owns the only write connection. Units that arrive while
  a commit is in flight wait in a queue and go into the next transaction together (group commit); a
  unit that fails is undone alone and never fails its neighbours (see `commit_batch`).
  A batch costs one hand-off to the thread and one back, where going through aiosqlite cost about
  eleven thread hops per change. No unit is answered before its batch has committed.
- PostgreSQL (`BatchedTransactions`): the same group commit on an asyncio lane, through SQLAlchemy's
  `run_sync`, which drives the sync code over asyncpg. Batching saves a pool checkout (with its ping),
  a BEGIN/COMMIT pair and a WAL flush per unit under load; one unit alone costs what it did before.

Both share `commit_batch`, so a unit means the same thing on either database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from jobwarden_server.store._prepared import run_plain

T = TypeVar("T")
Unit = Callable[[sa.Connection], T]

logger = logging.getLogger(__name__)

MAX_BATCH = 512
"""Units per transaction at most: bounds how long one commit holds the write lock."""


class Writes(Protocol):
    """Runs write units, each answered only after its transaction committed."""

    async def run(self, unit: Unit[T]) -> T:
        """Run `unit` in a write transaction; its result, or its exception, once that is settled."""
        ...

    async def close(self) -> None:
        """Finish what was queued, then release the connection."""
        ...


class BatchedTransactions:
    """Group commit on PostgreSQL: `lanes` tasks, each taking every unit queued while its previous
    transaction was in flight into its next one, as SQLite's writer thread does (see commit_batch).

    More lanes would let a slow unit hold up only its own batch, but batches of one replica could then
    wait on each other's row locks in opposite orders (a deadlock PostgreSQL breaks by failing one
    unit); the store uses one (store/_open.py)."""

    def __init__(self, engine: AsyncEngine, *, lanes: int, max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self._lanes = lanes
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Queued | None] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    async def run(self, unit: Unit[T]) -> T:
        """See Writes.run. A caller that stops waiting does not stop its unit: it may still commit."""
        if self._closed:
            raise RuntimeError("the store is closed")
        loop = asyncio.get_running_loop()
        if not self._tasks:
            self._tasks = [
                loop.create_task(self._lane(), name=f"jobwarden-pg-writes-{i}") for i in range(self._lanes)
            ]
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put_nowait(_Queued(unit, future, loop))
        return await future

    async def close(self) -> None:
        """See Writes.close: the lanes finish what was queued, then stop."""
        self._closed = True
        for _ in self._tasks:
            self._queue.put_nowait(_STOP)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _lane(self) -> None:
        while True:
            first = await self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < self._max_batch and not self._queue.empty():
                more = self._queue.get_nowait()
                if more is _STOP:
                    self._queue.put_nowait(_STOP)  # another lane's: give it back
                    break
                batch.append(more)
            try:
                async with self._engine.connect() as conn:
                    await conn.run_sync(commit_batch, batch)
            except BaseException as err:  # noqa: BLE001 - no connection: nothing of the batch ran
                for queued in batch:
                    if queued.error is None:
                        queued.error, queued.result = err, None
            _settle_all(batch)


@dataclasses.dataclass(slots=True)
class _Queued:
    unit: Unit[Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    result: Any = None
    error: BaseException | None = None


_STOP = None


class WriteThread:
    """SQLite's single writer: a thread that owns the write connection and commits units in batches."""

    def __init__(self, engine: sa.Engine, *, max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    async def run(self, unit: Unit[T]) -> T:
        """See Writes.run. A caller that stops waiting does not stop its unit: it may still commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._main, name="jobwarden-sqlite-writer", daemon=True
                )
                self._thread.start()
            self._queue.put(_Queued(unit, future, loop))
        return await future

    async def close(self) -> None:
        """See Writes.close."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(thread.join)
        self._engine.dispose()

    def _main(self) -> None:
        with self._engine.connect() as conn:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch = [first]
                stop = False
                while len(batch) < self._max_batch:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        stop = True
                        break
                    batch.append(more)
                commit_batch(conn, batch)
                # One wake-up per event loop for the whole batch, not one per unit: each costs the
                # loop a read of its self-pipe and this thread a write to it.
                by_loop: dict[asyncio.AbstractEventLoop, list[_Queued]] = {}
                for queued in batch:
                    by_loop.setdefault(queued.loop, []).append(queued)
                for loop, settled in by_loop.items():
                    loop.call_soon_threadsafe(_settle_all, settled)
                if stop:
                    return


def commit_batch(conn: sa.Connection, batch: list[_Queued]) -> None:
    """One transaction for the batch. It first runs every unit straight through, without savepoints
    (two statements per unit fewer: on PostgreSQL, two round trips); only if a unit raises is that
    transaction rolled back whole and the batch run again with a savepoint per unit, so that a unit
    that fails is undone alone and never fails its neighbours. A unit may therefore run twice, the
    first run undone: every unit is a function of the connection alone. If BEGIN or COMMIT fails,
    nothing of the batch stands."""
    if not _straight_through(conn, batch):
        _unit_by_unit(conn, batch)


def _straight_through(conn: sa.Connection, batch: list[_Queued]) -> bool:
    """Run the units in one transaction without savepoints; False if a unit of a batch of several
    raised (all of it rolled back, to be run unit by unit). A unit that lost the connection fails
    the batch as it always did, without a second run on a new connection: its callers hear of the
    outage and retry with their request_ids."""
    failing: _Queued | None = None
    failure: BaseException | None = None
    try:
        with conn.begin():
            for queued in batch:
                try:
                    queued.result = queued.unit(conn)
                except BaseException as unit_error:
                    failing, failure = queued, unit_error
                    raise
    except BaseException as err:  # noqa: BLE001 - settled below, or handed to _unit_by_unit
        if failing is not None and len(batch) > 1 and not conn.invalidated:
            for queued in batch:
                queued.result = None
            return False
        if failing is not None:
            failing.error = failure  # its own failure is its answer (the batch's, if alone)
        _fail_the_rest(batch, err)
    return True


def _unit_by_unit(conn: sa.Connection, batch: list[_Queued]) -> None:
    """Run the units in one transaction, each in a savepoint: one that fails is undone alone."""
    try:
        with conn.begin():
            for queued in batch:
                run_plain(conn, "SAVEPOINT unit")
                try:
                    queued.result = queued.unit(conn)
                except BaseException as err:  # noqa: BLE001 - the unit's failure is its own answer
                    queued.error = err
                    run_plain(conn, "ROLLBACK TO unit")
                run_plain(conn, "RELEASE unit")
    except BaseException as err:  # noqa: BLE001 - BEGIN or COMMIT failed: nothing of the batch stands
        _fail_the_rest(batch, err)


def _fail_the_rest(batch: list[_Queued], err: BaseException) -> None:
    """Nothing of the batch stands: every unit without its own error fails with the database's."""
    # When the connection broke under a unit, the failure seen here is SQLAlchemy's refusal to go on
    # (PendingRollbackError); the database's own error, the unit's, says what happened.
    cause = err if isinstance(err, sa.exc.DBAPIError) else _database_error(batch) or err
    for queued in batch:
        if queued.error is None:
            queued.error = cause
            queued.result = None


def _database_error(batch: list[_Queued]) -> sa.exc.DBAPIError | None:
    """The first database error a unit of the batch met, if any."""
    return next((q.error for q in batch if isinstance(q.error, sa.exc.DBAPIError)), None)


def _settle_all(batch: list[_Queued]) -> None:
    for queued in batch:
        _settle(queued)


def _settle(queued: _Queued) -> None:
    if queued.future.cancelled():
        return
    if queued.error is not None:
        queued.future.set_exception(queued.error)
    else:
        queued.future.set_result(queued.result)
