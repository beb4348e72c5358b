"""A clock the test moves: "a week has passed" or "the progress stood still a minute" become facts set
by the test, not waits. Pass it as a server's or the services' clock."""

from __future__ import annotations

import datetime as dt

DEFAULT_START = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


class MovedClock:
    """Says `now`, which only the test changes (assign it, or `advance`)."""

    def __init__(self, now: dt.datetime = DEFAULT_START) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> dt.datetime:
        """Move on by `seconds`; the new time."""
        self.now += dt.timedelta(seconds=seconds)
        return self.now
