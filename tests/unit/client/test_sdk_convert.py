"""pb <-> model conversion: round trips, unset fields, unknown enum values."""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.protobuf import struct_pb2

from jobwarden.client import (
    Asset,
    CallbackAttempt,
    CallbackState,
    EventKind,
    Job,
    JobError,
    JobEvent,
    JobMessage,
    JobStatus,
    MessageLevel,
    Progress,
    StopReason,
    _convert,
)
from jobwarden.v1 import job_pb2, worker_service_pb2

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def _asset(**overrides: object) -> Asset:
    fields: dict[str, object] = {
        "id": "a1",
        "job_id": "j1",
        "owner": "alice",
        "asset_type": "report",
        "uri": "s3://bucket/report.pdf",
        "storage_path": "bucket/report.pdf",
        "size_bytes": 2048,
        "content_type": "application/pdf",
        "sha256": "ab" * 32,
        "metadata": {"pages": "3"},
        "create_time": T0,
    }
    fields.update(overrides)
    return Asset(**fields)  # type: ignore[arg-type]


FULL_JOB = Job(
    id="j1",
    owner="alice",
    job_type="thumbnail",
    lifecycle="standard",
    status=JobStatus.PARTIAL,
    progress=Progress(percent=42.5, message="resizing", done=17, total=40),
    parameters={
        "url": "https://example.com/a.png",
        "sizes": [64.0, 128.0],
        "opts": {"crop": True, "q": None},
    },
    result={"uris": ["s3://b/64.png"]},
    error=JobError(message="one size failed", reason="PROVIDER_TIMEOUT", retryable=True),
    stop_reason=StopReason.PROVIDER_ERROR,
    attempt=2,
    max_attempts=3,
    priority=-5,
    labels={"team": "media"},
    run_after=T0,
    deadline=T0 + timedelta(hours=1),
    callback_url="https://example.com/hook",
    cancel_requested=True,
    etag="e7",
    create_time=T0,
    update_time=T0 + timedelta(seconds=5),
    start_time=T0 + timedelta(seconds=1),
    complete_time=T0 + timedelta(seconds=9),
    worker_id="w1",
    last_sequence=12,
    callback_statuses=(JobStatus.FAILED, JobStatus.PARTIAL),
    callback_state=CallbackState.DELIVERING,
    callback_attempts=2,
    callback_error="HTTP 503",
)


def test_job_round_trip() -> None:
    pb = _convert.job_to_pb(FULL_JOB)
    assert pb.status == job_pb2.JOB_STATUS_PARTIAL
    assert pb.stop_reason == job_pb2.STOP_REASON_PROVIDER_ERROR
    assert _convert.job_from_pb(job_pb2.Job.FromString(pb.SerializeToString())) == FULL_JOB


def test_unset_fields_are_none_not_zero() -> None:
    job = _convert.job_from_pb(job_pb2.Job(id="j2", job_type="t", status=job_pb2.JOB_STATUS_QUEUED))
    assert job.status is JobStatus.QUEUED
    assert job.result is None
    assert job.error is None
    assert job.parameters == {}
    assert job.run_after is None and job.create_time is None and job.complete_time is None
    assert job.progress == Progress()
    assert job.stop_reason is StopReason.UNSPECIFIED
    assert not job.is_terminal


def test_times_are_aware_utc() -> None:
    job = _convert.job_from_pb(_convert.job_to_pb(FULL_JOB))
    assert job.create_time is not None
    assert job.create_time.tzinfo is not None
    assert job.create_time.utcoffset() == timedelta(0)


