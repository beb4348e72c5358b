"""Integration tier: an in-process server on 127.0.0.1:0 over a real database, real gRPC clients.

Every test using `srv` runs on a SQLite file, and again on a throw-away PostgreSQL database when
JOBWARDEN_TEST_DATABASE_URL is set (those runs are marked `postgres`, so they are deselected without it),
except in modules whose behaviour is decided before the store is reached.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support import pg, rpc

from jobwarden_server import app

SQLITE_ONLY_MODULES = frozenset({"test_validation", "test_http_auth"})
"""Request validation and the HTTP port's authentication refuse before any database access: a second
database would test nothing new."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give every test that uses a server (directly or through `stubs`) one run per database."""
    if "srv" in metafunc.fixturenames or "backend" in metafunc.fixturenames:
        backends: list[Any] = ["sqlite"]
        if os.environ.get(pg.URL_ENV) and Path(str(metafunc.module.__file__)).stem not in SQLITE_ONLY_MODULES:
            backends.append(pytest.param("postgres", marks=pytest.mark.postgres))
        metafunc.parametrize("backend", backends)


@pytest.fixture
async def srv(tmp_path: Path, backend: str) -> AsyncIterator[app.RunningServer]:
    async with rpc.server(tmp_path, backend=backend) as running:
        yield running


@pytest.fixture
async def stubs(srv: app.RunningServer) -> AsyncIterator[rpc.Stubs]:
    async with rpc.stubs(srv.address) as s:
        yield s
