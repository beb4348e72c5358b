"""A replica holding a singleton (the reaper's lock) dies: another replica takes the work over."""

from __future__ import annotations

import asyncio

import pytest
from support import pg

from jobwarden_server.domain import errors
from jobwarden_server.store import _postgres, migrate, open_store

pytestmark = pytest.mark.postgres


async def test_a_holder_whose_session_dies_frees_the_singleton_for_another_store(database: str) -> None:
    await migrate(database)
    holder, other = open_store(database), open_store(database)
    try:
        # The holder learns it lost its connection only when its block ends: that is an outage.
        with pytest.raises(errors.StoreUnavailable):
            async with holder.singleton("reaper") as held:
                assert held
                async with other.singleton("reaper") as taken:
                    assert not taken
                (rows,) = await pg.run(
                    database,
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid() "
                    f"AND classid = {_postgres.SINGLETON_LOCK_CLASS} "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                )
                assert rows == [(1,)]
                # The session ends a moment after pg_terminate_backend returns: try until it has.
                async with asyncio.timeout(10):
                    while True:
                        async with other.singleton("reaper") as taken:
                            if taken:
                                break
                        await asyncio.sleep(0.02)
    finally:
        await holder.close()
        await other.close()
