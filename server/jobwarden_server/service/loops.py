"""The skeleton of the server's background loops (the reaper, retention): a pass every interval until
stopped, passes back to back while one says a backlog is left, and a failing pass logged and tried
again at the next interval, so a database outage never ends the loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from jobwarden_server.domain import errors

logger = logging.getLogger(__name__)


async def every(
    interval_s: float, stop: asyncio.Event, name: str, run_pass: Callable[[], Awaitable[bool]]
) -> None:
    """Run `run_pass` every `interval_s` until `stop` is set; while it answers True (work is left),
    run it again at once."""
    while not stop.is_set():
        try:
            while await run_pass() and not stop.is_set():
                pass  # a backlog: keep going without waiting
        except errors.StoreUnavailable as err:
            logger.warning("%s: store unavailable (%s); retrying", name, err)
        except Exception:
            logger.exception("%s: unexpected failure; retrying", name)
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass
