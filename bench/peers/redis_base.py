"""What the Redis-backed systems share: the bench's own database number, flushed before and after;
the server's CPU counter; and "done" read from the result keys of the jobs still outstanding."""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable

import redis.asyncio as redis

from bench.peers.drive import Settings

CHUNK = 1000  # keys per MGET


def database_number(url: str) -> int:
    """The database number a redis:// URL names (0 when it names none)."""
    path = urllib.parse.urlsplit(url).path.lstrip("/")
    return int(path) if path else 0


class RedisRun:
    """A connection to the bench's Redis database, and the set of job ids not yet seen finished."""

    server_pid = None
    database = "redis"

    def __init__(self, s: Settings, result_key: Callable[[str], str]) -> None:
        assert s.redis_url is not None
        self.s = s
        self.url = s.redis_url
        self._result_key = result_key
        self.redis = redis.Redis.from_url(self.url)
        self.outstanding: list[str] = []

    async def flush(self) -> None:
        # FLUSHDB empties only the database this connection selected: the bench's own number.
        await self.redis.flushdb()

    async def finished(self, is_done: Callable[[bytes], bool]) -> None:
        """Drop from `outstanding` each job whose result key says it is done (checked by `is_done`)."""
        still: list[str] = []
        for i in range(0, len(self.outstanding), CHUNK):
            ids = self.outstanding[i : i + CHUNK]
            values = await self.redis.mget([self._result_key(j) for j in ids])
            still.extend(j for j, v in zip(ids, values, strict=True) if v is None or not is_done(v))
        self.outstanding = still

    def excluded_backends(self) -> list[int]:
        return []

    async def database_seconds(self) -> float | None:
        """redis-server's own CPU counter (all of it: the bench's polling and any other client too)."""
        info = await self.redis.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    async def close(self) -> None:
        try:
            await self.flush()
        finally:
            await self.redis.aclose()
