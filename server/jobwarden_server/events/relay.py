"""BusRelay: wake-ups from the store's change feed (other replicas' commits) turned into bus wake-ups.

It is the replica's side of the store's ChangeSink protocol. Nothing here carries data: watchers
re-read the events table and claimers re-run their claim, so a wake-up that is lost, late or
repeated costs latency or a query, never an event.
"""

from __future__ import annotations

import asyncio
import logging

from jobwarden_server.events.bus import EventBus

logger = logging.getLogger(__name__)


class BusRelay:
    """Pokes the bus's watchers and wakes its claimers; matches store.ChangeSink."""

    def __init__(self, bus: EventBus) -> None:
        self._bus = bus
        self._waking: asyncio.Task[None] | None = None
        self.resyncs = 0
        """How many times everyone was woken after the feed reconnected (for tests and metrics)."""

    def job_changed(self, job_id: str, sequence: int) -> None:
        """The job's watchers re-read the table, unless this replica already handed them `sequence`."""
        self._bus.poke(job_id, sequence)

    def work_available(self) -> None:
        """Wake waiting claimers. A burst of notifications while a wake-up is pending becomes that one
        wake-up: the claimers it wakes run their claims after every notification received so far."""
        if self._waking is None or self._waking.done():
            self._waking = asyncio.get_running_loop().create_task(self._bus.work_available())

    def resync(self) -> None:
        """The feed was not listening for a while: every watcher and every claimer looks again."""
        self.resyncs += 1
        self._bus.poke_all()
        self.work_available()
