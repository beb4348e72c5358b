"""Several replicas on one PostgreSQL database: each test gets a throw-away database of its own.

Every module here is marked `postgres` (deselected when JOBWARDEN_TEST_DATABASE_URL is unset).
Replicas are either in-process servers (`replicas`: two apps, each with its own store, bus and
listener, sharing only the database) or real `jobwarden serve` processes (`serve_config` + proc).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import pg, rpc

from jobwarden_server import app


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """The URL of an empty PostgreSQL database of this test's own (servers migrate it)."""
    async with pg.throwaway_database("jobwarden_rep") as url:
        yield url


@pytest.fixture
async def replicas(
    tmp_path: Path, database: str
) -> AsyncIterator[tuple[app.RunningServer, app.RunningServer]]:
    """Two in-process servers on one database, reaping every 0.2 s."""
    async with (
        rpc.server(tmp_path, database=database, reaper_interval_s=0.2) as a,
        rpc.server(tmp_path, database=database, reaper_interval_s=0.2) as b,
    ):
        yield a, b


@pytest.fixture
def serve_config(tmp_path: Path) -> Path:
    """A config file for `jobwarden serve` replicas: quick reaper and retries, a small pool."""
    path = tmp_path / "replica.toml"
    path.write_text(
        "reaper_interval_seconds = 0.2\n"
        "database_pool_size = 4\n"
        "[retry]\n"
        "initial_backoff_seconds = 0.1\n"
        "max_backoff_seconds = 0.5\n"
    )
    return path
