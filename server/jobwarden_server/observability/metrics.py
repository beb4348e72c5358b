"""Prometheus metrics of one server, all named jobwarden_*, in one registry of its own.

Each server builds one `Metrics` (app.py) and hands it to what records into it: the write entry
(service/writer.py) counts what each committed change did to its jobs, so the counts agree with the
jobs themselves; the watch and work services count their open streams; the RPC interceptor
(api/observe.py) times every call; the callback dispatcher counts delivery attempts. A registry per
server, not the process-global one, so tests and several servers in one process never share counts.

Counters are per process: with several replicas, sum them across replicas (PromQL `sum by`). Queue
depth is not counted at all but read from the database at each scrape (`render`), so it is the
whole database's, the same on every replica, and right from the first scrape after a restart.

Labels are bounded: job type, status, stop reason, RPC method and code; never a job, owner or worker.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from jobwarden_server.domain.decisions import LEASE_EXPIRED, SYSTEM
from jobwarden_server.domain.records import Event, EventKind, Job
from jobwarden_server.domain.status import JobStatus, StopReason

logger = logging.getLogger(__name__)

# Counters would otherwise each carry a second series, <name>_created, holding when the counter was
# made: noise next to `jobwarden_jobs_created_total`, and never what an operator looks for.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

JOB_SECONDS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
"""Buckets for waits and runs of jobs: from a hot queue's milliseconds to a day."""
RPC_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
"""Buckets for calls: a unary call takes about a millisecond; streams last as long as they are open."""

DepthSource = Callable[[], Awaitable[Mapping[tuple[str, JobStatus], int]]]
"""Reads how many unfinished jobs there are per (job type, status), across all owners."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format, which every Prometheus and scraper reads (our names need nothing newer)."""


