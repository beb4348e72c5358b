"""Integration tier: an in-process server on 127.0.0.1:0 over a real SQLite file, real gRPC clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support import rpc

from jobwarden_server import app


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[app.RunningServer]:
    async with rpc.server(tmp_path) as running:
        yield running


@pytest.fixture
async def stubs(srv: app.RunningServer) -> AsyncIterator[rpc.Stubs]:
    async with rpc.stubs(srv.address) as s:
        yield s
