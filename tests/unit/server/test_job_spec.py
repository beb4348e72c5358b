"""JobSpec.fingerprint: the hash stored with every job, which a replayed request_id must match."""

from __future__ import annotations

import dataclasses
import datetime as dt

from jobwarden_server.domain.status import JobStatus
from jobwarden_server.service.jobs import JobSpec

SPEC = JobSpec(
    job_type="render",
    parameters={"b": [1, {"x": None}], "a": "é"},
    priority=3,
    labels={"k": "v"},
    max_attempts=2,
    run_after=dt.datetime(2030, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
    callback_url="https://x",
    hold=True,
    request_id="r1",
    retry_multiplier=2.0,
)


def test_fingerprints_stay_what_earlier_versions_stored() -> None:
    # Jobs already in a database carry these hashes: a retry after an upgrade must still match them.
    assert SPEC.fingerprint() == "572c594f85b54d8966cddb368e442bc44d8956384025444479d3a6cbaebce8ed"
    assert (
        JobSpec(job_type="a").fingerprint()
        == "bab299a126111d2e4db6b52e571288f97bd29cf588d8c897d818a1ef98a9c97b"
    )


def test_the_request_id_is_left_out_and_every_other_field_counts() -> None:
    assert dataclasses.replace(SPEC, request_id="other").fingerprint() == SPEC.fingerprint()
    changed = {
        "job_type": "render2",
        "parameters": {"b": [1, {"x": 0}], "a": "é"},
        "priority": 4,
        "labels": {"k": "w"},
        "max_attempts": 3,
        "run_after": None,
        "deadline": dt.datetime(2031, 1, 1, tzinfo=dt.UTC),
        "callback_url": "https://y",
        "callback_statuses": (JobStatus.FAILED,),
        "hold": False,
        "retry_initial_backoff_s": 1.0,
        "retry_max_backoff_s": 9.0,
        "retry_multiplier": 3.0,
    }
    assert set(changed) == {f.name for f in dataclasses.fields(JobSpec)} - {"request_id"}
    for field, value in changed.items():
        assert dataclasses.replace(SPEC, **{field: value}).fingerprint() != SPEC.fingerprint(), field