def test_naive_datetimes_are_taken_as_utc_and_offsets_are_respected() -> None:
    naive = datetime(2026, 3, 1, 12, 0, 0)
    assert _convert.time_to_pb(naive).ToDatetime(tzinfo=UTC) == naive.replace(tzinfo=UTC)
    plus_two = datetime(2026, 3, 1, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert _convert.time_from_pb(_convert.time_to_pb(plus_two)) == datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_unknown_enum_values_from_a_newer_server_map_to_unspecified() -> None:
    assert _convert.status_from_pb(99) is JobStatus.UNSPECIFIED
    assert _convert.stop_reason_from_pb(99) is StopReason.UNSPECIFIED


def test_status_names_are_accepted_in_any_case() -> None:
    assert _convert.status_to_pb("running") == job_pb2.JOB_STATUS_RUNNING
    assert _convert.stop_reason_to_pb("lease_expired") == job_pb2.STOP_REASON_LEASE_EXPIRED
    with pytest.raises(ValueError):
        _convert.status_to_pb("sleeping")


def test_every_status_and_stop_reason_maps_both_ways() -> None:
    for status in JobStatus:
        assert _convert.status_from_pb(_convert.status_to_pb(status)) is status
    for reason in StopReason:
        assert _convert.stop_reason_from_pb(_convert.stop_reason_to_pb(reason)) is reason
    assert len(JobStatus) == len(job_pb2.JobStatus.keys())
    assert len(StopReason) == len(job_pb2.StopReason.keys())


def test_asset_round_trip() -> None:
    asset = _asset()
    pb = job_pb2.Asset.FromString(_convert.asset_to_pb(asset).SerializeToString())
    assert _convert.asset_from_pb(pb) == asset


EVENTS = [
    JobEvent(
        job_id="j1",
        sequence=1,
        create_time=T0,
        actor="client:alice",
        kind=EventKind.CREATED,
        to_status=JobStatus.QUEUED,
    ),
    JobEvent(
        job_id="j1",
        sequence=2,
        create_time=T0,
        actor="worker:w1",
        kind=EventKind.TRANSITION,
        from_status=JobStatus.QUEUED,
        to_status=JobStatus.RUNNING,
        reason="claimed",
        stop_reason=StopReason.UNSPECIFIED,
    ),
    JobEvent(
        job_id="j1",
        sequence=3,
        create_time=T0,
        actor="worker:w1",
        kind=EventKind.PROGRESS,
        progress=Progress(percent=50, message="halfway", done=5, total=10),
    ),
    JobEvent(
        job_id="j1", sequence=4, create_time=T0, actor="worker:w1", kind=EventKind.ASSET_ADDED, asset=_asset()
    ),
    JobEvent(
        job_id="j1",
        sequence=5,
        create_time=T0,
        actor="system",
        kind=EventKind.LOG,
        message="lease renewed late",
        level=MessageLevel.WARNING,
        data={"late_by_s": 1.5, "n": 2, "tags": ["a", None, True]},
    ),
    JobEvent(
        job_id="j1",
        sequence=6,
        create_time=T0,
        actor="client:alice",
        kind=EventKind.CANCEL_REQUESTED,
        reason="too slow",
    ),
    JobEvent(
        job_id="j1",
        sequence=7,
        create_time=T0,
        actor="worker:w1",
        kind=EventKind.TRANSITION,
        from_status=JobStatus.RUNNING,
        to_status=JobStatus.CANCELLED,
        reason="cancelled",
        stop_reason=StopReason.USER_CANCELLED,
    ),
    JobEvent(
        job_id="j1",
        sequence=8,
        create_time=T0,
        actor="system",
        kind=EventKind.CALLBACK_ATTEMPT,
        callback=CallbackAttempt(
            webhook_id="msg_1",
            attempt=2,
            http_status=503,
            error="HTTP 503",
            duration=0.25,
            state=CallbackState.DELIVERING,
            next_attempt_time=T0 + timedelta(seconds=10),
        ),
    ),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: f"{e.sequence}-{e.kind}")
def test_event_round_trip(event: JobEvent) -> None:
    pb = job_pb2.JobEvent.FromString(_convert.event_to_pb(event).SerializeToString())
    assert pb.WhichOneof("kind") == event.kind.value
    assert _convert.event_from_pb(pb) == event


def test_an_event_kind_newer_than_the_sdk_is_unknown_not_an_error() -> None:
    event = _convert.event_from_pb(job_pb2.JobEvent(job_id="j1", sequence=8, actor="system"))
    assert event.kind is EventKind.UNKNOWN
    assert event.sequence == 8


def test_claim_and_lifecycle() -> None:
    claim = _convert.claim_from_pb(
        worker_service_pb2.JobClaim(
            job=_convert.job_to_pb(FULL_JOB), lease_token="tok", lease_expire_time=_convert.time_to_pb(T0)
        )
    )
    assert claim.job == FULL_JOB
    assert (claim.lease_token, claim.lease_expire_time) == ("tok", T0)

    lifecycle = _convert.lifecycle_from_pb(
        job_pb2.Lifecycle(
            name="simple",
            initial_status=job_pb2.JOB_STATUS_QUEUED,
            statuses=[job_pb2.JOB_STATUS_QUEUED, job_pb2.JOB_STATUS_RUNNING, job_pb2.JOB_STATUS_COMPLETED],
            terminal_statuses=[job_pb2.JOB_STATUS_COMPLETED],
            transitions=[
                job_pb2.LifecycleTransition(
                    from_status=job_pb2.JOB_STATUS_QUEUED, to_status=job_pb2.JOB_STATUS_RUNNING
                ),
            ],
        )
    )
    assert lifecycle.initial_status is JobStatus.QUEUED
    assert lifecycle.terminal_statuses == {JobStatus.COMPLETED}
    assert lifecycle.allows(JobStatus.QUEUED, JobStatus.RUNNING)
    assert not lifecycle.allows(JobStatus.RUNNING, JobStatus.QUEUED)


def test_struct_conversion() -> None:
    value = {"s": "x", "n": 3, "f": 1.5, "b": False, "z": None, "l": [1, "two"], "d": {"k": [True]}}
    struct = _convert.dict_to_struct(value)
    assert isinstance(struct, struct_pb2.Struct)
    assert _convert.struct_to_dict(struct) == value
    with pytest.raises(ValueError):
        _convert.dict_to_struct({"when": datetime.now(UTC)})


# --- numbers in Structs: doubles on the wire, ints back in Python ------------------------------------

MAX_SAFE = 2**53 - 1


def _shape(value: Any) -> Any:
    """The value with every leaf replaced by its exact type, so ``640`` and ``640.0`` differ."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return type(value)


def _over_the_wire(value: dict[str, Any]) -> dict[str, Any]:
    struct = _convert.dict_to_struct(value)
    return _convert.struct_to_dict(struct_pb2.Struct.FromString(struct.SerializeToString()))


def test_integers_come_back_as_ints_and_fractions_as_floats() -> None:
    value = {
        "width": 640,
        "zero": 0,
        "negative": -3,
        "ratio": 0.5,
        "tiny": -1e-9,
        "ids": [1, 2, MAX_SAFE, -MAX_SAFE],
        "nested": {"n": 3, "rows": [{"x": 7, "y": 2.25}], "empty": {}, "none": []},
        "text": "640",
        "missing": None,
    }
    back = _over_the_wire(value)
    assert back == value
    assert _shape(back) == _shape(value)
    assert type(back["ids"][2]) is int and back["ids"][2] == MAX_SAFE  # the largest exact one, exactly


def test_a_whole_float_comes_back_as_an_int() -> None:
    # The wire cannot tell 2.0 from 2: a double with no fraction is an integer.
    back = _over_the_wire({"two": 2.0, "minus_zero": -0.0})
    assert _shape(back) == {"two": int, "minus_zero": int}
    assert back == {"two": 2, "minus_zero": 0}


def test_bools_stay_bools() -> None:
    # bool is an int subclass: neither side may turn True into 1 or 1 into True.
    value = {"on": True, "off": False, "mixed": [True, 1, 0, False], "deep": {"flag": True}}
    expected = {"on": bool, "off": bool, "mixed": [bool, int, int, bool], "deep": {"flag": bool}}
    assert _shape(value) == expected
    assert _shape(_over_the_wire(value)) == expected


def test_struct_values_of_a_job_and_a_claim_come_back_typed() -> None:
    job = dataclasses.replace(FULL_JOB, parameters={"width": 640, "ratio": 0.5}, result={"frames": 2})
    claim = _convert.claim_from_pb(
        worker_service_pb2.JobClaim.FromString(
            worker_service_pb2.JobClaim(job=_convert.job_to_pb(job), lease_token="t").SerializeToString()
        )
    )
    assert _shape(claim.job.parameters) == {"width": int, "ratio": float}
    assert claim.job.result is not None and _shape(claim.job.result) == {"frames": int}


def test_a_double_beyond_the_safe_range_stays_a_float() -> None:
    # Only data stored before the server refused such numbers can hold one: it is not exact, so no int.
    struct = struct_pb2.Struct()
    struct.fields["big"].number_value = 2.0**60
    struct.fields["small"].number_value = 3.0
    assert _shape(_convert.struct_to_dict(struct)) == {"big": float, "small": int}


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"big": MAX_SAFE + 1}, "parameters.big"),
        ({"big": -(MAX_SAFE + 1)}, "parameters.big"),
        ({"ids": [1, 2, 3, 2**63]}, "parameters.ids[3]"),
        ({"a": {"b": [{"c": 2.0**53}]}}, "parameters.a.b[0].c"),
        ({"huge": 1e300}, "parameters.huge"),
        ({"x.y": 10**400}, 'parameters["x.y"]'),  # too big for a double at all
    ],
)
def test_numbers_beyond_2_53_are_refused_before_sending(value: dict[str, Any], path: str) -> None:
    with pytest.raises(ValueError, match="beyond") as caught:
        _convert.dict_to_struct(value, "parameters")
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "9007199254740991" in message and "as strings" in message


def test_the_largest_safe_integers_are_accepted_and_come_back_exact() -> None:
    back = _over_the_wire({"max": MAX_SAFE, "min": -MAX_SAFE, "float": float(MAX_SAFE)})
    assert back == {"max": MAX_SAFE, "min": -MAX_SAFE, "float": MAX_SAFE}
    assert _shape(back) == {"max": int, "min": int, "float": int}


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_before_sending(number: float) -> None:
    with pytest.raises(ValueError, match=r"^result\.r\[0\]: .*numbers must be finite"):
        _convert.dict_to_struct({"r": [number]}, "result")


def test_the_refusal_names_the_field_that_holds_the_number() -> None:
    with pytest.raises(ValueError, match=r"^result\.n: "):
        _convert.job_to_pb(dataclasses.replace(FULL_JOB, result={"n": 2**53}))


def test_a_message_without_level_is_info_and_data_is_any_json_value() -> None:
    assert _convert.message_from_pb(job_pb2.JobLog(message="m")) == JobMessage(text="m")
    unknown = job_pb2.JobLog(message="m", level=77)  # type: ignore[arg-type]
    assert _convert.message_from_pb(unknown).level is MessageLevel.INFO  # a level newer than the SDK
    for data in ("s", 3, [1, {"a": None}], {"k": 2.5}):
        sent = _convert.message_to_pb(JobMessage(level="output", data=data))  # type: ignore[arg-type]
        assert _convert.message_from_pb(sent) == JobMessage(level=MessageLevel.OUTPUT, data=data)
    assert _convert.message_to_pb("plain") == job_pb2.JobLog(
        message="plain", level=job_pb2.MESSAGE_LEVEL_INFO
    )


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (JobMessage(text="x", level="loud"), "loud"),  # type: ignore[arg-type]
        (JobMessage(data={"ids": [2**53]}), "messages[0].data.ids[0]"),
        (JobMessage(data={"when": datetime(2026, 1, 1)}), "messages[0].data"),
    ],
)
def test_a_message_that_cannot_be_sent_is_a_value_error_before_sending(
    message: JobMessage, problem: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        _convert.message_to_pb(message, "messages[0]")
