"""PostgreSQL's batched writes (store/_writes.py BatchedTransactions): units that queue while the lane's
transaction is in flight share its next one (group commit), each keeps its own outcome (a failing unit is
undone alone, by its savepoint), and none is answered before its batch committed. On a real database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from support import pg

from jobwarden_server.store import _open, _postgres
from jobwarden_server.store._writes import BatchedTransactions

pytestmark = pytest.mark.postgres

Unit = Callable[[sa.Connection], object]
LOCK = 4242


@pytest.fixture
async def rig() -> AsyncIterator[tuple[BatchedTransactions, AsyncEngine, list[str]]]:
    async with pg.throwaway_database() as url:
        engine = _postgres.create_engine(_open.parse_database_url(url).postgres_url, pool_size=3)  # type: ignore[arg-type]
        async with engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE t (name TEXT PRIMARY KEY)")
        commits: list[str] = []
        event.listen(engine.sync_engine, "commit", lambda conn: commits.append("commit"))
        writes = BatchedTransactions(engine, lanes=1)
        yield writes, engine, commits
        await writes.close()
        await engine.dispose()


def insert(name: str) -> Unit:
    return lambda conn: conn.execute(sa.text("INSERT INTO t (name) VALUES (:n)"), {"n": name}).rowcount


async def stored(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(sa.text("SELECT name FROM t ORDER BY name"))).scalars())


def held(started: asyncio.Event) -> Unit:
    """A unit that holds its lane until the test frees an advisory lock it waits for."""

    def unit(conn: sa.Connection) -> int:
        started.set()
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK})
        return int(conn.execute(sa.text("INSERT INTO t (name) VALUES ('first')")).rowcount)

    return unit


async def _holding_the_lane(
    writes: BatchedTransactions, engine: AsyncEngine
) -> tuple[asyncio.Future[object], sa.ext.asyncio.AsyncConnection]:
    locker = await engine.connect()
    await locker.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": LOCK})
    started = asyncio.Event()
    first = asyncio.ensure_future(writes.run(held(started)))
    await started.wait()
    return first, locker


async def _release(locker: sa.ext.asyncio.AsyncConnection) -> None:
    await locker.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK})
    await locker.close()


async def test_units_queued_during_a_transaction_share_the_next_one(
    rig: tuple[BatchedTransactions, AsyncEngine, list[str]],
) -> None:
    writes, engine, commits = rig
    first, locker = await _holding_the_lane(writes, engine)
    queued = [asyncio.ensure_future(writes.run(insert(f"n{i}"))) for i in range(5)]
    await asyncio.sleep(0)  # let each queue its unit while the first one holds the lane
    assert not any(q.done() for q in queued)
    await _release(locker)
    assert await first == 1
    assert await asyncio.gather(*queued) == [1] * 5
    assert commits == ["commit", "commit"]  # the first unit's, then one for the five that waited
    assert await stored(engine) == ["first", "n0", "n1", "n2", "n3", "n4"]


async def test_a_failing_unit_is_undone_alone_and_its_neighbours_commit(
    rig: tuple[BatchedTransactions, AsyncEngine, list[str]],
) -> None:
    writes, engine, _ = rig
    first, locker = await _holding_the_lane(writes, engine)

    def half_then_fail(conn: sa.Connection) -> None:
        conn.execute(sa.text("INSERT INTO t (name) VALUES ('half')"))
        conn.execute(sa.text("INSERT INTO t (name) VALUES ('before')"))  # a duplicate of a neighbour's

    before = asyncio.ensure_future(writes.run(insert("before")))
    failing = asyncio.ensure_future(writes.run(half_then_fail))
    after = asyncio.ensure_future(writes.run(insert("after")))
    await asyncio.sleep(0)
    await _release(locker)
    await first
    assert await before == 1 and await after == 1
    with pytest.raises(sa.exc.IntegrityError):
        await failing
    assert await stored(engine) == ["after", "before", "first"]  # nothing of the failing unit


async def test_a_refusal_alone_writes_nothing_and_reaches_only_its_caller(
    rig: tuple[BatchedTransactions, AsyncEngine, list[str]],
) -> None:
    writes, engine, _ = rig

    def refused(conn: sa.Connection) -> None:
        conn.execute(sa.text("INSERT INTO t (name) VALUES ('no')"))
        raise LookupError("refused after writing")

    with pytest.raises(LookupError):
        await writes.run(refused)
    assert await writes.run(insert("yes")) == 1
    assert await stored(engine) == ["yes"]
