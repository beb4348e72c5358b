"""Celery as its users run it: `celery worker` processes (thread pool, 16 threads each) over Redis.

A task is finished when its result in the backend says SUCCESS; enqueue is one `delay()` per job (a
group still publishes one message per task, so Celery has no batch to offer).
"""

from __future__ import annotations

import json
import os
from importlib import metadata

from bench.peers.drive import CONCURRENCY, Settings
from bench.peers.redis_base import RedisRun


def _succeeded(value: bytes) -> bool:
    status = json.loads(value)["status"]
    if status in ("FAILURE", "REVOKED"):
        raise RuntimeError(f"a Celery task ended {status}")
    return bool(status == "SUCCESS")


class CeleryRun(RedisRun):
    """One Celery app on the bench's Redis database (broker and result backend)."""

    enqueue_mode = "per call (delay(); no batch API)"

    def __init__(self, s: Settings) -> None:
        super().__init__(s, lambda task_id: f"celery-task-meta-{task_id}")
        os.environ["BENCH_REDIS_URL"] = self.url  # read by the app module at import

    async def setup(self) -> None:
        await self.flush()

    async def enqueue(self, n: int) -> None:
        from bench.peers.celery_app import noop, progress

        task = progress if self.s.progress else noop
        # delay() is blocking (kombu's Redis transport); nothing else runs in this process meanwhile.
        self.outstanding = [task.delay().id for _ in range(n)]

    def worker_command(self, index: int) -> tuple[list[str], dict[str, str]]:
        argv = [
            str(self.s.bin / "celery"),
            "-A",
            "bench.peers.celery_app",
            "worker",
            "--pool",
            "threads",
            "--concurrency",
            str(CONCURRENCY),
            "--hostname",
            f"bench{index}@%h",
        ]
        return argv, {"BENCH_REDIS_URL": self.url}

    async def remaining(self) -> int:
        await self.finished(_succeeded)
        return len(self.outstanding)

    async def check(self, n: int) -> None:
        if self.outstanding:
            raise RuntimeError(f"{len(self.outstanding)} Celery tasks did not succeed")

    def versions(self) -> dict[str, str]:
        return {p: metadata.version(p) for p in ("celery", "kombu", "redis")}


def make(s: Settings) -> CeleryRun:
    """The driver's entry point."""
    return CeleryRun(s)
