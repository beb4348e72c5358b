"""Every transition is logged as one structured line: job, owner, from, to, actor, reason."""

from __future__ import annotations

import logging

import pytest
from support import flows, rpc


async def test_each_transition_is_one_structured_log_line(
    stubs: rpc.Stubs, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jobwarden_server.service.writer")
    job = await flows.create(stubs)
    await flows.complete(stubs, await flows.claim_one(stubs))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("transition ")]
    claim = f"transition job={job.id} owner=default from=QUEUED to=RUNNING actor=worker:w1"
    done = f"transition job={job.id} owner=default from=RUNNING to=COMPLETED actor=worker:w1"
    assert lines == [
        f"{claim} reason='claimed by worker w1 (attempt 1)'",
        f"{done} reason='completed by worker'",
    ]
