"""SQLite's writer thread (store/_writes.py): units that queue while a commit is in flight share the
next transaction (group commit), each keeps its own outcome (a failing unit is undone alone and never
fails its neighbours), and no unit is answered before its batch committed. On a real SQLite file."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from jobwarden_server.store import _sqlite
from jobwarden_server.store._writes import WriteThread

Unit = Callable[[sa.Connection], object]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[tuple[WriteThread, Path, list[str]]]:
    path = tmp_path / "w.db"
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (name TEXT PRIMARY KEY)")
    setup.close()
    # The writer thread's engine exactly as the store makes it (BEGIN IMMEDIATE, WAL, busy timeout).
    engine, maintenance, reader = _sqlite.create_engines(str(path), read_pool_size=1, busy_timeout_ms=50)
    commits: list[str] = []
    event.listen(engine, "commit", lambda conn: commits.append("commit"))
    writes = WriteThread(engine)
    yield writes, path, commits
    await writes.close()
    await maintenance.dispose()
    await reader.dispose()


def insert(name: str) -> Unit:
    return lambda conn: conn.execute(sa.text("INSERT INTO t (name) VALUES (:n)"), {"n": name}).rowcount


def stored(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT name FROM t ORDER BY name")]


def held_until(release: threading.Event, started: threading.Event) -> Unit:
    """A unit that keeps the writer thread busy until the test releases it."""

    def unit(conn: sa.Connection) -> int:
        started.set()
        release.wait(30)
        return int(conn.execute(sa.text("INSERT INTO t (name) VALUES ('first')")).rowcount)

    return unit


async def test_units_queued_during_a_commit_share_the_next_transaction(
    rig: tuple[WriteThread, Path, list[str]],
) -> None:
    writes, path, commits = rig
    release, started = threading.Event(), threading.Event()
    first = asyncio.ensure_future(writes.run(held_until(release, started)))
    await asyncio.to_thread(started.wait, 30)
    queued = [asyncio.ensure_future(writes.run(insert(f"n{i}"))) for i in range(5)]
    await asyncio.sleep(0)  # let each queue its unit while the first one holds the thread
    release.set()
    assert await first == 1
    assert await asyncio.gather(*queued) == [1] * 5
    assert commits == ["commit", "commit"]  # the first unit's, then one for the five that waited
    assert stored(path) == ["first", "n0", "n1", "n2", "n3", "n4"]


async def test_a_failing_unit_is_undone_alone_and_its_neighbours_commit(
    rig: tuple[WriteThread, Path, list[str]],
) -> None:
    writes, path, _ = rig
    release, started = threading.Event(), threading.Event()
    first = asyncio.ensure_future(writes.run(held_until(release, started)))
    await asyncio.to_thread(started.wait, 30)

    def half_then_fail(conn: sa.Connection) -> None:
        conn.execute(sa.text("INSERT INTO t (name) VALUES ('half')"))
        conn.execute(sa.text("INSERT INTO t (name) VALUES ('before')"))  # a duplicate of a neighbour's

    before = asyncio.ensure_future(writes.run(insert("before")))
    failing = asyncio.ensure_future(writes.run(half_then_fail))
    after = asyncio.ensure_future(writes.run(insert("after")))
    await asyncio.sleep(0)
    release.set()
    await first
    assert await before == 1 and await after == 1
    with pytest.raises(sa.exc.IntegrityError):
        await failing
    assert stored(path) == ["after", "before", "first"]  # nothing of the failing unit, not even 'half'


async def test_a_refusal_alone_writes_nothing_and_reaches_only_its_caller(
    rig: tuple[WriteThread, Path, list[str]],
) -> None:
    writes, path, _ = rig

    def refused(conn: sa.Connection) -> None:
        conn.execute(sa.text("INSERT INTO t (name) VALUES ('no')"))
        raise LookupError("refused after writing")

    with pytest.raises(LookupError):
        await writes.run(refused)
    assert await writes.run(insert("yes")) == 1
    assert stored(path) == ["yes"]


async def test_a_transaction_that_cannot_start_fails_every_unit_of_its_batch(
    rig: tuple[WriteThread, Path, list[str]],
) -> None:
    writes, path, _ = rig
    # Another process holds the write lock: BEGIN IMMEDIATE waits out the busy timeout (50 ms here)
    # and the whole batch fails with the database's error; nothing is written.
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        outcomes = await asyncio.gather(
            writes.run(insert("a")), writes.run(insert("b")), return_exceptions=True
        )
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert all(isinstance(o, sa.exc.OperationalError) and "locked" in str(o) for o in outcomes), outcomes
    assert stored(path) == []
    assert await writes.run(insert("c")) == 1  # the thread and its connection carry on


async def test_a_batch_runs_straight_through_and_only_a_failure_brings_in_savepoints(tmp_path: Path) -> None:
    """A batch without failures costs no SAVEPOINT or RELEASE; when a unit fails, the whole
    transaction is undone and the batch runs again unit by unit, so a neighbour that ran before the
    failure runs twice and is written once."""
    path = tmp_path / "s.db"
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (name TEXT PRIMARY KEY)")
    setup.close()
    engine, maintenance, reader = _sqlite.create_engines(str(path), read_pool_size=1)
    statements: list[str] = []
    event.listen(engine, "connect", lambda dbapi, _record: dbapi.set_trace_callback(statements.append))
    writes = WriteThread(engine)
    runs: dict[str, int] = {}

    def counted(name: str, *, fail: bool = False) -> Unit:
        def unit(conn: sa.Connection) -> int:
            runs[name] = runs.get(name, 0) + 1
            conn.execute(sa.text("INSERT INTO t (name) VALUES (:n)"), {"n": name})
            if fail:
                raise LookupError("refused after writing")
            return 1

        return unit

    async def batch(*units: Unit) -> list[object]:
        release, started = threading.Event(), threading.Event()

        def hold(_conn: sa.Connection) -> None:
            started.set()
            release.wait(30)

        first = asyncio.ensure_future(writes.run(hold))
        await asyncio.to_thread(started.wait, 30)
        queued = [asyncio.ensure_future(writes.run(unit)) for unit in units]
        await asyncio.sleep(0)  # each unit queues while the first holds the thread: one batch
        release.set()
        await first
        return list(await asyncio.gather(*queued, return_exceptions=True))

    try:
        assert await batch(counted("a"), counted("b")) == [1, 1]
        assert runs == {"a": 1, "b": 1}
        assert not any(s.startswith(("SAVEPOINT", "RELEASE")) for s in statements), statements

        outcomes = await batch(counted("c"), counted("d", fail=True), counted("e"))
        assert outcomes[0] == 1 and isinstance(outcomes[1], LookupError) and outcomes[2] == 1
        assert (runs["c"], runs["d"], runs["e"]) == (2, 2, 1)  # e never ran before the rollback
        assert statements.count("SAVEPOINT unit") == 3
        assert stored(path) == ["a", "b", "c", "e"]
    finally:
        await writes.close()
        await maintenance.dispose()
        await reader.dispose()
