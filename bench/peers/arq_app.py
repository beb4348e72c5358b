"""The arq worker settings: `arq bench.peers.arq_app.WorkerSettings`."""

from __future__ import annotations

import os
from typing import Any, ClassVar

from arq import func
from arq.connections import RedisSettings

from bench.peers.drive import CONCURRENCY


async def noop(_ctx: dict[str, Any]) -> None:
    """The job: nothing."""


class WorkerSettings:
    """16 jobs at a time per worker process; results kept (arq's default), which is how the bench
    sees a job finished."""

    functions: ClassVar[list[Any]] = [func(noop, name="bench")]
    redis_settings = RedisSettings.from_dsn(os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15"))
    max_jobs = CONCURRENCY
