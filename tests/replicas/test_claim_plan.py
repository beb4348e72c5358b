"""The PostgreSQL claim statement, exactly as the store builds it, is planned on the claim index.

Without the index every claim would scan the whole jobs table, history included, and hold up every
other claimer's SKIP LOCKED walk as the table grows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store import (
    JobClaimParams,
    JobCreateParams,
    _postgres,
    _rows,
    _tables,
    migrate,
    open_store,
)

pytestmark = pytest.mark.postgres

CLAIM_INDEX = "ix_jobs_claimable"
JOBS = 6000
NOW = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _explained(
    _conn: sa.Connection, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool
) -> tuple[str, Any]:
    # Planned with the very text and parameters the store sends, but not run.
    return f"EXPLAIN {statement}", parameters


def _rows_for(n: int) -> dict[str, Any]:
    """Mostly history, as in a long-lived database: every 20th job is still QUEUED."""
    params = JobCreateParams(
        id=f"job-{n:06d}",
        owner=f"owner-{n % 10}",
        job_type=f"type-{n % 7}",
        lifecycle="standard",
        status=JobStatus.QUEUED if n % 20 == 0 else JobStatus.COMPLETED,
        parameters={},
        priority=n % 3,
        labels={},
        max_attempts=3,
        run_after=None,
        deadline=None,
        callback_url="",
        request_id="",
        request_fingerprint="",
        now=NOW + dt.timedelta(seconds=n),
        actor="client:test",
    )
    return _rows.create_values(params, _rows.to_us(params.now))


async def test_the_claim_statement_uses_the_claim_index(database: str) -> None:
    await migrate(database)
    store = open_store(database)
    claim = JobClaimParams(
        owner="owner-0",
        worker_id="w",
        job_types=frozenset({"type-0", "type-3"}),
        limit=10,
        lease_duration_s=30,
        now=NOW + dt.timedelta(days=1),
    )
    try:
        async with store.write_engine.begin() as conn:
            await conn.execute(sa.insert(_tables.jobs), [_rows_for(n) for n in range(JOBS)])
            await conn.execute(sa.text("ANALYZE jobs"))
        async with store.write_engine.connect() as conn:
            event.listen(conn.sync_connection, "before_cursor_execute", _explained, retval=True)
            # claim_rows is synchronous SQL (a write unit): run it as the store does, through run_sync.
            plan = [row["QUERY PLAN"] for row in await conn.run_sync(_postgres.claim_rows, claim)]
            event.remove(conn.sync_connection, "before_cursor_execute", _explained)
            # The claim itself still works on these rows.
            claimed = await conn.run_sync(_postgres.claim_rows, dataclasses.replace(claim, limit=3))
    finally:
        await store.close()
    assert any(CLAIM_INDEX in line for line in plan), "\n".join(plan)
    assert not any("Seq Scan on jobs" in line for line in plan), "\n".join(plan)
    assert len(claimed) == 3
