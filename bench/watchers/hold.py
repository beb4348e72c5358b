"""A process holding a share of the fan-out's WatchJob streams open (`python -m bench.watchers.hold`).

Reads one JSON line from stdin: {"address": ..., "job_ids": [...], "channels": n, "opening": n}. Opens
a watch for each job over `channels` connections, at most `opening` waiting for their first message at
once: a burst of thousands of new streams on one HTTP/2 connection gets some of them refused by gRPC's
transport (the client sees CANCELLED), which is the client's doing, so a refused opening is retried.
Writes JSON lines to stdout:

    {"started_ns": t}                                       before the first opening
    {"ready_ns": t, "opened": n, "retries": n, "failed": {...}}   once every watch had its first message
    {"event": job_id, "received_ns": t, "status": "..."}    each transition read after that
    {"broken": job_id, "code": "..."}                        a watch that ended in an error after opening

and ends its streams and exits when stdin closes. Times are CLOCK_MONOTONIC, as the parent's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import grpc
import grpc.aio

from jobwarden.v1 import job_pb2, job_service_pb2, job_service_pb2_grpc

RETRYABLE = frozenset(
    {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED}
)
ATTEMPTS = 20
RETRY_S = 0.2


def _say(**item: Any) -> None:
    sys.stdout.write(json.dumps(item) + "\n")
    sys.stdout.flush()


class Holder:
    """The watches of one process."""

    def __init__(self, address: str, channels: int, opening: int) -> None:
        # A local subchannel pool per channel, so that each is a connection of its own.
        self.channels = [
            grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)])
            for _ in range(channels)
        ]
        self.stubs = [job_service_pb2_grpc.JobServiceStub(c) for c in self.channels]
        self.opening = asyncio.Semaphore(opening)
        self.calls: list[Any] = []
        self.readers: list[asyncio.Task[None]] = []
        self.ready = False
        self.retries = 0
        self.failed: dict[str, int] = {}

    async def open_all(self, job_ids: list[str]) -> int:
        """Open every watch; returns how many had their first message."""
        opened = await asyncio.gather(*(self._open(i, job_id) for i, job_id in enumerate(job_ids)))
        return sum(opened)

    async def _open(self, i: int, job_id: str) -> bool:
        stub = self.stubs[i % len(self.stubs)]
        for _ in range(ATTEMPTS):
            async with self.opening:
                call = stub.WatchJob(job_service_pb2.WatchJobRequest(job_id=job_id))
                try:
                    first = await call.read()
                except grpc.RpcError as err:
                    call.cancel()
                    if err.code() not in RETRYABLE:
                        self.failed[err.code().name] = self.failed.get(err.code().name, 0) + 1
                        return False
                    self.retries += 1
                else:
                    if first is grpc.aio.EOF:
                        self.failed["EOF"] = self.failed.get("EOF", 0) + 1
                        return False
                    self.calls.append(call)
                    self.readers.append(asyncio.create_task(self._read(job_id, call)))
                    return True
            await asyncio.sleep(RETRY_S)
        self.failed["refused every time"] = self.failed.get("refused every time", 0) + 1
        return False

    async def _read(self, job_id: str, call: Any) -> None:
        try:
            while (item := await call.read()) is not grpc.aio.EOF:
                if self.ready and item.event.HasField("transition"):
                    status = job_pb2.JobStatus.Name(item.event.transition.to_status)
                    _say(event=job_id, received_ns=time.monotonic_ns(), status=status)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.CANCELLED:  # ours, at the end
                _say(broken=job_id, code=err.code().name)

    async def close(self) -> None:
        for call in self.calls:
            call.cancel()
        await asyncio.gather(*self.readers, return_exceptions=True)
        for channel in self.channels:
            await channel.close()


async def main() -> None:
    task = json.loads(await asyncio.to_thread(sys.stdin.readline))
    holder = Holder(task["address"], task["channels"], task["opening"])
    for channel in holder.channels:
        await channel.channel_ready()
    _say(started_ns=time.monotonic_ns())
    opened = await holder.open_all(task["job_ids"])
    holder.ready = True
    _say(ready_ns=time.monotonic_ns(), opened=opened, retries=holder.retries, failed=holder.failed)
    await asyncio.to_thread(sys.stdin.read)  # until the parent closes our stdin
    await holder.close()


if __name__ == "__main__":
    asyncio.run(main())
