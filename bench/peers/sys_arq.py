"""arq as its users run it: `arq module.WorkerSettings` processes over Redis; one enqueue_job per job."""

from __future__ import annotations

from importlib import metadata

from arq import create_pool
from arq.connections import RedisSettings
from arq.constants import result_key_prefix
from arq.jobs import deserialize_result

from bench.peers.drive import CONCURRENCY, Settings
from bench.peers.redis_base import RedisRun


def _succeeded(value: bytes) -> bool:
    if not deserialize_result(value).success:
        raise RuntimeError("an arq job failed")
    return True


class ArqRun(RedisRun):
    """arq on the bench's Redis database."""

    enqueue_mode = "per call (enqueue_job; no batch API)"

    def __init__(self, s: Settings) -> None:
        super().__init__(s, lambda job_id: f"{result_key_prefix}{job_id}")

    async def setup(self) -> None:
        await self.flush()

    async def enqueue(self, n: int) -> None:
        pool = await create_pool(RedisSettings.from_dsn(self.url))
        try:
            jobs = [await pool.enqueue_job("bench") for _ in range(n)]
        finally:
            await pool.aclose()
        self.outstanding = [j.job_id for j in jobs if j is not None]

    def worker_command(self, index: int) -> tuple[list[str], dict[str, str]]:
        argv = [str(self.s.bin / "arq"), "bench.peers.arq_app.WorkerSettings"]
        return argv, {"BENCH_REDIS_URL": self.url, "BENCH_CONCURRENCY": str(CONCURRENCY)}

    async def remaining(self) -> int:
        await self.finished(_succeeded)
        return len(self.outstanding)

    async def check(self, n: int) -> None:
        if self.outstanding:
            raise RuntimeError(f"{len(self.outstanding)} arq jobs did not finish")

    def versions(self) -> dict[str, str]:
        return {p: metadata.version(p) for p in ("arq", "redis")}


def make(s: Settings) -> ArqRun:
    """The driver's entry point."""
    return ArqRun(s)
