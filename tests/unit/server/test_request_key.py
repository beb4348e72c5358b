"""convert.request_of: the one fingerprint scheme, which a replayed request_id must match."""

from __future__ import annotations

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from jobwarden.v1 import job_pb2, job_service_pb2, worker_service_pb2
from jobwarden_server.api import convert
from jobwarden_server.domain.idempotency import ANONYMOUS


def _create() -> job_service_pb2.CreateJobRequest:
    parameters = struct_pb2.Struct()
    parameters.update({"b": [1, {"x": None}], "a": "é"})
    return job_service_pb2.CreateJobRequest(
        job_type="render",
        parameters=parameters,
        priority=3,
        labels={"k": "v", "j": "w"},
        max_attempts=2,
        run_after=timestamp_pb2.Timestamp(seconds=1_900_000_000),
        callback_url="https://x",
        hold=True,
        request_id="r1",
    )


def test_no_request_id_is_anonymous() -> None:
    request = _create()
    request.request_id = ""
    assert convert.request_of(request) is ANONYMOUS


def test_the_request_id_is_left_out_and_map_order_does_not_count() -> None:
    first, again = _create(), _create()
    again.request_id = "r2"
    again.labels.clear()
    again.labels.update({"j": "w", "k": "v"})
    key = convert.request_of(first)
    assert key.id == "r1"
    assert convert.request_of(again).fingerprint == key.fingerprint
    assert len(key.fingerprint) == 64


def test_every_other_field_of_a_create_counts() -> None:
    changes = {
        "job_type": lambda r: setattr(r, "job_type", "render2"),
        "parameters": lambda r: r.parameters.update({"a": "e"}),
        "priority": lambda r: setattr(r, "priority", 4),
        "labels": lambda r: r.labels.update({"k": "x"}),
        "max_attempts": lambda r: setattr(r, "max_attempts", 3),
        "run_after": lambda r: r.ClearField("run_after"),
        "deadline": lambda r: r.deadline.CopyFrom(timestamp_pb2.Timestamp(seconds=2_000_000_000)),
        "callback_url": lambda r: setattr(r, "callback_url", "https://y"),
        "hold": lambda r: setattr(r, "hold", False),
        "retry_policy": lambda r: r.retry_policy.initial_backoff.CopyFrom(duration_pb2.Duration(seconds=1)),
        "queue_timeout": lambda r: r.queue_timeout.CopyFrom(duration_pb2.Duration(seconds=60)),
        "callback_statuses": lambda r: r.callback_statuses.append(job_pb2.JOB_STATUS_FAILED),
    }
    fields = {f.name for f in job_service_pb2.CreateJobRequest.DESCRIPTOR.fields} - {
        "request_id",
        "validate_only",
    }
    assert set(changes) == fields, "a new field must count in the fingerprint: add it here"
    base = convert.request_of(_create()).fingerprint
    for name, change in changes.items():
        request = _create()
        change(request)
        assert convert.request_of(request).fingerprint != base, name


def test_a_dry_run_has_the_fingerprint_of_the_real_call() -> None:
    # validate_only must answer what the real call answers, a replay of an earlier one included.
    dry = _create()
    dry.validate_only = True
    assert convert.request_of(dry) == convert.request_of(_create())


def test_the_same_scheme_serves_worker_calls() -> None:
    report = worker_service_pb2.ReportProgressRequest(
        job_id="j", lease_token="t", progress=job_pb2.Progress(percent=10), request_id="r"
    )
    other = worker_service_pb2.ReportProgressRequest()
    other.CopyFrom(report)
    other.progress.percent = 20
    assert convert.request_of(report).fingerprint != convert.request_of(other).fingerprint
