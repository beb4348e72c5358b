"""A small jobwarden worker: handles "image.resize" jobs until Ctrl-C or SIGTERM.

Run it next to `jobwarden serve`:  python examples/resize_worker.py
(JOBWARDEN_ADDRESS and JOBWARDEN_TOKEN are read as by the CLI.)
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from jobwarden.client import Client, JobContext, PermanentError, Worker


async def resize(ctx: JobContext) -> dict[str, Any]:
    width = ctx.parameters.get("width")
    if not isinstance(width, (int, float)) or width <= 0:
        raise PermanentError("parameter 'width' must be a positive number")
    steps = 4
    for step in range(1, steps + 1):
        if ctx.cancelled.is_set():
            raise asyncio.CancelledError
        await asyncio.sleep(0.5)  # stands in for real work
        await ctx.progress(100 * step / steps, f"step {step}/{steps}", done=step, total=steps)
    await ctx.add_asset("image", f"file:///tmp/resized-{ctx.job.id}.png", content_type="image/png")
    return {"width": width}


async def main() -> None:
    address = os.environ.get("JOBWARDEN_ADDRESS", "127.0.0.1:50051")
    async with Client(address, token=os.environ.get("JOBWARDEN_TOKEN")) as client:
        worker = Worker(client, concurrency=4)
        worker.register("image.resize", resize)
        await worker.run(install_signal_handlers=True)


if __name__ == "__main__":
    asyncio.run(main())
