"""A watcher that disconnects and resumes from its last sequence misses nothing."""

from __future__ import annotations

from support import flows, rpc

from jobwarden.v1 import job_pb2, job_service_pb2


async def test_resume_from_last_sequence_misses_nothing_and_repeats_nothing(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs)
    claim = await flows.claim_one(stubs)
    await flows.progress(stubs, claim, 10)

    call = stubs.jobs.WatchJob(job_service_pb2.WatchJobRequest(job_id=job.id))
    first: list[job_pb2.JobEvent] = []
    async for item in call:
        if item.HasField("event"):
            first.append(item.event)
            if item.event.sequence == 2:
                break
    call.cancel()  # the watcher goes away mid-stream

    # Things happen while nobody watches.
    for percent in (20, 30, 40):
        await flows.progress(stubs, claim, percent)
    await flows.add_asset(stubs, claim)
    await flows.complete(stubs, claim)

    _, rest = await flows.watch(stubs, job.id, after=first[-1].sequence)
    combined = first + rest
    assert [e.sequence for e in combined] == list(range(1, len(combined) + 1))
    assert combined == await flows.events(stubs, job.id)
    assert flows.kinds(combined)[-1] == "RUNNING->COMPLETED"


async def test_live_watcher_and_many_updates_stay_in_order(stubs: rpc.Stubs) -> None:
    job = await flows.create(stubs)
    watcher = flows.start_watch(stubs, job.id)
    claim = await flows.claim_one(stubs)
    for percent in range(5, 101, 5):
        await flows.progress(stubs, claim, percent)
    await flows.complete(stubs, claim)
    _, seen = await watcher
    assert [e.sequence for e in seen] == list(range(1, len(seen) + 1))
    assert [e.progress.percent for e in seen if e.HasField("progress")] == list(range(5, 101, 5))
