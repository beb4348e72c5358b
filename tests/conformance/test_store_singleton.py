"""`store.singleton(name)`: background work done by one process at a time, with failover.

On PostgreSQL it is an advisory lock scoped to a transaction held for the block; on SQLite there is
one process per database, so the answer is always yes. (Failover when a holder dies:
tests/replicas/test_singleton_failover.py.)
"""

from __future__ import annotations

from collections.abc import Callable

from jobwarden_server.store import SqlStore


async def test_one_store_at_a_time_holds_a_singleton_and_the_next_takes_over(
    backend: str, open_stores: Callable[..., SqlStore]
) -> None:
    first, second = open_stores(), open_stores()
    # Entered together, as two replicas' reapers ticking at the same moment.
    async with (
        first.singleton("reaper") as first_holds,
        second.singleton("reaper") as second_holds,
        second.singleton("other") as other_holds,
    ):
        pass
    assert first_holds
    assert second_holds is (backend == "sqlite")
    assert other_holds, "a different name is a different lock"
    async with second.singleton("reaper") as after_release:
        assert after_release
