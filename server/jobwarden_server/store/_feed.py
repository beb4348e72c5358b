"""The change feed seam: how a store tells a replica that other replicas changed something.

Only wake-ups cross this seam, never data: a sink reacts by re-reading the store. The store's side
(PostgreSQL LISTEN/NOTIFY) lives in _pg_notify.py; the replica's side (the event bus) in
events/relay.py, which matches `ChangeSink` structurally, so neither package imports the other.
"""

from __future__ import annotations

import asyncio
from typing import Protocol


class ChangeSink(Protocol):
    """Receives wake-ups; each method must return at once (it runs in the listener's callback)."""

    def job_changed(self, job_id: str, sequence: int) -> None:
        """Events up to `sequence` of the job were committed (possibly by this replica)."""
        ...

    def work_available(self) -> None:
        """A job became QUEUED somewhere: waiting claimers should look again."""
        ...

    def resync(self) -> None:
        """Wake-ups may have been missed (the feed was not listening): wake everyone to re-read."""
        ...


class ChangeFeed(Protocol):
    """A running source of wake-ups for one sink."""

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver wake-ups until `stop` is set; survive lost connections on its own."""
        ...
