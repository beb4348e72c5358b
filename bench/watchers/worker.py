"""A worker process for the latency run: the SDK Worker (a Work session), one progress report per job.

`python -m bench.watchers.worker ADDRESS JOB_TYPE CONCURRENCY OUT`. The handler stamps the report's
message with the system-wide monotonic clock (CLOCK_MONOTONIC: one clock for every process on the
machine) just before `ctx.progress`, so a watcher in another process can tell how long the report
took to reach it; it appends "job_id sent_ns acked_ns" to OUT once the server acknowledged the report.
Stops on SIGTERM like any SDK worker.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from jobwarden.client import Client, JobContext, Worker

SENT = "sent_ns="
"""Prefix of the progress message; the watcher reads the send time after it."""


def sent_ns(message: str) -> int | None:
    """The send time a report's message carries, or None for any other message."""
    if not message.startswith(SENT):
        return None
    return int(message[len(SENT) :])


async def main(address: str, job_type: str, concurrency: int, out_path: Path) -> None:
    with out_path.open("a", buffering=1) as out:  # a line per job, written as it happens

        async def handler(ctx: JobContext) -> dict[str, Any]:
            sent = time.monotonic_ns()
            await ctx.progress(50, f"{SENT}{sent}")
            out.write(f"{ctx.job.id} {sent} {time.monotonic_ns()}\n")
            return {}

        async with Client(address) as client:
            worker = Worker(client, concurrency=concurrency)
            worker.register(job_type, handler)
            await worker.run(install_signal_handlers=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])))
