"""Waiting for a condition, bounded by a timeout (never a fixed sleep standing in for one)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    """Return as soon as `condition()` is true; TimeoutError after `within_s` seconds.

    For state that offers nothing to await (a server's internal counter); prefer awaiting an event
    or a stream where there is one.
    """
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 - there is no event to await for these conditions
            await asyncio.sleep(0.01)
