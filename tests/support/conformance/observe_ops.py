"""Steps that observe: watching a job's stream, waiting for a status, and callback deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator
from typing import Any

import standardwebhooks

from jobwarden.client import Job, JobEvent
from support import waiting

from . import views
from .client_ops import Outcome, job_outcome
from .expect import Mismatch
from .session import Session


async def watch_job(s: Session, step: dict[str, Any]) -> Outcome:
    """WatchJob from `after_sequence` (a number or a saved cursor); with `take`, the watcher disconnects
    after that many events. Saves the last sequence seen, to resume from."""
    cursor = _after_sequence(s, step)
    snapshot: Job | None = None
    events: list[JobEvent] = []
    ended, take = False, step.get("take")
    stream = s.client(step.get("as")).watch_job(s.job_id(step["job"]), cursor, resume=False)
    async with asyncio.timeout(step.get("within_s", 10)), contextlib.aclosing(stream):
        async for item in stream:
            if isinstance(item, Job):
                snapshot = item
                continue
            events.append(item)
            if take is not None and len(events) >= take:
                break
        else:
            ended = True
    view = {
        "snapshot": None if snapshot is None else views.job(snapshot, s.prefix),
        "events": [views.event(e) for e in events],
        "ended": ended,
    }
    return view, events[-1].sequence if events else cursor


def _after_sequence(s: Session, step: dict[str, Any]) -> int:
    after = step.get("after_sequence", 0)
    return int(s.ref(after)) if isinstance(after, str) else int(after)


@dataclasses.dataclass
class LiveWatch:
    """A watch left open in the background by `start_watch`; `finish_watch` waits for its end."""

    task: asyncio.Task[None]
    events: list[JobEvent]


async def start_watch(s: Session, step: dict[str, Any]) -> Outcome:
    """WatchJob from `after_sequence`, returning once the snapshot arrived, so the steps that follow
    happen while the watch is open. The stream is read in the background until it ends; saves the
    watch for `finish_watch`."""
    stream = s.client(step.get("as")).watch_job(s.job_id(step["job"]), _after_sequence(s, step), resume=False)
    try:
        async with asyncio.timeout(step.get("within_s", 10)):
            snapshot = await anext(stream)
    except BaseException:
        await stream.aclose()
        raise
    assert isinstance(snapshot, Job)
    watch = LiveWatch(task=asyncio.create_task(_read(stream, events := [])), events=events)
    s.background.add(watch.task)
    return {"snapshot": views.job(snapshot, s.prefix)}, watch


async def _read(stream: AsyncGenerator[Job | JobEvent, None], events: list[JobEvent]) -> None:
    async with contextlib.aclosing(stream):
        async for item in stream:
            assert isinstance(item, JobEvent)
            events.append(item)


async def finish_watch(s: Session, step: dict[str, Any]) -> Outcome:
    """Until the watch `start_watch` left open ends (after the job's terminal event)."""
    watch = s.ref(step["watch"])
    async with asyncio.timeout(step.get("within_s", 10)):
        await asyncio.shield(watch.task)
    return {"events": [views.event(e) for e in watch.events], "ended": True}, watch.events


async def await_status(s: Session, step: dict[str, Any]) -> Outcome:
    """Until the job is in `status` (what the server does on its own: lease loss, retries, batches).

    Reads the job, then watches its events after what it read, so no change slips in between."""
    client, job_id, want = s.client(step.get("as")), s.job_id(step["job"]), step["status"]
    job = await client.get_job(job_id)
    if job.status.value != want:
        stream = client.watch_job(job_id, job.last_sequence, resume=False)
        async with asyncio.timeout(step.get("within_s", 10)), contextlib.aclosing(stream):
            async for item in stream:
                if isinstance(item, JobEvent) and item.to_status is not None and item.to_status.value == want:
                    break
            else:
                raise Mismatch(f"job {job_id} ended without reaching {want}")
        job = await client.get_job(job_id)
    return job_outcome(s, job)


async def await_callbacks(s: Session, step: dict[str, Any]) -> Outcome:
    """Until the receiver got `count` requests; each delivery as the receiver saw it, its signature
    checked with the owner's secret (principals.json)."""
    receiver = s.receivers[step["receiver"]]
    count = step["count"]
    await waiting.until(lambda: len(receiver.received) >= count, within_s=step.get("within_s", 10))
    secret = s.principals[s.actors[step.get("as") or s.default_actor]["principal"]]["callback_secret"]
    answered = s.scenario["receivers"][step["receiver"]]["answers"]
    deliveries = []
    for n, got in enumerate(receiver.received, start=1):
        try:
            standardwebhooks.Webhook(secret).verify(got.body, got.headers)
            signed = True
        except standardwebhooks.WebhookVerificationError:
            signed = False
        payload = got.payload
        deliveries.append(
            {
                "answered": answered[min(n, len(answered)) - 1],
                "type": payload["type"],
                "job": payload["data"]["job_id"],
                "status": payload["data"]["status"],
                "signature_valid": signed,
            }
        )
    view = {
        "count": len(deliveries),
        "deliveries": deliveries,
        "webhook_ids": len(set(receiver.ids())),
    }
    return view, deliveries
