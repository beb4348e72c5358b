"""A batch's parent calls back once, when it ends: a real server, a real HTTP receiver on loopback,
the signature checked with the `standardwebhooks` package. SQLite, and PostgreSQL when configured."""

from __future__ import annotations

import asyncio
from pathlib import Path

import standardwebhooks
from support import flows, rpc
from support.receiver import SECRET, Receiver, policy_settings

from jobwarden.v1 import job_pb2, job_service_pb2
from jobwarden_server.settings import callbacks_policy

DONE = (job_pb2.CALLBACK_STATE_DELIVERED, job_pb2.CALLBACK_STATE_FAILED)


async def test_the_parent_calls_back_once_when_it_ends(tmp_path: Path, backend: str) -> None:
    policy = callbacks_policy(policy_settings())
    with Receiver() as receiver:
        async with (
            rpc.server(tmp_path, backend=backend, callbacks=policy) as srv,
            rpc.stubs(srv.address) as s,
        ):
            children = [job_service_pb2.CreateJobRequest(job_type="demo") for _ in range(3)]
            parent = (
                await s.jobs.CreateBatch(
                    job_service_pb2.CreateBatchRequest(
                        job_type="report", children=children, callback_url=receiver.url, labels={"run": "7"}
                    )
                )
            ).job
            claims = await flows.claim(s, max_jobs=3)
            await flows.complete(s, claims[0])
            await flows.fail(s, claims[1], "no")
            running = await flows.get(s, parent.id)
            assert running.callback_state == job_pb2.CALLBACK_STATE_UNSPECIFIED, "not before it ends"
            await flows.complete(s, claims[2])
            async with asyncio.timeout(10):
                while (job := await flows.get(s, parent.id)).callback_state not in DONE:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            history = await flows.events(s, parent.id)

    assert job.status == job_pb2.JOB_STATUS_PARTIAL
    assert (job.callback_state, job.callback_attempts) == (job_pb2.CALLBACK_STATE_DELIVERED, 1)
    [got] = receiver.received
    payload = standardwebhooks.Webhook(SECRET).verify(got.body, got.headers)
    assert payload["type"] == "job.partial"
    assert (payload["data"]["job_id"], payload["data"]["status"]) == (parent.id, "PARTIAL")
    assert payload["data"]["labels"] == {"run": "7"}
    kinds = flows.kinds(history)
    assert kinds.count("callback_attempt") == 1 and kinds[-2:] == ["RUNNING->PARTIAL", "callback_attempt"]
