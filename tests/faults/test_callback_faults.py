"""Completion callbacks across a server kill -9: the outbox row commits with the job's end, so a server
killed between that commit and the delivery delivers it after the restart, under the same webhook-id.

Real processes: a `jobwarden serve` (SQLite, and PostgreSQL when configured) and an HTTP receiver on
loopback that is down until the server has been killed, so no delivery can happen before the kill.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import standardwebhooks
from support import faultproc, flows
from support.receiver import SECRET, Receiver, callbacks_toml
from support.rpc import Stubs

from jobwarden.v1 import job_pb2

WAIT_S = 20.0
DELIVERED = job_pb2.CALLBACK_STATE_DELIVERED


def _config(tmp_path: Path) -> Path:
    config = faultproc.write_config(tmp_path / "server.toml", settings={"reaper_interval_seconds": 0.5})
    with config.open("a") as f:
        f.write(callbacks_toml(timeout_seconds=1, initial_backoff_seconds=0.1, max_backoff_seconds=0.3))
    return config


async def _job_when(s: Stubs, job_id: str, attempts: int = 0, state: int = 0) -> job_pb2.Job:
    async with asyncio.timeout(WAIT_S):
        while True:
            try:
                job = await flows.get(s, job_id)
            except Exception:  # noqa: BLE001 - the server is restarting: ask again
                job = None
            if (
                job is not None
                and job.callback_attempts >= attempts
                and (not state or job.callback_state == state)
            ):
                return job
            await asyncio.sleep(0.05)


async def test_a_kill_9_between_commit_and_delivery_delivers_after_the_restart(
    tmp_path: Path, database: str
) -> None:
    server = faultproc.ServerProcess(tmp_path, _config(tmp_path), database=database)
    with Receiver() as receiver, faultproc.cleanup(server):
        receiver.down()
        await server.start()
        async with faultproc.stubs(server.address) as s:
            job = await flows.create(s, callback_url=receiver.url)
            claim = await flows.claim_one(s)
            await flows.complete(s, claim, n=1)
            # Committed and attempted (refused: the receiver is down), not delivered: now kill it.
            before = await _job_when(s, job.id, attempts=1)
            assert before.callback_state == job_pb2.CALLBACK_STATE_DELIVERING
            server.kill()
            receiver.up()
            await server.start()
            after = await _job_when(s, job.id, state=DELIVERED)
            history = await flows.events(s, job.id)
    assert after.status == job_pb2.JOB_STATUS_COMPLETED
    [got] = receiver.received
    standardwebhooks.Webhook(SECRET).verify(got.body, got.headers)
    assert got.payload["data"]["job_id"] == job.id
    ids = {e.callback_attempt.webhook_id for e in history if e.WhichOneof("kind") == "callback_attempt"}
    assert ids == {got.headers["webhook-id"]}  # the same delivery before and after the crash
    assert server.kills == 1
