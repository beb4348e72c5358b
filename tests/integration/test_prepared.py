"""Prepared statements (store/_prepared.py) answer exactly what SQLAlchemy's own execution answers:
the same rows, the same conversions of JSON and booleans, the literals written into the statement
bound, the driver's errors as SQLAlchemy's; on SQLite's writer connection and on PostgreSQL's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from support import rpc

from jobwarden_server import store
from jobwarden_server.store import _sqlite as sqlite
from jobwarden_server.store import _tables as tables
from jobwarden_server.store._prepared import Prepared

jobs, job_events = tables.jobs, tables.job_events
EVENT = {"owner": "acme", "create_us": 7, "actor": "worker:w1", "kind": "progress", "request_id": ""}


Run = Callable[[Callable[[sa.Connection], Any]], Awaitable[Any]]


@pytest.fixture
async def in_transaction(tmp_path: Path, backend: str) -> AsyncIterator[Run]:
    """Runs a sync function in a write transaction the way the store does: on SQLite on the writer
    thread's kind of connection (pysqlite), on PostgreSQL through run_sync over asyncpg."""
    async with rpc.migrated_store(tmp_path, backend) as opened:
        assert isinstance(opened, store.SqlStore)
        if backend == "sqlite":
            thread_engine, writer, reader = sqlite.create_engines(
                rpc.database_url(tmp_path), read_pool_size=1
            )
            await writer.dispose()
            await reader.dispose()

            async def on_sqlite(work: Callable[[sa.Connection], Any]) -> Any:
                with thread_engine.begin() as conn:
                    return work(conn)

            yield on_sqlite
            thread_engine.dispose()
            return

        async def on_postgres(work: Callable[[sa.Connection], Any]) -> Any:
            async with opened.write_engine.begin() as conn:
                return await conn.run_sync(work)

        yield on_postgres


def _job(job_id: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": job_id, "owner": "acme", "job_type": "demo", "lifecycle": "default", "status": "QUEUED",
        "progress_percent": 0.0, "progress_message": "", "progress_done": 0, "progress_total": 0,
        "parameters": {"n": 1, "nested": {"ok": True}}, "result": None, "stop_reason": "UNSPECIFIED",
        "attempt": 0, "max_attempts": 3, "priority": 0, "labels": {"team": "é"}, "callback_url": "",
        "cancel_requested": False, "version": 1, "create_us": 1, "update_us": 1, "worker_id": "",
        "lease_duration_s": 30.0, "last_sequence": 0, "request_fingerprint": "",
    }  # fmt: skip
    return row | values


