"""WatchJob: the current job, then its history after a cursor, then live events, until terminal.

The subscription is opened before the table is read, so an event committed in between is either in
the table read or in the subscription (or both: duplicates are dropped by sequence). Any gap in the
live sequence, or a wake-up without an event, sends the watcher back to the table. So delivery is in
order, without gaps or duplicates. Memory per watcher is bounded: a watcher that falls a whole queue
behind while live is cut off with WATCHER_TOO_SLOW (retryable) naming the sequence to resume after.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from jobwarden_server import store
from jobwarden_server.domain.auth import Principal
from jobwarden_server.domain.errors import InvalidArgument, WatcherTooSlow
from jobwarden_server.domain.records import Event, Job
from jobwarden_server.events.bus import CutOff, EventBus
from jobwarden_server.observability.metrics import Metrics
from jobwarden_server.service.jobs import reopens, terminal_event
from jobwarden_server.service.streams import StreamSlots

CATCH_UP_BATCH = 500


class WatchService:
    """Streams a job's snapshot and events to one watcher."""

    def __init__(self, db: store.Store, bus: EventBus, slots: StreamSlots, metrics: Metrics) -> None:
        self._store = db
        self._bus = bus
        self._slots = slots
        self._watchers = metrics.watchers

    async def watch(self, who: Principal, job_id: str, after_sequence: int) -> AsyncIterator[Job | Event]:
        """Yield the job, then every event with sequence > after_sequence, ending after the terminal one."""
        if after_sequence < 0:
            raise InvalidArgument("after_sequence", "must not be negative")
        with (
            self._slots.hold(who.owner),
            self._watchers.track_inprogress(),
            self._bus.subscribe(job_id) as subscription,
        ):
            # The job and the first page of its history in one read: a watch costs one transaction.
            job, first_page = await self._store.job_with_events(
                store.PageParams(owner=who.owner, job_id=job_id, after=after_sequence, limit=CATCH_UP_BATCH)
            )
            yield job
            if job.status.terminal and after_sequence >= job.last_sequence:
                return
            cursor = after_sequence
            prefetched: Sequence[Event] | None = first_page
            while True:
                subscription.reading_table = True
                last: Event | None = None
                async for event in _through_reopenings(
                    self._from_table(who.owner, job_id, cursor, prefetched)
                ):
                    cursor, last = event.sequence, event
                    yield event
                if last is not None and terminal_event(last):
                    return
                subscription.reading_table = False
                prefetched = None  # read at the start; any later catch-up reads the table anew
                if job.status.terminal:
                    # A finished job's history is all in the table already; only callback attempts,
                    # which come after its end, can follow, and they would never end the stream.
                    return
                # Live: take events while they follow on; a gap or a bare wake-up means "read the table".
                while True:
                    item = await subscription.get()
                    if item is CutOff.TOO_SLOW:
                        raise WatcherTooSlow(
                            f"the watch fell too far behind and was cut off; watch again with "
                            f"after_sequence={cursor}",
                            metadata={"job_id": job_id, "after_sequence": str(cursor)},
                        )
                    if item is None or item.sequence > cursor + 1:
                        break
                    if item.sequence == cursor + 1:
                        cursor = item.sequence
                        yield item
                        if terminal_event(item):
                            return

    async def _from_table(
        self, owner: str, job_id: str, cursor: int, prefetched: Sequence[Event] | None
    ) -> AsyncIterator[Event]:
        """Events after `cursor`, page by page; `prefetched` is the first page when it was read already."""
        while True:
            batch = prefetched
            prefetched = None
            if batch is None:
                batch = await self._store.event_list(
                    store.PageParams(owner=owner, job_id=job_id, after=cursor, limit=CATCH_UP_BATCH)
                )
            for event in batch:
                yield event
            if len(batch) < CATCH_UP_BATCH:
                return
            cursor = batch[-1].sequence


async def _through_reopenings(events: AsyncIterator[Event]) -> AsyncIterator[Event]:
    """`events` up to the terminal one that ends the job's history. The events after a terminal one
    are held back, and passed on only if an admin's forced change reopened the job after it
    (domain/admin.py): then that end was not the last."""
    held: list[Event] | None = None
    async for event in events:
        if held is not None and not reopens(event):
            held.append(event)
            continue
        for earlier in held or ():
            yield earlier
        held = None
        yield event
        if terminal_event(event):
            held = []
