"""What the metrics count from a committed change, on plain records (no server, no database)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from support import records
from support.records import NOW

from jobwarden_server.domain.records import BatchCounts, Event, EventKind, JobError
from jobwarden_server.domain.status import JobStatus, StopReason
from jobwarden_server.observability.metrics import Metrics, render


def _event(kind: EventKind, actor: str = "worker:w1", **data: Any) -> Event:
    return Event(job_id="j1", owner="o", sequence=4, create_time=NOW, actor=actor, kind=kind, data=data)


def _moved(source: str, to: str, actor: str = "worker:w1", stop: str = "UNSPECIFIED") -> Event:
    return _event(EventKind.TRANSITION, actor, **{"from": source, "to": to, "stop_reason": stop})


def _value(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_a_created_job_counts_in_the_status_it_started_in() -> None:
    metrics = Metrics()
    job = records.job(status=JobStatus.CREATED)
    metrics.record_change(job, [_event(EventKind.CREATED, "client:o", status="CREATED")])
    assert _value(metrics, "jobwarden_jobs_created_total", job_type="demo", status="CREATED") == 1
    assert _value(metrics, "jobwarden_jobs_created_total", job_type="demo", status="QUEUED") == 0


def test_a_claim_is_a_transition_and_a_wait_timed_from_when_the_job_was_due() -> None:
    metrics = Metrics()
    due = NOW - dt.timedelta(seconds=7)
    job = records.job(create_time=NOW - dt.timedelta(hours=1), run_after=due, start_time=NOW)
    metrics.record_change(job, [_moved("QUEUED", "RUNNING")])
    labels = {"job_type": "demo", "from": "QUEUED", "to": "RUNNING"}
    assert _value(metrics, "jobwarden_job_transitions_total", **labels) == 1
    assert _value(metrics, "jobwarden_job_queue_wait_seconds_sum", job_type="demo") == 7.0
    assert _value(metrics, "jobwarden_job_queue_wait_seconds_bucket", job_type="demo", le="5.0") == 0
    assert _value(metrics, "jobwarden_job_queue_wait_seconds_bucket", job_type="demo", le="10.0") == 1
    assert _value(metrics, "jobwarden_job_run_seconds_count", job_type="demo") == 0
    assert _value(metrics, "jobwarden_jobs_finished_total", job_type="demo", status="RUNNING") == 0


def test_an_end_counts_the_job_finished_with_its_stop_reason_and_times_the_run() -> None:
    metrics = Metrics()
    job = records.job(status=JobStatus.FAILED, stop_reason=StopReason.PROVIDER_ERROR)
    metrics.record_change(job, [_moved("RUNNING", "FAILED", stop="PROVIDER_ERROR")])
    done = records.job(id="j2", status=JobStatus.COMPLETED)
    metrics.record_change(done, [_moved("RUNNING", "COMPLETED")])
    finished = "jobwarden_jobs_finished_total"
    assert _value(metrics, finished, job_type="demo", status="FAILED", stop_reason="PROVIDER_ERROR") == 1
    assert _value(metrics, finished, job_type="demo", status="COMPLETED", stop_reason="UNSPECIFIED") == 1
    assert _value(metrics, "jobwarden_job_run_seconds_count", job_type="demo") == 2
    assert _value(metrics, "jobwarden_job_run_seconds_sum", job_type="demo") == 120.0  # 1 min each
    assert _value(metrics, "jobwarden_job_retries_total", job_type="demo") == 0


def test_an_unspecified_stop_reason_is_the_jobs_own_when_it_ended_there() -> None:
    metrics = Metrics()
    job = records.job(status=JobStatus.CANCELLED, stop_reason=StopReason.USER_CANCELLED)
    metrics.record_change(job, [_moved("RUNNING", "CANCELLED", actor="admin:root")])
    labels = {"job_type": "demo", "status": "CANCELLED", "stop_reason": "USER_CANCELLED"}
    assert _value(metrics, "jobwarden_jobs_finished_total", **labels) == 1


def test_a_stall_flag_counts_once_for_its_type() -> None:
    metrics = Metrics()
    job = records.job(status=JobStatus.RUNNING)
    metrics.record_change(job, [_event(EventKind.STALLED, "system", percent=10.0)])
    assert _value(metrics, "jobwarden_jobs_stalled_total", job_type="demo") == 1
    metrics.record_change(job, [_event(EventKind.PROGRESS, percent=20.0)])
    assert _value(metrics, "jobwarden_jobs_stalled_total", job_type="demo") == 1


def test_an_expired_lease_rescued_by_the_reaper_is_a_retry_and_a_lease_expiration() -> None:
    metrics = Metrics()
    lost = JobError(message="lease of worker w1 expired", reason="LEASE_EXPIRED", retryable=True)
    job = records.job(status=JobStatus.QUEUED, error=lost)
    metrics.record_change(job, [_moved("RUNNING", "QUEUED", actor="system")])
    assert _value(metrics, "jobwarden_job_retries_total", job_type="demo") == 1
    assert _value(metrics, "jobwarden_lease_expirations_total", job_type="demo", to="QUEUED") == 1


def test_a_workers_retryable_failure_is_a_retry_but_no_lease_expiration() -> None:
    metrics = Metrics()
    job = records.job(status=JobStatus.QUEUED, error=JobError(message="flaky", retryable=True))
    metrics.record_change(job, [_moved("RUNNING", "QUEUED")])
    assert _value(metrics, "jobwarden_job_retries_total", job_type="demo") == 1
    assert _value(metrics, "jobwarden_lease_expirations_total", job_type="demo", to="QUEUED") == 0


def test_a_deadline_passing_after_an_earlier_lease_expiry_is_no_lease_expiration() -> None:
    """The job still carries the error of its earlier attempt; the reaper's move now is EXPIRED."""
    metrics = Metrics()
    earlier = JobError(message="lease of worker w1 expired", reason="LEASE_EXPIRED", retryable=True)
    job = records.job(status=JobStatus.EXPIRED, error=earlier, stop_reason=StopReason.TIMEOUT_EXCEEDED)
    metrics.record_change(job, [_moved("RUNNING", "EXPIRED", actor="system", stop="TIMEOUT_EXCEEDED")])
    assert _value(metrics, "jobwarden_lease_expirations_total", job_type="demo", to="EXPIRED") == 0
    labels = {"job_type": "demo", "status": "EXPIRED", "stop_reason": "TIMEOUT_EXCEEDED"}
    assert _value(metrics, "jobwarden_jobs_finished_total", **labels) == 1


