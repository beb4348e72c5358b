"""Every transition is logged as one structured line: job, owner, from, to, actor, reason. A worker's
claim and completion (the normal course) at DEBUG, everything else at INFO."""

from __future__ import annotations

import logging

import pytest
from support import flows, rpc

from jobwarden.v1 import job_service_pb2


def _lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("transition ") and r.levelno == level
    ]


async def test_each_transition_is_one_structured_log_line(
    stubs: rpc.Stubs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="jobwarden_server.service.writer")
    job = await flows.create(stubs)
    await flows.complete(stubs, await flows.claim_one(stubs))
    claim = f"transition job={job.id} owner=default from=QUEUED to=RUNNING actor=worker:w1"
    done = f"transition job={job.id} owner=default from=RUNNING to=COMPLETED actor=worker:w1"
    assert _lines(caplog, logging.DEBUG) == [
        f"{claim} reason='claimed by worker w1 (attempt 1)'",
        f"{done} reason='completed by worker'",
    ]
    assert _lines(caplog, logging.INFO) == []


async def test_a_failure_and_a_cancel_are_logged_at_info(
    stubs: rpc.Stubs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobwarden_server.service.writer")
    failed = await flows.create(stubs)
    await flows.fail(stubs, await flows.claim_one(stubs), "disk full")
    cancelled = await flows.create(stubs)
    await stubs.jobs.CancelJob(job_service_pb2.CancelJobRequest(job_id=cancelled.id), metadata=stubs.metadata)
    lines = _lines(caplog, logging.INFO)
    assert [line.split(" reason=")[0] for line in lines] == [
        f"transition job={failed.id} owner=default from=RUNNING to=FAILED actor=worker:w1",
        f"transition job={cancelled.id} owner=default from=QUEUED to=CANCELLED actor=client:default",
    ]
    assert _lines(caplog, logging.DEBUG) == []  # the claim was not recorded at INFO
