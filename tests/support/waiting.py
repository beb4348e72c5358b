"""Waiting for a condition, bounded by a timeout (never a fixed sleep standing in for one)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(condition: Callable[[], bool], within_s: float = 10.0) -> None:
    """Return as soon as `condition()` is true; TimeoutError after `within_s` seconds.

    For state that offers nothing to await (a server's internal counter); prefer awaiting an event
    or a stream where there is one.
    """
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 - there is no event to await for these conditions
            await asyncio.sleep(0.01)


def until_sync(condition: Callable[[], bool], within_s: float = 10.0, what: str = "the condition") -> None:
    """`until` for code outside an event loop (a test driving subprocesses): polls `condition()`."""
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {within_s:.0f}s for {what}")
        time.sleep(0.02)
