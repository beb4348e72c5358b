"""The procrastinate app its worker runs: `procrastinate --app=bench.peers.procrastinate_app.app worker`."""

from __future__ import annotations

import os

import procrastinate

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(conninfo=os.environ.get("BENCH_POSTGRES_URL", "")),
)


@app.task(name="bench")
async def noop() -> None:
    """The job: nothing."""
