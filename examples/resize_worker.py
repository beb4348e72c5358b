"""A small jobwarden worker: handles "image.resize" jobs until Ctrl-C or SIGTERM.

Run it next to `jobwarden serve`:  python examples/resize_worker.py
(JOBWARDEN_ADDRESS and JOBWARDEN_TOKEN are read as by the CLI.)

Each job takes about four seconds, in four progress steps, so `jobwarden jobs watch` has something to
show. The worker prints one line per job to its own terminal: the job's id, then its result (or why
it stopped).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

from jobwarden.client import Client, JobContext, PermanentError, Worker

STEPS = 4
STEP_SECONDS = 1.0


async def resize(ctx: JobContext) -> dict[str, Any]:
    try:
        result = await _resize(ctx)
    except BaseException as err:  # a failure, a cancel, or the worker stopping: say so, then let it end
        print(f"{ctx.job.id} stopped: {str(err) or type(err).__name__}", flush=True)
        raise
    print(f"{ctx.job.id} {json.dumps(result)}", flush=True)
    return result


async def _resize(ctx: JobContext) -> dict[str, Any]:
    width = ctx.parameters.get("width")
    if not isinstance(width, int | float) or width <= 0 or width != int(width):
        raise PermanentError("parameter 'width' must be a positive whole number")
    for step in range(1, STEPS + 1):
        if ctx.cancelled.is_set():
            raise asyncio.CancelledError
        await asyncio.sleep(STEP_SECONDS)  # stands in for real work
        await ctx.progress(100 * step / STEPS, f"step {step}/{STEPS}", done=step, total=STEPS)
    image = f"file:///tmp/resized-{ctx.job.id}.png"
    await ctx.add_asset("image", image, content_type="image/png")
    return {"width": int(width), "image": image}


async def main() -> None:
    address = os.environ.get("JOBWARDEN_ADDRESS", "127.0.0.1:50051")
    async with Client(address, token=os.environ.get("JOBWARDEN_TOKEN")) as client:
        worker = Worker(client, concurrency=4)
        worker.register("image.resize", resize)
        print(f"waiting for image.resize jobs at {address} (Ctrl-C stops)", flush=True)
        await worker.run(install_signal_handlers=True)


if __name__ == "__main__":
    asyncio.run(main())
