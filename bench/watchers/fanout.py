"""Many concurrent watchers on one server: how long they take to open, the server's resident memory
with all of them open, and a change reaching the watchers of a sample of jobs.

The issue's goal: 10,000 concurrent watchers on one server under 1 GiB resident. The jobs are created
held (CREATED), so nothing changes them while the watches open. The client side is spread over
`processes` holder processes (bench/watchers/hold.py), each with a few connections. Once every watch
had its first message the server's VmRSS and VmHWM are read from /proc/PID/status; then a sample of
the jobs is cancelled, one CancelJob each, and each of their watchers must read the CANCELLED
transition (and no other watcher any event).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from bench.report import say
from bench.rig import CALL_TIMEOUT_S, Rig
from bench.watchers.figures import PYTHON, ROOT, child_env, memory_kib, percentiles
from jobwarden.v1 import job_service_pb2

JOB_TYPE = "bench.fanout"
CHANNELS_PER_PROCESS = 4
OPENING_PER_PROCESS = 100
"""Watches per process waiting for their first message at once (see hold.py for why a bound)."""
CANCEL_LANES = 16
OPEN_TIMEOUT_S = 900.0
EVENT_TIMEOUT_S = 60.0
CLOSE_TIMEOUT_S = 60.0


class _Holders:
    """The holder processes and what they said."""

    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []
        self.started: list[int] = []
        self.ready: list[dict[str, Any]] = []
        self.events: dict[str, tuple[int, str]] = {}
        self.broken: dict[str, str] = {}
        self.all_ready = asyncio.Event()
        self.changed = asyncio.Event()
        self.expected: set[str] = set()
        self.readers: list[asyncio.Task[None]] = []

    async def read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for line in proc.stdout:
            item = json.loads(line)
            if "started_ns" in item:
                self.started.append(item["started_ns"])
            elif "ready_ns" in item:
                self.ready.append(item)
                if len(self.ready) == len(self.procs):
                    self.all_ready.set()
            elif "event" in item:
                self.events[item["event"]] = (item["received_ns"], item["status"])
                if self.expected <= self.events.keys():
                    self.changed.set()
            elif "broken" in item:
                self.broken[item["broken"]] = item["code"]


@contextlib.asynccontextmanager
async def _holding(rig: Rig, job_ids: list[str], processes: int) -> AsyncIterator[_Holders]:
    holders = _Holders()
    try:
        for p in range(processes):
            proc = await asyncio.create_subprocess_exec(
                PYTHON,
                "-m",
                "bench.watchers.hold",
                cwd=ROOT,
                env=child_env(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                limit=1 << 20,
            )
            holders.procs.append(proc)
            holders.readers.append(asyncio.create_task(holders.read(proc)))
            task = {
                "address": rig.server.address,
                "job_ids": job_ids[p::processes],
                "channels": CHANNELS_PER_PROCESS,
                "opening": OPENING_PER_PROCESS,
            }
            assert proc.stdin is not None
            proc.stdin.write(json.dumps(task).encode() + b"\n")
            await proc.stdin.drain()
        yield holders
    finally:
        for proc in holders.procs:
            if proc.stdin is not None:
                proc.stdin.close()  # the holder ends its streams and exits
        for proc in holders.procs:
            try:
                await asyncio.wait_for(proc.wait(), CLOSE_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await asyncio.gather(*holders.readers, return_exceptions=True)


async def _create_held(rig: Rig, count: int) -> list[str]:
    ids: list[str] = []
    for start in range(0, count, 1000):
        items = [
            job_service_pb2.CreateJobRequest(job_type=JOB_TYPE, hold=True, request_id=str(uuid.uuid4()))
            for _ in range(min(1000, count - start))
        ]
        reply = await rig.job_stub(start).CreateJobs(
            job_service_pb2.CreateJobsRequest(requests=items), timeout=CALL_TIMEOUT_S
        )
        ids += [r.job.id for r in reply.results]
    if len(ids) != count:
        raise RuntimeError(f"created {len(ids)} of {count} jobs")
    return ids


async def _cancel(rig: Rig, job_ids: list[str]) -> dict[str, int]:
    """CancelJob each, CANCEL_LANES at a time; returns when each call was sent (monotonic ns)."""
    sent: dict[str, int] = {}
    pending = iter(enumerate(job_ids))

    async def lane() -> None:
        for i, job_id in pending:
            sent[job_id] = time.monotonic_ns()
            await rig.job_stub(i).CancelJob(
                job_service_pb2.CancelJobRequest(
                    job_id=job_id, reason="bench: fan-out sample", request_id=str(uuid.uuid4())
                ),
                timeout=CALL_TIMEOUT_S,
            )

    await asyncio.gather(*(lane() for _ in range(CANCEL_LANES)))
    return sent


async def run(rig: Rig, *, watchers: int, processes: int, sample: int) -> dict[str, Any]:
    """Open `watchers` watches over `processes` processes, measure, change `sample` jobs, check."""
    pid = rig.server.pid
    job_ids = await _create_held(rig, watchers)
    before = memory_kib(pid)
    cpu_before = rig.server.cpu_seconds()
    say(f"created {watchers} held jobs; server VmRSS {before['VmRSS'] / 1024:.0f} MiB; opening the watches")
    async with _holding(rig, job_ids, processes) as holders:
        await asyncio.wait_for(holders.all_ready.wait(), OPEN_TIMEOUT_S)
        opened = sum(r["opened"] for r in holders.ready)
        open_s = (max(r["ready_ns"] for r in holders.ready) - min(holders.started)) / 1e9
        cpu_open = rig.server.cpu_seconds() - cpu_before
        with_all = memory_kib(pid)
        say(f"{opened} watches open in {open_s:.1f} s; server VmRSS {with_all['VmRSS'] / 1024:.0f} MiB")
        step = max(1, watchers // sample)
        chosen = job_ids[::step][:sample]
        holders.expected = set(chosen)
        sent = await _cancel(rig, chosen)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(holders.changed.wait(), EVENT_TIMEOUT_S)
        got = {j: holders.events[j] for j in chosen if j in holders.events}
        delays = [(received - sent[j]) / 1e6 for j, (received, _) in got.items()]
        wrong_status = sum(1 for _, status in got.values() if status != "JOB_STATUS_CANCELLED")
        unexpected = len(set(holders.events) - set(chosen))
    after = memory_kib(pid)
    grown_kib = with_all["VmRSS"] - before["VmRSS"]
    return {
        "watchers": watchers,
        "client_processes": processes,
        "connections": processes * CHANNELS_PER_PROCESS,
        "opened": opened,
        "open_failures": [r["failed"] for r in holders.ready if r["failed"]],
        "open_retries": sum(r["retries"] for r in holders.ready),
        "open_seconds": round(open_s, 2),
        "opened_per_s": round(opened / open_s, 1) if open_s else None,
        "server_cpu_ms_per_open": round(1e3 * cpu_open / opened, 3) if opened else None,
        "server_rss_mib": {
            "before": round(before["VmRSS"] / 1024, 1),
            "all_open": round(with_all["VmRSS"] / 1024, 1),
            "peak": round(with_all["VmHWM"] / 1024, 1),
            "after_closed": round(after["VmRSS"] / 1024, 1),
        },
        "rss_kib_per_watcher": round(grown_kib / opened, 1) if opened else None,
        "sample": len(chosen),
        "sample_received": len(got),
        "sample_wrong_status": wrong_status,
        "unexpected_events": unexpected,
        "broken_streams": len(holders.broken),
        "change_to_watcher_ms": percentiles(delays),
        "change": "CancelJob of a held job (CANCELLED), from the call's send to the watcher's read",
    }
