"""A jobwarden worker process as a user writes one: the SDK Worker, a handler per job, signals honoured.

`python -m bench.peers.jobwarden_worker ADDRESS noop|progress`; concurrency from BENCH_CONCURRENCY.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from jobwarden.client import Client, JobContext, Worker

JOB_TYPE = "bench.peers"


async def noop(_ctx: JobContext) -> dict[str, Any]:
    return {}


async def with_progress(ctx: JobContext) -> dict[str, Any]:
    await ctx.progress(50, "halfway")
    return {}


async def main(address: str, variant: str) -> None:
    async with Client(address) as client:
        worker = Worker(client, concurrency=int(os.environ["BENCH_CONCURRENCY"]))
        worker.register(JOB_TYPE, with_progress if variant == "progress" else noop)
        await worker.run(install_signal_handlers=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
