"""In-process fan-out of committed events.

The bus is a wake-up path, not the record: the events table is. A subscriber's queue is bounded; when
it overflows, the queue is dropped and the subscriber is told to catch up from the table. So a slow
watcher costs at most `maxsize` events of memory, and a missed or reordered publication is repaired by
reading the table (the watcher sees a gap in sequences). The same holds for wake-ups arriving from
other replicas, which carry no event bodies at all.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from jobwarden_server.domain.records import Event

logger = logging.getLogger(__name__)

CATCH_UP = None
"""Delivered instead of an event when the subscriber must re-read the table (overflow)."""


class Subscription:
    """Events of one job as they are committed, at most `maxsize` buffered."""

    def __init__(self, job_id: str, maxsize: int) -> None:
        self.job_id = job_id
        self._maxsize = maxsize
        self._items: collections.deque[Event | None] = collections.deque()
        self._ready = asyncio.Event()
        self.overflows = 0

    def offer(self, event: Event | None) -> None:
        """Queue an event (or a bare wake-up, None); on overflow replace everything by CATCH_UP."""
        if len(self._items) >= self._maxsize:
            self._items.clear()
            self.overflows += 1
            event = CATCH_UP
        self._items.append(event)
        self._ready.set()

    async def get(self) -> Event | None:
        """The next event, or CATCH_UP when the caller must read the table after its cursor."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()


class EventBus:
    """Publishes committed events to the subscribers of their job and wakes claimers on new work."""

    def __init__(self, *, subscriber_queue_size: int = 256) -> None:
        self._queue_size = subscriber_queue_size
        self._subscribers: dict[str, set[Subscription]] = collections.defaultdict(set)
        self._work = asyncio.Condition()

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[Subscription]:
        """Subscribe for the duration of the `with` block (subscribe before reading the table)."""
        sub = Subscription(job_id, self._queue_size)
        self._subscribers[job_id].add(sub)
        try:
            yield sub
        finally:
            subs = self._subscribers.get(job_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[job_id]

    def publish(self, events: Iterable[Event]) -> None:
        """Hand committed events to their job's subscribers. Never blocks."""
        for event in events:
            for sub in self._subscribers.get(event.job_id, ()):
                sub.offer(event)

    def poke(self, job_id: str) -> None:
        """Wake a job's subscribers without an event body (they re-read the table)."""
        for sub in self._subscribers.get(job_id, ()):
            sub.offer(CATCH_UP)

    def subscriber_count(self) -> int:
        """How many watch subscriptions are open (for metrics and tests)."""
        return sum(len(s) for s in self._subscribers.values())

    async def work_available(self) -> None:
        """Wake every claimer waiting in `wait_for_work` (new QUEUED jobs were committed)."""
        async with self._work:
            self._work.notify_all()

    async def wait_for_work(self, seconds: float) -> None:
        """Wait until `work_available` is called or `seconds` pass."""
        async with self._work:
            try:
                await asyncio.wait_for(self._work.wait(), seconds)
            except TimeoutError:
                pass
