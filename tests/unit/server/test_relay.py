"""Wake-ups from other replicas: the bus's pokes and the relay between the change feed and the bus."""

from __future__ import annotations

import asyncio
import datetime as dt

from support import waiting

from jobwarden_server.domain.records import Event, EventKind
from jobwarden_server.events.bus import CATCH_UP, EventBus
from jobwarden_server.events.relay import BusRelay
from jobwarden_server.store import _pg_notify


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


def _drain(items: list[Event | None], sub: object) -> list[Event | None]:
    queue = sub._items  # type: ignore[attr-defined]
    while queue:
        items.append(queue.popleft())
    return items


async def test_a_poke_for_an_event_already_published_here_wakes_nobody() -> None:
    bus = EventBus()
    relay = BusRelay(bus)
    with bus.subscribe("a") as sub:
        bus.publish([_event("a", 1), _event("a", 2)])
        relay.job_changed("a", 2)  # this replica's own commit, notified back to it
        assert [e.sequence for e in _drain([], sub) if e is not None] == [1, 2]
        relay.job_changed("a", 3)  # committed elsewhere: re-read the table
        assert _drain([], sub) == [CATCH_UP]


async def test_pokes_pile_up_as_one_catch_up() -> None:
    bus = EventBus()
    with bus.subscribe("a") as sub:
        for sequence in range(1, 50):
            bus.poke("a", sequence)
        assert _drain([], sub) == [CATCH_UP]


async def test_resync_wakes_every_watcher_and_every_claimer() -> None:
    bus = EventBus()
    relay = BusRelay(bus)
    with bus.subscribe("a") as a, bus.subscribe("b") as b:
        claimer = asyncio.create_task(bus.wait_for_work(30))
        await waiting.until(lambda: bus.claimers_waiting == 1)
        relay.resync()
        await asyncio.wait_for(claimer, 5)
        assert await a.get() is CATCH_UP and await b.get() is CATCH_UP
    assert relay.resyncs == 1


async def test_a_burst_of_work_notifications_is_one_wake_up() -> None:
    bus = EventBus()
    relay = BusRelay(bus)
    woken = 0
    original = bus.work_available

    async def counted() -> None:
        nonlocal woken
        woken += 1
        await original()

    bus.work_available = counted  # type: ignore[method-assign]
    for _ in range(100):
        relay.work_available()
    await relay._waking  # the one wake-up scheduled for the burst
    relay.work_available()  # after it ran, a new notification is a new wake-up
    await relay._waking
    assert woken == 2


def test_event_payloads_round_trip_and_foreign_ones_are_ignored() -> None:
    assert _pg_notify.parse_event_payload(_pg_notify.event_payload("a:b-1", 42)) == ("a:b-1", 42)
    for foreign in ("", "42", "job:", "job:x", ":3"):
        assert _pg_notify.parse_event_payload(foreign) is None
