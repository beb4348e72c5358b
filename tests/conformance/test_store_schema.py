"""The schema holds the line on its own, and the migrations build exactly the tables the store uses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import exc
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.sql import operators

from jobwarden_server.domain.records import Job
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.store import JobDueParams, SqlStore, is_migrated, migrate, open_store
from jobwarden_server.store import _sqlite as sqlite_store
from jobwarden_server.store import _tables as tables
from jobwarden_server.store._migrate import alembic_config, head_revisions
from jobwarden_server.store._sql import due_queries
from jobwarden_server.store._tables import metadata

CreateJob = Callable[..., Awaitable[Job]]

BAD_WRITES = {
    "progress above 100": "UPDATE jobs SET progress_percent = 101 WHERE id = :id",
    "progress below 0": "UPDATE jobs SET progress_percent = -0.5 WHERE id = :id",
    "unknown status": "UPDATE jobs SET status = 'SLEEPING' WHERE id = :id",
    "unknown stop reason": "UPDATE jobs SET stop_reason = 'BORED' WHERE id = :id",
    "event of a missing job": (
        "INSERT INTO job_events (job_id, sequence, owner, create_us, actor, kind, data) "
        "VALUES ('no-such-job', 1, 'alice', 0, 'x', 'log', '{}')"
    ),
    "duplicate sequence": (
        "INSERT INTO job_events (job_id, sequence, owner, create_us, actor, kind, data) "
        "VALUES (:id, 1, 'alice', 0, 'x', 'log', '{}')"
    ),
}


@pytest.mark.parametrize("statement", BAD_WRITES.values(), ids=BAD_WRITES.keys())
async def test_the_database_refuses_bad_writes(
    store: SqlStore, create_job: CreateJob, statement: str
) -> None:
    job = await create_job()
    with pytest.raises(exc.IntegrityError):
        async with store.write_engine.begin() as conn:
            await conn.execute(sa.text(statement), {"id": job.id})
    assert await store.job_get(None, job.id) == job


async def test_the_database_accepts_the_edges_of_the_range(store: SqlStore, create_job: CreateJob) -> None:
    """The control for the refusals above: legal values pass the same constraints."""
    job = await create_job()
    async with store.write_engine.begin() as conn:
        for percent in (0, 100):
            await conn.execute(
                sa.text("UPDATE jobs SET progress_percent = :p, status = 'EXPIRED' WHERE id = :id"),
                {"p": percent, "id": job.id},
            )
    assert (await store.job_get(None, job.id)).progress.percent == 100


async def test_every_status_and_stop_reason_passes_the_checks(store: SqlStore, create_job: CreateJob) -> None:
    """The migration spells the CHECK lists out; a status added to the enum must be added there too."""
    job = await create_job()
    async with store.write_engine.begin() as conn:
        for status in JobStatus:
            await conn.execute(
                sa.text("UPDATE jobs SET status = :s WHERE id = :id"), {"s": status.value, "id": job.id}
            )
        for reason in StopReason:
            await conn.execute(
                sa.text("UPDATE jobs SET stop_reason = :r WHERE id = :id"), {"r": reason.value, "id": job.id}
            )
    assert (await store.job_get(None, job.id)).stop_reason is list(StopReason)[-1]


async def _alembic_versions(store: SqlStore) -> list[str]:
    async with store.write_engine.connect() as conn:
        return list((await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalars())


async def test_migrating_again_is_a_no_op(database_url: str, store: SqlStore, create_job: CreateJob) -> None:
    job = await create_job()
    await migrate(database_url)
    await migrate(database_url)
    assert await is_migrated(database_url)
    assert await _alembic_versions(store) == sorted(head_revisions())
    assert await store.job_get(None, job.id) == job


async def test_an_empty_database_is_migrated_by_migrate(empty_database_url: str, backend: str) -> None:
    assert not await is_migrated(empty_database_url)
    await migrate(empty_database_url)
    assert await is_migrated(empty_database_url)


async def test_is_migrated_does_not_create_a_missing_sqlite_file(tmp_path: Any) -> None:
    path = tmp_path / "missing.db"
    assert not await is_migrated(str(path))
    assert not path.exists()


def _schema_diff(connection: sa.Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _constraints_and_indexes(connection: sa.Connection) -> dict[str, Any]:
    inspector = sa.inspect(connection)
    found: dict[str, Any] = {}
    for table in metadata.sorted_tables:
        found[f"{table.name} checks"] = sorted(c["name"] for c in inspector.get_check_constraints(table.name))
        found[f"{table.name} indexes"] = sorted(
            (i["name"], tuple(i["column_names"]), bool(i["unique"]))
            for i in inspector.get_indexes(table.name)
        )
        found[f"{table.name} foreign keys"] = sorted(
            (fk["name"], fk["options"].get("ondelete")) for fk in inspector.get_foreign_keys(table.name)
        )
    return found


def _column_name(expression: Any) -> str:
    # A plain column, or a column wrapped in an ordering such as `priority DESC`.
    column = expression if isinstance(expression, sa.Column) else expression.element
    return str(column.name)


def _declared(table: sa.Table) -> dict[str, Any]:
    return {
        f"{table.name} checks": sorted(
            str(c.name) for c in table.constraints if isinstance(c, sa.CheckConstraint)
        ),
        f"{table.name} indexes": sorted(
            (str(i.name), tuple(_column_name(e) for e in i.expressions), i.unique) for i in table.indexes
        ),
        f"{table.name} foreign keys": sorted(
            (str(fk.name), fk.ondelete) for fk in table.foreign_key_constraints
        ),
    }


async def test_the_migrations_build_the_tables_the_store_uses(store: SqlStore) -> None:
    async with store.write_engine.connect() as conn:
        diff = await conn.run_sync(_schema_diff)
        found = await conn.run_sync(_constraints_and_indexes)
    assert diff == []
    declared: dict[str, Any] = {}
    for table in metadata.sorted_tables:
        declared.update(_declared(table))
    assert found == declared


def _descending_columns(connection: sa.Connection, index: sa.Index) -> list[str]:
    """The columns the database's own definition of `index` sorts DESC (reflection does not say on
    SQLite, so read the definition itself)."""
    if connection.dialect.name == "sqlite":
        query = sa.text("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = :name")
    else:
        query = sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = :name")
    definition = str(connection.execute(query, {"name": index.name}).scalar_one())
    columns = definition[definition.index("(") + 1 : definition.index(")")].split(",")
    return [c.split()[0].strip('"') for c in columns if c.strip().upper().endswith("DESC")]


async def test_every_index_sorts_its_columns_as_declared(store: SqlStore) -> None:
    """An index's column directions (priority DESC in the claim's index) survive every migration."""
    declared = {
        str(i.name): [
            _column_name(e) for e in i.expressions if getattr(e, "modifier", None) is operators.desc_op
        ]
        for table in metadata.sorted_tables
        for i in table.indexes
    }
    assert declared["ix_jobs_claimable"] == ["priority"]  # the control: one index has one
    async with store.write_engine.connect() as conn:
        found = await conn.run_sync(
            lambda c: {
                str(i.name): _descending_columns(c, i)
                for table in metadata.sorted_tables
                for i in table.indexes
            }
        )
    assert found == declared


async def test_the_claim_reads_its_jobs_in_the_index_order_on_sqlite(store: SqlStore, backend: str) -> None:
    """SQLite walks the claim index in the claim's order, without sorting the queue for each claim."""
    if backend != "sqlite":
        return  # PostgreSQL plans by its statistics; its index definition is checked above
    compiled = sqlite_store._pick(1).statement.compile(dialect=sqlite_dialect.dialect())
    async with store.write_engine.connect() as conn:
        plan = (
            await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string, ("o", "t", 0, 0, 1, 0))
        ).all()
    details = [str(row[-1]) for row in plan]
    assert any("ix_jobs_claimable" in d for d in details), details
    assert not any("TEMP B-TREE" in d for d in details), details


