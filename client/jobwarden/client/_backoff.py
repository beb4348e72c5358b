"""How long the SDK waits before trying again, where the server did not say (RetryInfo)."""

from __future__ import annotations

import random

MAX_BACKOFF_S = 30.0


def backoff(attempt: int, base: float = 0.5, cap: float = MAX_BACKOFF_S) -> float:
    """Exponential in the attempt, capped at ``cap`` seconds, with jitter so a fleet does not retry in
    lockstep."""
    delay = min(cap, base * 2.0**attempt)
    return delay * random.uniform(0.5, 1.0)
