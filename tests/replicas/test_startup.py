"""Replicas started at the same moment on an empty database: one migrates, the others wait for it."""

from __future__ import annotations

import asyncio

import pytest
from support import flows, rpc

from jobwarden_server import app
from jobwarden_server.settings import Settings

pytestmark = pytest.mark.postgres


async def test_three_replicas_starting_together_on_an_empty_database_all_serve(database: str) -> None:
    settings = Settings(listen="127.0.0.1:0", database=database)
    started = await asyncio.gather(*(app.start(settings) for _ in range(3)), return_exceptions=True)
    servers = [s for s in started if isinstance(s, app.RunningServer)]
    try:
        assert len(servers) == 3, [s for s in started if not isinstance(s, app.RunningServer)]
        for srv in servers:
            async with rpc.stubs(srv.address) as s:
                await flows.create(s, "ready")
    finally:
        await asyncio.gather(*(srv.stop(grace=1.0) for srv in servers))