def test_a_batch_parent_is_counted_but_never_timed_as_a_run() -> None:
    metrics = Metrics()
    parent = records.job(status=JobStatus.COMPLETED, batch=BatchCounts(completed=2))
    metrics.record_change(parent, [_moved("RUNNING", "COMPLETED", actor="system")])
    labels = {"job_type": "demo", "status": "COMPLETED", "stop_reason": "UNSPECIFIED"}
    assert _value(metrics, "jobwarden_jobs_finished_total", **labels) == 1
    assert _value(metrics, "jobwarden_job_run_seconds_count", job_type="demo") == 0


def test_events_other_than_creation_and_transitions_count_nothing() -> None:
    metrics = Metrics()
    metrics.record_change(records.job(), [_event(EventKind.PROGRESS, percent=50)])
    counted = [
        s.name for family in metrics.registry.collect() for s in family.samples if s.name.endswith("_total")
    ]
    assert counted == []  # not even a series at zero: nothing was counted under any label


def _families(body: bytes) -> dict[str, list[tuple[Mapping[str, str], float]]]:
    return {
        family.name: [(sample.labels, sample.value) for sample in family.samples]
        for family in text_string_to_metric_families(body.decode())
    }


async def test_render_reads_the_queue_depth_at_each_scrape_and_drops_types_no_longer_waiting() -> None:
    metrics = Metrics()
    depth = {("demo", JobStatus.QUEUED): 3, ("mail", JobStatus.RUNNING): 1}

    async def read() -> Mapping[tuple[str, JobStatus], int]:
        return dict(depth)

    metrics.read_depth_with(read)
    body, content_type = await render(metrics)
    assert content_type.startswith("text/plain; version=0.0.4")
    assert sorted(
        (dict(labels)["job_type"], dict(labels)["status"], value)
        for labels, value in _families(body)["jobwarden_queue_depth"]
    ) == [("demo", "QUEUED", 3.0), ("mail", "RUNNING", 1.0)]
    del depth[("mail", JobStatus.RUNNING)]
    body, _ = await render(metrics)
    assert [dict(labels)["job_type"] for labels, _ in _families(body)["jobwarden_queue_depth"]] == ["demo"]


async def test_a_depth_that_cannot_be_read_is_left_out_and_the_rest_still_renders() -> None:
    metrics = Metrics()

    async def read() -> Mapping[tuple[str, JobStatus], int]:
        raise ConnectionError("database down")

    metrics.read_depth_with(read)
    metrics.record_change(records.job(), [_moved("QUEUED", "RUNNING")])
    body, _ = await render(metrics)
    families = _families(body)
    assert families["jobwarden_queue_depth"] == []
    assert families["jobwarden_job_transitions"][0][1] == 1.0


def test_two_servers_metrics_share_nothing() -> None:
    one, other = Metrics(), Metrics()
    one.record_change(records.job(), [_moved("QUEUED", "RUNNING")])
    labels = {"job_type": "demo", "from": "QUEUED", "to": "RUNNING"}
    assert _value(one, "jobwarden_job_transitions_total", **labels) == 1
    assert _value(other, "jobwarden_job_transitions_total", **labels) == 0


def test_no_created_timestamp_series_next_to_the_counters() -> None:
    metrics = Metrics()
    metrics.record_change(records.job(), [_event(EventKind.CREATED, status="QUEUED")])
    names = {sample.name for family in metrics.registry.collect() for sample in family.samples}
    assert "jobwarden_jobs_created_total" in names
    assert not any(name.endswith("_created") for name in names)


def test_a_retried_job_is_timed_from_its_latest_claim() -> None:
    """A retried job's start_time is its latest claim: the run measured is the latest attempt's."""
    metrics = Metrics()
    job = records.job(status=JobStatus.COMPLETED, attempt=2, start_time=NOW - dt.timedelta(seconds=2))
    metrics.record_change(job, [_moved("RUNNING", "COMPLETED")])
    assert _value(metrics, "jobwarden_job_run_seconds_sum", job_type="demo") == 2.0
