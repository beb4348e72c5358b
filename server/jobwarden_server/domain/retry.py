"""Retry policy: how long a job waits before its next attempt."""

from __future__ import annotations

import dataclasses
import random


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Exponential backoff with jitter: attempt n waits about initial * multiplier**(n-1), capped."""

    initial_backoff_s: float = 1.0
    max_backoff_s: float = 300.0
    multiplier: float = 2.0
    default_max_attempts: int = 3

    def backoff_s(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before the attempt after `attempt` (1-based). Jitter spreads a burst of failures so
        they do not all come back at the same instant; it keeps at least half the nominal delay."""
        nominal = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** max(0, attempt - 1))
        return nominal * (rng or random).uniform(0.5, 1.0)
