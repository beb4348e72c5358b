"""`database_pool_size` bounds each replica's connections; the listener has one more of its own."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from support import flows, pg, rpc

from jobwarden_server.store import _pg_notify

pytestmark = pytest.mark.postgres

CONNECTIONS = f"""
SELECT count(*) FILTER (WHERE application_name <> '{_pg_notify.LISTENER_NAME}') AS pooled,
       count(*) FILTER (WHERE application_name = '{_pg_notify.LISTENER_NAME}') AS listening
FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


async def test_a_replica_uses_at_most_its_pool_and_one_listening_connection(
    tmp_path: Path, database: str
) -> None:
    async with (
        rpc.server(tmp_path, database=database, database_pool_size=2) as srv,
        rpc.stubs(srv.address) as s,
    ):
        await asyncio.gather(*(flows.create(s, "busy") for _ in range(40)))
        await pg.until_rows(
            database, f"SELECT listening = 1 FROM ({CONNECTIONS}) AS c", [(True,)], within_s=10
        )
        ((pooled, listening),) = (await pg.run(database, CONNECTIONS))[0]
        # 40 calls at once would have grown a larger pool; its connections stay open once made.
        assert pooled <= 2 and listening == 1
