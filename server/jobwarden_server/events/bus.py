"""In-process fan-out of committed events.

The bus is a wake-up path, not the record: the events table is. A subscriber's queue is bounded, so a
watcher costs at most `maxsize` events of memory. When the queue overflows while its watcher reads the
table, the queue is dropped and the watcher re-reads after its cursor; when it overflows while the
watcher is live, the watcher is not taking what it is sent and is cut off (TOO_SLOW): it resumes from
its last sequence, like after any broken stream. A missed or reordered publication is repaired by
reading the table (the watcher sees a gap in sequences), and so are the wake-ups arriving from other
replicas, which carry no event bodies at all.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from jobwarden_server.domain.errors import ShuttingDown
from jobwarden_server.domain.records import Event

logger = logging.getLogger(__name__)

CATCH_UP = None
"""Delivered instead of an event when the subscriber must re-read the table after its cursor."""


class CutOff(enum.Enum):
    TOO_SLOW = "too_slow"
    """Delivered, and then nothing more, once a live subscriber's queue overflowed: end the watch."""


TOO_SLOW = CutOff.TOO_SLOW


class Tap:
    """The ids of every job changed since the last `take`, of any owner: the dashboard's feed of the
    list view. Bounded: past `max_ids` pending ids it forgets them and says so instead (the reader
    reloads what it shows, like a watcher that reads the table after a gap)."""

    def __init__(self, max_ids: int) -> None:
        self._max_ids = max_ids
        self._ids: set[str] = set()
        self._resync = False
        self._ready = asyncio.Event()
        self.closed = False

    def offer(self, job_id: str) -> None:
        """Note a changed job; never blocks."""
        if self._resync:
            return
        if len(self._ids) >= self._max_ids:
            self.resync()
            return
        self._ids.add(job_id)
        self._ready.set()

    def resync(self) -> None:
        """Forget the pending ids: the reader must reload everything."""
        self._ids.clear()
        self._resync = True
        self._ready.set()

    async def take(self) -> frozenset[str] | None:
        """The ids changed since the last take (at least one), or None when some were lost (an
        overflow, or missed wake-ups from other replicas): reload everything. ShuttingDown once
        closed. Changes arriving while the caller handles a batch gather into the next one."""
        while not self._ids and not self._resync:
            if self.closed:
                raise ShuttingDown("server is shutting down")
            self._ready.clear()
            await self._ready.wait()
        if self._resync:
            self._resync = False
            return None
        ids, self._ids = frozenset(self._ids), set()
        return ids

    def close(self) -> None:
        """Wake the reader for good."""
        self.closed = True
        self._ready.set()


class Subscription:
    """Events of one job as they are committed, at most `maxsize` buffered."""

    def __init__(
        self, job_id: str, maxsize: int, on_cut_off: Callable[[Subscription], None] | None = None
    ) -> None:
        self.job_id = job_id
        self._on_cut_off = on_cut_off
        self._maxsize = maxsize
        self._items: collections.deque[Event | None] = collections.deque()
        self._ready = asyncio.Event()
        self.overflows = 0
        self.reading_table = False
        """Set by the reader while it reads the table: an overflow then only means "read on"."""
        self.cut_off = False
        self.closed = False

    def offer(self, event: Event | None) -> None:
        """Queue an event (or a bare wake-up, None); see the module for what an overflow does."""
        if self.cut_off:
            return
        if event is CATCH_UP and self._items and self._items[-1] is CATCH_UP:
            return  # the re-read already queued will find whatever this wake-up is about
        if len(self._items) >= self._maxsize:
            self._items.clear()
            self.overflows += 1
            if not self.reading_table:
                self.cut_off = True
                if self._on_cut_off is not None:
                    self._on_cut_off(self)
                self._ready.set()
                return
            event = CATCH_UP
        self._items.append(event)
        self._ready.set()

    async def get(self) -> Event | CutOff | None:
        """The next event; CATCH_UP when the caller must read the table after its cursor; TOO_SLOW
        when it was cut off.

        Raises ShuttingDown once the bus is closed: the watcher's stream ends with a retryable status
        and the client resumes, from its last sequence, on another replica or after the restart."""
        while not self._items:
            if self.cut_off:
                return TOO_SLOW
            if self.closed:
                raise ShuttingDown("server is shutting down; resume the watch from the last sequence seen")
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def close(self) -> None:
        """Wake the reader for good (see `get`)."""
        self.closed = True
        self._ready.set()


