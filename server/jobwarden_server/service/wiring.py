"""The services of one server, built in one place from their collaborators."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from jobwarden_server import store
from jobwarden_server.domain.lifecycle import Lifecycles
from jobwarden_server.domain.retention import Retention
from jobwarden_server.domain.retry import RetryPolicy
from jobwarden_server.events.bus import EventBus
from jobwarden_server.observability.metrics import Metrics
from jobwarden_server.service.admin import AdminService
from jobwarden_server.service.batches import BatchService
from jobwarden_server.service.dashboard import DashboardService
from jobwarden_server.service.jobs import JobsService
from jobwarden_server.service.live import LiveFeed
from jobwarden_server.service.reaper import Reaper, ReaperSettings
from jobwarden_server.service.retention import RetentionLoop
from jobwarden_server.service.stats import JobStats
from jobwarden_server.service.streams import StreamSlots
from jobwarden_server.service.watch import WatchService
from jobwarden_server.service.work import WorkService
from jobwarden_server.service.writer import Clock, JobWriter, utc_now


@dataclasses.dataclass(frozen=True, slots=True)
class Services:
    """Every use case of a server, sharing one store, bus, writer, clock and table of lifecycles."""

    jobs: JobsService
    watch: WatchService
    work: WorkService
    reaper: Reaper
    writer: JobWriter
    admin: AdminService
    retention: RetentionLoop
    batches: BatchService
    dashboard: DashboardService
    live: LiveFeed
    stats: JobStats


def build(
    db: store.Store,
    bus: EventBus,
    lifecycles: Lifecycles,
    retry: RetryPolicy,
    *,
    clock: Clock = utc_now,
    max_streams_per_owner: int = 64,
    cancel_grace_s: float = 30.0,
    queue_timeouts: Mapping[str, float] | None = None,
    reaper: ReaperSettings | None = None,
    retention: Retention | None = None,
    metrics: Metrics | None = None,
) -> Services:
    """The services over `db`; watches, long polls and Work sessions share the owners' stream slots.
    `metrics` (a throw-away set when None) counts what the writer commits and the streams held open,
    and reads the queue depth from `db` at each scrape."""
    metrics = metrics or Metrics()
    metrics.read_depth_with(db.job_depth)
    writer = JobWriter(db, bus, clock, metrics)
    slots = StreamSlots(max_streams_per_owner)
    jobs = JobsService(
        db, writer, lifecycles, clock, retry, cancel_grace_s=cancel_grace_s, queue_timeouts=queue_timeouts
    )
    stats = JobStats(db, clock)
    return Services(
        jobs=jobs,
        watch=WatchService(db, bus, slots, metrics),
        work=WorkService(db, writer, bus, lifecycles, clock, retry, slots, metrics),
        reaper=Reaper(db, writer, lifecycles, clock, retry, reaper or ReaperSettings()),
        writer=writer,
        admin=AdminService(db, writer, jobs, lifecycles),
        retention=RetentionLoop(db, retention or Retention(), clock),
        batches=BatchService(jobs, writer, clock),
        dashboard=DashboardService(db, jobs, stats, clock),
        live=LiveFeed(db, bus, slots),
        stats=stats,
    )
