"""The event bus: bounded per-subscriber memory; an overflow means "read on" while reading the table
and "cut off" while live."""

from __future__ import annotations

import datetime as dt

import pytest

from jobwarden_server.domain.errors import ShuttingDown
from jobwarden_server.domain.records import Event, EventKind
from jobwarden_server.events.bus import CATCH_UP, TOO_SLOW, EventBus


def _event(job_id: str, sequence: int) -> Event:
    return Event(
        job_id=job_id,
        owner="o",
        sequence=sequence,
        create_time=dt.datetime.now(dt.UTC),
        actor="t",
        kind=EventKind.LOG,
        data={},
    )


async def test_events_reach_only_their_jobs_subscribers_in_order() -> None:
    bus = EventBus(subscriber_queue_size=10)
    with bus.subscribe("a") as a, bus.subscribe("b") as b:
        bus.publish([_event("a", 1), _event("b", 1), _event("a", 2)])
        got = [await a.get(), await a.get()]
        assert [e.sequence for e in got if e is not None] == [1, 2]
        first_b = await b.get()
        assert first_b is not None and first_b.job_id == "b"
    assert bus.subscriber_count() == 0


async def test_a_subscriber_overflowing_while_it_reads_the_table_is_bounded_and_told_to_read_on() -> None:
    bus = EventBus(subscriber_queue_size=4)
    with bus.subscribe("a") as sub:
        sub.reading_table = True
        bus.publish(_event("a", n) for n in range(1, 1001))
        items = []
        while sub._items:  # drain what is buffered without waiting
            items.append(await sub.get())
        assert len(items) <= 4
        assert CATCH_UP in items
        assert sub.overflows > 0 and not sub.cut_off


async def test_a_live_subscriber_that_overflows_is_cut_off_and_buffers_nothing_more() -> None:
    bus = EventBus(subscriber_queue_size=4)
    with bus.subscribe("a") as sub:
        bus.publish(_event("a", n) for n in range(1, 5))
        assert not sub.cut_off  # a full queue is not yet an overflow
        bus.publish(_event("a", n) for n in range(5, 1001))
        assert sub.cut_off and not sub._items
        assert await sub.get() is TOO_SLOW
        bus.poke("a")
        assert await sub.get() is TOO_SLOW  # nothing is queued after the cut-off, not even wake-ups


async def test_a_tap_gathers_the_ids_of_every_changed_job_until_taken() -> None:
    bus = EventBus()
    with bus.tap(max_ids=3) as tap:
        bus.publish([_event("a", 1), _event("a", 2), _event("b", 1)])
        bus.poke("c", 5)  # another replica's change: an id without a body
        assert await tap.take() == {"a", "b", "c"}
        for job_id in ("d", "e", "f", "g"):
            bus.publish([_event(job_id, 1)])
        assert await tap.take() is None  # more than max_ids pending: reload everything
        bus.poke_all()
        assert await tap.take() is None
        await bus.close()
        with pytest.raises(ShuttingDown):
            await tap.take()
    bus.publish([_event("h", 1)])  # a closed tap is gone from the bus
