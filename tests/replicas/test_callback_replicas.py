"""Two replicas on one PostgreSQL database deliver each completion callback once.

Both replicas' dispatchers poll the shared outbox every 20 ms, up to 4 deliveries each at once, while
40 jobs end together; the receiver takes 50 ms per request, so claims overlap all along. Each outbox
row is claimed by one replica at a time (FOR UPDATE SKIP LOCKED, then a lease), and settled once.
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import pytest
import standardwebhooks
from support import flows, rpc, waiting
from support.receiver import SECRET, Receiver, always, policy_settings

from jobwarden.v1 import job_pb2, job_service_pb2
from jobwarden_server.settings import callbacks_policy

pytestmark = pytest.mark.postgres

JOBS = 40


async def test_two_replicas_deliver_each_callback_once(tmp_path: Path, database: str) -> None:
    policy = callbacks_policy(policy_settings(poll_interval_seconds=0.02, concurrency=4))
    with Receiver(always(200, delay_s=0.05)) as receiver:
        async with (
            rpc.server(tmp_path, database=database, callbacks=policy) as a,
            rpc.server(tmp_path, database=database, callbacks=policy) as b,
            rpc.stubs(a.address) as on_a,
            rpc.stubs(b.address) as on_b,
        ):
            reply = await on_a.jobs.CreateJobs(
                job_service_pb2.CreateJobsRequest(
                    requests=[
                        job_service_pb2.CreateJobRequest(job_type="demo", callback_url=receiver.url)
                        for _ in range(JOBS)
                    ]
                )
            )
            ids = {r.job.id for r in reply.results}
            claims = await flows.claim(on_b, max_jobs=JOBS)
            assert {c.job.id for c in claims} == ids
            await asyncio.gather(*(flows.complete(on_a if i % 2 else on_b, c) for i, c in enumerate(claims)))
            await waiting.until(lambda: len(receiver.received) >= JOBS, within_s=20)

            async def delivered() -> list[job_pb2.Job]:
                return [await flows.get(on_a, job_id) for job_id in ids]

            async with asyncio.timeout(10):  # the last attempts recorded
                while True:
                    jobs = await delivered()
                    if all(j.callback_state == job_pb2.CALLBACK_STATE_DELIVERED for j in jobs):
                        break
                    await asyncio.sleep(0.05)
            history = {job_id: await flows.events(on_b, job_id) for job_id in ids}

    counts = collections.Counter(receiver.ids())
    assert len(counts) == JOBS and set(counts.values()) == {1}, counts.most_common(3)
    assert {r.payload["data"]["job_id"] for r in receiver.received} == ids
    for r in receiver.received[:3]:
        standardwebhooks.Webhook(SECRET).verify(r.body, r.headers)
    assert all(j.callback_attempts == 1 for j in jobs)
    for events in history.values():  # one attempt recorded per job, by whichever replica sent it
        assert [e.WhichOneof("kind") for e in events].count("callback_attempt") == 1
