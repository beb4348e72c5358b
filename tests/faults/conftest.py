"""Fault tier: real `jobwarden serve` processes hurt on purpose.

A test that asks for `database` runs on a SQLite file, and again on a throw-away PostgreSQL database
when JOBWARDEN_TEST_DATABASE_URL is set (marked `postgres`, so deselected without it): a crash must
lose nothing on either store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import pg


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Where the server process keeps its data: a file path or a PostgreSQL URL."""
    if request.param == "postgres":
        async with pg.throwaway_database() as url:
            yield url
    else:
        yield str(tmp_path / "server.db")