async def test_rows_are_what_sqlalchemy_answers(in_transaction: Run) -> None:
    select = sa.select(jobs).where(jobs.c.owner == sa.bindparam("p_owner")).order_by(jobs.c.id)

    def work(conn: sa.Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        conn.execute(sa.insert(jobs), [_job("a"), _job("b", cancel_requested=True, result={"r": [1, 2]})])
        prepared = [dict(row) for row in Prepared(select).rows(conn, {"p_owner": "acme"})]
        expected = [dict(row) for row in conn.execute(select, {"p_owner": "acme"}).mappings()]
        return prepared, expected

    prepared, expected = await in_transaction(work)
    assert prepared == expected and len(prepared) == 2
    assert prepared[1]["result"] == {"r": [1, 2]} and prepared[0]["labels"] == {"team": "é"}
    assert bool(prepared[1]["cancel_requested"]) and not prepared[0]["cancel_requested"]


async def test_an_update_binds_its_literals_and_returns_the_changed_row(in_transaction: Run) -> None:
    take = Prepared(
        sa.update(jobs)
        .where(jobs.c.id == sa.bindparam("p_id"), jobs.c.status == "QUEUED")  # a literal: bound by itself
        .values(status="RUNNING", version=jobs.c.version + 1, parameters=sa.bindparam("p_parameters"))
        .returning(jobs.c.id, jobs.c.status, jobs.c.version, jobs.c.parameters)
    )

    def work(conn: sa.Connection) -> tuple[list[Any], list[Any]]:
        conn.execute(sa.insert(jobs), [_job("a")])
        first = take.rows(conn, {"p_id": "a", "p_parameters": {"k": "v"}})
        again = take.rows(conn, {"p_id": "a", "p_parameters": {"k": "w"}})  # RUNNING now: no match
        return [dict(r) for r in first], again

    first, again = await in_transaction(work)
    assert first == [{"id": "a", "status": "RUNNING", "version": 2, "parameters": {"k": "v"}}]
    assert again == []


async def test_run_answers_how_many_rows_a_statement_changed(in_transaction: Run) -> None:
    take = Prepared(
        sa.update(jobs)
        .where(jobs.c.status == "QUEUED", jobs.c.priority <= sa.bindparam("p_priority"))
        .values(status="RUNNING", parameters=sa.bindparam("p_parameters"))
    )

    def work(conn: sa.Connection) -> tuple[list[int], list[Any]]:
        conn.execute(sa.insert(jobs), [_job("a"), _job("b", priority=5), _job("c")])
        counts = [take.run(conn, {"p_priority": 0, "p_parameters": {"k": "v"}}) for _ in range(2)]
        counts.append(take.run(conn, {"p_priority": 9, "p_parameters": {"k": "w"}}))
        read = sa.select(jobs.c.id, jobs.c.status, jobs.c.parameters).order_by(jobs.c.id)
        return counts, [tuple(row) for row in conn.execute(read)]

    counts, after = await in_transaction(work)
    assert counts == [2, 0, 1]  # the second finds nothing QUEUED at priority 0 any more
    assert after == [("a", "RUNNING", {"k": "v"}), ("b", "RUNNING", {"k": "w"}), ("c", "RUNNING", {"k": "v"})]


async def test_run_many_inserts_each_row_with_its_json(in_transaction: Run) -> None:
    rows = [EVENT | {"job_id": "a", "sequence": n, "data": {"percent": n, "text": "ü"}} for n in (1, 2)]
    insert = Prepared(sa.insert(job_events), keys=list(rows[0]))

    def work(conn: sa.Connection) -> list[dict[str, Any]]:
        conn.execute(sa.insert(jobs), [_job("a")])
        insert.run_many(conn, rows)
        insert.run_many(conn, [])  # nothing to insert: no statement
        read = sa.select(job_events).order_by(job_events.c.sequence)
        return [dict(row) for row in conn.execute(read).mappings()]

    assert await in_transaction(work) == rows


async def test_an_expanding_list_is_refused(in_transaction: Run) -> None:
    expanding = Prepared(sa.select(jobs.c.id).where(jobs.c.id.in_(sa.bindparam("p_ids", expanding=True))))

    def work(conn: sa.Connection) -> None:
        expanding.rows(conn, {"p_ids": ["a"]})

    with pytest.raises(ValueError, match="expanding"):
        await in_transaction(work)


async def test_a_database_error_is_sqlalchemys_as_from_any_statement(in_transaction: Run) -> None:
    insert = Prepared(sa.insert(jobs), keys=list(_job("a")))

    def work(conn: sa.Connection) -> None:
        insert.run_many(conn, [_job("a")])
        insert.run_many(conn, [_job("a")])  # the same id again

    with pytest.raises(sa.exc.IntegrityError):
        await in_transaction(work)

    def out_of_range(conn: sa.Connection) -> None:
        insert.run_many(conn, [_job("b", progress_percent=101.0)])  # the CHECK constraint

    with pytest.raises(sa.exc.IntegrityError, match="progress_percent"):
        await in_transaction(out_of_range)


async def test_a_parameter_left_out_is_an_error_not_a_null(in_transaction: Run) -> None:
    select = Prepared(sa.select(jobs.c.id).where(jobs.c.owner == sa.bindparam("p_owner")))

    def work(conn: sa.Connection) -> None:
        select.rows(conn, {"p_ownr": "acme"})

    with pytest.raises(KeyError, match="p_owner"):
        await in_transaction(work)