def test_the_reaper_indexes_name_every_status_it_may_act_on() -> None:
    """The partial indexes' status lists are literal text: they must stay the unfinished and the
    waiting statuses as the domain has them."""

    def statuses(where: str) -> set[str]:
        return {s.strip(" '") for s in where[where.index("(") + 1 : where.index(")")].split(",")}

    assert statuses(tables.UNFINISHED_WHERE) == {s.value for s in JobStatus if not s.terminal}
    assert statuses(tables.WAITING_WHERE) == {JobStatus.CREATED.value, JobStatus.QUEUED.value}


async def test_the_reaper_reads_only_due_jobs_on_sqlite(store: SqlStore, backend: str) -> None:
    """Each of the reaper's reads walks an index of the jobs it may act on, in the read's order: none
    reads the unfinished jobs by status and sorts them (as the deadline and queue-timeout reads did
    before migration 0014)."""
    if backend != "sqlite":
        return  # PostgreSQL plans by its statistics; its index definitions are checked above
    params = JobDueParams(now=dt.datetime.now(dt.UTC), limit=10, stall_after_s={"render": 60.0})
    plans = []
    async with store.write_engine.connect() as conn:
        for query in due_queries(params):
            compiled = query.compile(dialect=sqlite_dialect.dialect(), compile_kwargs={"literal_binds": True})
            plan = (await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + compiled.string)).all()
            plans.append(" / ".join(str(row[-1]) for row in plan))
    walked = [
        "ix_jobs_status_lease_expire_us",
        "ix_jobs_unfinished_deadline_us",
        "ix_jobs_waiting_queue_expire_us",
        "ix_jobs_running_job_type_progress_us",
    ]
    assert [index in plan for index, plan in zip(walked, plans, strict=True)] == [True] * 4, plans
    assert not any("TEMP B-TREE" in plan for plan in plans), plans


async def test_downgrade_then_upgrade_round_trips(empty_database_url: str, backend: str) -> None:
    await migrate(empty_database_url)
    opened = open_store(empty_database_url)
    try:

        def downgrade(connection: sa.Connection) -> None:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.downgrade(config, "base")

        async with opened.write_engine.begin() as conn:
            await conn.run_sync(downgrade)
            tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        assert tables == {"alembic_version"}
    finally:
        await opened.close()
    assert not await is_migrated(empty_database_url)
    await migrate(empty_database_url)
    assert await is_migrated(empty_database_url)