class Metrics:
    """The metrics of one server. Record through its methods; scrape with `render`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.jobs_created = Counter(
            "jobwarden_jobs_created",
            "Jobs created, by the status they started in.",
            ["job_type", "status"],
            registry=r,
        )
        self.jobs_finished = Counter(
            "jobwarden_jobs_finished",
            "Jobs that reached a terminal status, by status and stop reason.",
            ["job_type", "status", "stop_reason"],
            registry=r,
        )
        self.transitions = Counter(
            "jobwarden_job_transitions", "Status changes of jobs.", ["job_type", "from", "to"], registry=r
        )
        self.retries = Counter(
            "jobwarden_job_retries",
            "Attempts that ended and put their job back in the queue (a retryable failure or an "
            "expired lease).",
            ["job_type"],
            registry=r,
        )
        self.stalls = Counter(
            "jobwarden_jobs_stalled",
            "Running jobs flagged stalled: the worker kept its lease but the progress stood still past "
            "the type's [stall] limit.",
            ["job_type"],
            registry=r,
        )
        self.lease_expirations = Counter(
            "jobwarden_lease_expirations",
            "Leases that ran out and were dealt with by the reaper, by where the job went: QUEUED "
            "(rescued for another attempt), FAILED (no attempts left) or CANCELLED (a cancel was pending).",
            ["job_type", "to"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "jobwarden_job_queue_wait_seconds",
            "From when a job was due to run (created, or its run_after or retry time) to its claim.",
            ["job_type"],
            buckets=JOB_SECONDS,
            registry=r,
        )
        self.run_duration = Histogram(
            "jobwarden_job_run_seconds",
            "How long an attempt ran, from its claim to its end (finished, failed or put back).",
            ["job_type"],
            buckets=JOB_SECONDS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "jobwarden_queue_depth",
            "Unfinished jobs of all owners by type and status, read from the database at each scrape.",
            ["job_type", "status"],
            registry=r,
        )
        self.callback_deliveries = Counter(
            "jobwarden_callback_deliveries",
            "Completion callback attempts by outcome: delivered, retrying (another attempt is "
            "scheduled) or failed (given up).",
            ["outcome"],
            registry=r,
        )
        self.rpc_duration = Histogram(
            "jobwarden_rpc_duration_seconds",
            "Time to answer each call (a stream: its whole life), by method and status code.",
            ["method", "code"],
            buckets=RPC_SECONDS,
            registry=r,
        )
        self.watchers = Gauge(
            "jobwarden_watchers_active", "Open watches: WatchJob streams and dashboard job pages.", registry=r
        )
        self.work_sessions = Gauge("jobwarden_work_sessions_active", "Open Work sessions.", registry=r)
        self._depth: DepthSource | None = None
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}

    def _of(self, metric: Counter | Histogram, *values: str) -> Any:
        """`metric.labels(*values)`, kept: the library's lookup costs more than the count itself, and
        the writer counts several times per job. (As many entries as the metric has series.)"""
        child = self._children.get((metric, values))
        if child is None:
            child = self._children[(metric, values)] = metric.labels(*values)
        return child

    def time_rpc(self, method: str, code: str, seconds: float) -> None:
        """Record a call's time under its method and final status code."""
        self._of(self.rpc_duration, method, code).observe(seconds)

    def read_depth_with(self, source: DepthSource) -> None:
        """Where `render` reads the queue depth from (service/wiring.py installs the store's count)."""
        self._depth = source

    def record_change(self, job: Job, events: Sequence[Event]) -> None:
        """Count what a committed change did: the jobs it created, and each transition it recorded.
        `job` is the job as the change left it; `events` are the events the change appended."""
        for event in events:
            if event.kind is EventKind.CREATED:
                self._of(
                    self.jobs_created, job.job_type, str(event.data.get("status", job.status.value))
                ).inc()
            elif event.kind is EventKind.TRANSITION:
                self._transition(job, event)
            elif event.kind is EventKind.STALLED:
                self._of(self.stalls, job.job_type).inc()

    def _transition(self, job: Job, event: Event) -> None:
        source, to = str(event.data.get("from", "")), str(event.data.get("to", ""))
        self._of(self.transitions, job.job_type, source, to).inc()
        if to in _TERMINAL:
            self._of(self.jobs_finished, job.job_type, to, _stop_reason(job, event)).inc()
        if job.batch is not None:
            return  # a batch parent is driven by its children: nobody claims or runs it
        if source == JobStatus.QUEUED and to == JobStatus.RUNNING:
            due = max(job.create_time, job.run_after or job.create_time)
            self._of(self.queue_wait, job.job_type).observe(
                max(0.0, (event.create_time - due).total_seconds())
            )
        if source != JobStatus.RUNNING:
            return
        if job.start_time is not None:
            self._of(self.run_duration, job.job_type).observe(
                max(0.0, (event.create_time - job.start_time).total_seconds())
            )
        if to == JobStatus.QUEUED:
            self._of(self.retries, job.job_type).inc()
        if _lease_expired(job, event, to):
            self._of(self.lease_expirations, job.job_type, to).inc()

    def callback_attempt(self, outcome: str) -> None:
        """Count a recorded callback attempt: "delivered", "retrying" or "failed"."""
        self._of(self.callback_deliveries, outcome).inc()

    async def refresh(self) -> None:
        """Read what is read at scrape time (the queue depth). A database that cannot answer leaves
        the depth out of this scrape (logged) rather than failing the scrape or showing stale counts."""
        if self._depth is None:
            return
        try:
            depth = await self._depth()
        except Exception as err:  # noqa: BLE001 - the other metrics are still worth scraping
            logger.warning("metrics: queue depth not read (%s: %s)", type(err).__name__, err)
            self.queue_depth.clear()
            return
        self.queue_depth.clear()  # types no longer waiting drop out instead of showing a stale count
        for (job_type, status), count in depth.items():
            self.queue_depth.labels(job_type, status.value).set(count)


_TERMINAL = frozenset(s.value for s in JobStatus if s.terminal)


def _stop_reason(job: Job, event: Event) -> str:
    """The stop reason the transition recorded; one left unspecified is the job's own when the job
    ended there (a completion, or an end whose reason a decision set on the job), as ListJobs shows."""
    recorded = str(event.data.get("stop_reason", StopReason.UNSPECIFIED.value))
    if recorded == StopReason.UNSPECIFIED and job.status.value == event.data.get("to"):
        return job.stop_reason.value
    return recorded


def _lease_expired(job: Job, event: Event, to: str) -> bool:
    """Whether the server ended this running attempt because its lease ran out: the reaper's end of
    an attempt (decisions.reap -> end_attempt) gives the job the LEASE_EXPIRED error; the reaper's
    other move of a running job, a passed deadline, goes to EXPIRED."""
    return (
        event.actor == SYSTEM
        and to != JobStatus.EXPIRED
        and job.error is not None
        and job.error.reason == LEASE_EXPIRED
    )


async def render(metrics: Metrics) -> tuple[bytes, str]:
    """The Prometheus text exposition of `metrics` (queue depth read just now) and its content type."""
    await metrics.refresh()
    return prometheus_client.generate_latest(metrics.registry), CONTENT_TYPE