class EventBus:
    """Publishes committed events to the subscribers of their job and wakes claimers on new work."""

    def __init__(self, *, subscriber_queue_size: int = 256) -> None:
        self._queue_size = subscriber_queue_size
        self._subscribers: dict[str, set[Subscription]] = collections.defaultdict(set)
        self._work = asyncio.Condition()
        self._published: dict[str, int] = {}
        """Newest sequence handed to each subscribed job's subscribers, to skip redundant pokes."""
        self.closed = False
        self.claimers_waiting = 0
        """Long polls waiting for work right now (for metrics and tests)."""
        self.watchers_cut_off = 0
        """Watches ended as too slow since start-up (for metrics and tests)."""
        self._taps: set[Tap] = set()

    @contextmanager
    def tap(self, max_ids: int = 10_000) -> Iterator[Tap]:
        """The ids of every job changed, local or (as wake-ups) from other replicas, for the block."""
        tap = Tap(max_ids)
        if self.closed:
            tap.close()
        self._taps.add(tap)
        try:
            yield tap
        finally:
            self._taps.discard(tap)

    @contextmanager
    def subscribe(self, job_id: str) -> Iterator[Subscription]:
        """Subscribe for the duration of the `with` block (subscribe before reading the table)."""
        sub = Subscription(job_id, self._queue_size, self._count_cut_off)
        if self.closed:
            sub.close()
        self._subscribers[job_id].add(sub)
        try:
            yield sub
        finally:
            subs = self._subscribers.get(job_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subscribers[job_id]
                    self._published.pop(job_id, None)

    def _count_cut_off(self, sub: Subscription) -> None:
        self.watchers_cut_off += 1
        logger.info("a watcher of job %s fell %d events behind and was cut off", sub.job_id, self._queue_size)

    def publish(self, events: Iterable[Event]) -> None:
        """Hand committed events to their job's subscribers. Never blocks."""
        for event in events:
            for tap in self._taps:
                tap.offer(event.job_id)
            subs = self._subscribers.get(event.job_id)
            if not subs:
                continue
            if event.sequence > self._published.get(event.job_id, 0):
                self._published[event.job_id] = event.sequence
            for sub in subs:
                sub.offer(event)

    def poke(self, job_id: str, sequence: int | None = None) -> None:
        """Wake a job's subscribers without an event body (they re-read the table).

        With `sequence` (from a change notification, which arrives for this replica's own commits
        too), subscribers already handed that event by `publish` are left alone."""
        for tap in self._taps:
            tap.offer(job_id)
        if sequence is not None and sequence <= self._published.get(job_id, 0):
            return
        for sub in self._subscribers.get(job_id, ()):
            sub.offer(CATCH_UP)

    def poke_all(self) -> None:
        """Wake every subscriber to re-read the table (wake-ups from other replicas may be lost)."""
        for tap in self._taps:
            tap.resync()
        for subs in self._subscribers.values():
            for sub in subs:
                sub.offer(CATCH_UP)

    def tap_count(self) -> int:
        """How many taps are open (for metrics and tests)."""
        return len(self._taps)

    def subscriber_count(self) -> int:
        """How many watch subscriptions are open (for metrics and tests)."""
        return sum(len(s) for s in self._subscribers.values())

    async def work_available(self) -> None:
        """Wake every claimer waiting in `wait_for_work` (new QUEUED jobs were committed)."""
        async with self._work:
            self._work.notify_all()

    async def close(self) -> None:
        """Shutdown: end every watch (ShuttingDown) and release every waiting claimer at once."""
        self.closed = True
        for tap in self._taps:
            tap.close()
        for subs in self._subscribers.values():
            for sub in subs:
                sub.close()
        await self.work_available()

    async def wait_for_work(self, seconds: float) -> None:
        """Wait until `work_available` is called or `seconds` pass (at once when closed)."""
        if self.closed:
            return
        async with self._work:
            self.claimers_waiting += 1
            try:
                await asyncio.wait_for(self._work.wait(), seconds)
            except TimeoutError:
                pass
            finally:
                self.claimers_waiting -= 1
