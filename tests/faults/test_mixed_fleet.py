"""A mixed fleet: Python and TypeScript workers drain one queue together while one of each is killed.

Real processes: a `jobwarden serve` with a fast reaper and short leases; two Python workers
(tests/support/worker_proc.py, mode `fleet`) and two TypeScript workers
(client/typescript/test/fleet/worker.ts), each the SDK's Worker over a Work session, each logging its
handler's every start and finish (job, attempt, pid) as flushed JSON lines. A Python client creates
1,000 jobs in one CreateJobs; a TypeScript watcher process and a Python watcher (in this process) follow
a sample of them from their first event. One worker of each language is killed with SIGKILL while it
runs jobs; their jobs come back when the leases expire and the others finish them.

At the end: every job COMPLETED, exactly once; a job's handler ran more than once only after a killed
worker ran an earlier attempt; both watchers saw each sampled job's events (sequence, kind, status) in
the same order, equal to ListJobEvents.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import hashlib
import json
import shutil
import subprocess
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import faultproc, proc

from jobwarden.client import Client, Job, JobEvent, NewJob

# The first run on a fresh clone builds the TypeScript package in a fixture, bounded by its own timeout;
# the per-test limit bounds the test itself.
pytestmark = pytest.mark.timeout(90, func_only=True)

ROOT = Path(__file__).resolve().parents[2]
TS_ROOT = ROOT / "client" / "typescript"
TS_FLEET = TS_ROOT / "dist" / "test" / "fleet"
TS_WORKER = TS_FLEET / "worker.js"
TS_WATCHER = TS_FLEET / "watcher.js"

JOB_TYPE = "fleet"
JOBS = 1000
SAMPLE = 20
LEASE_S = 2.0
REAPER_S = 0.2
CONCURRENCY = 4
WORK_MS = 30
"""Each handler's simulated work: long enough that a killed worker dies with jobs in its hands."""
KILL_AFTER = 10
"""A victim is killed once its handlers started this many jobs (and some are still running)."""
WAIT_S = 45.0


def _built() -> bool:
    """Whether dist/ holds the fleet scripts, built after every source they depend on last changed."""
    sources = [*(TS_ROOT / "src").rglob("*.ts"), *(TS_ROOT / "test" / "fleet").glob("*.ts")]
    outputs = [TS_WORKER, TS_WATCHER]
    if not all(p.exists() for p in outputs):
        return False
    return min(p.stat().st_mtime for p in outputs) >= max(p.stat().st_mtime for p in sources)


@pytest.fixture(scope="module")
def typescript() -> str:
    """The node binary, with the TypeScript package built (a fresh clone has no dist/)."""
    node = shutil.which("node")
    assert node is not None, "the mixed fleet test needs Node.js 20 or later"
    # pytest-xdist may run this module's tests in two processes at once: one builds, the other waits.
    lock_path = (
        Path(tempfile.gettempdir())
        / f"jobwarden-ts-build-{hashlib.sha256(bytes(ROOT)).hexdigest()[:12]}.lock"
    )
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _built():
            # scripts/_node.sh installs the npm packages from the lock file when they are missing.
            build = subprocess.run(
                ["bash", "-c", "source scripts/_node.sh && cd client/typescript && npm run --silent build"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
                stdin=subprocess.DEVNULL,
                check=False,
            )
            assert build.returncode == 0, (
                f"npm run build failed:\n{build.stdout[-3000:]}{build.stderr[-3000:]}"
            )
    assert _built(), "npm run build did not write dist/test/fleet"
    return node


class TypeScriptWorker(faultproc.WorkerProcess):
    """A TypeScript worker process (client/typescript/test/fleet/worker.ts), driven like worker_proc.py."""

    def __init__(self, workdir: Path, address: str, node: str, *, worker_id: str) -> None:
        super().__init__(workdir, address, worker_id=worker_id, job_type=JOB_TYPE, mode="fleet")
        self.command = [
            node,
            str(TS_WORKER),
            *("--target", address, "--log", str(self.log), "--worker-id", worker_id),
            *("--job-type", JOB_TYPE, "--lease", str(LEASE_S), "--concurrency", str(CONCURRENCY)),
        ]


def _python_worker(workdir: Path, address: str, worker_id: str) -> faultproc.WorkerProcess:
    return faultproc.WorkerProcess(
        workdir,
        address,
        worker_id=worker_id,
        job_type=JOB_TYPE,
        mode="fleet",
        lease_s=LEASE_S,
        concurrency=CONCURRENCY,
        poll_wait_s=1.0,
    )


Seen = tuple[int, str, str]
"""An event as the watchers compare it: (sequence, kind, the status it moved the job to or "")."""


def _seen(event: JobEvent) -> Seen:
    return (event.sequence, event.kind.value, event.to_status.value if event.to_status else "")


class PythonWatcher:
    """Watches each sampled job from its first event through the Python SDK, in this process."""

    def __init__(self, client: Client, job_ids: list[str]) -> None:
        self.ready: set[str] = set()
        self.ended: set[str] = set()
        self.events: dict[str, list[Seen]] = {job_id: [] for job_id in job_ids}
        self.tasks = [asyncio.create_task(self._watch(client, job_id)) for job_id in job_ids]

    async def _watch(self, client: Client, job_id: str) -> None:
        async for item in client.watch_job(job_id, 0):
            if isinstance(item, Job):
                self.ready.add(job_id)
            else:
                self.events[job_id].append(_seen(item))
        self.ended.add(job_id)


class TypeScriptWatcher:
    """client/typescript/test/fleet/watcher.ts as a process; it prints what it sees as JSON lines."""

    def __init__(self, workdir: Path, address: str, node: str, job_ids: list[str]) -> None:
        self.out = workdir / "ts-watcher.jsonl"
        with self.out.open("w") as out, (workdir / "ts-watcher.log").open("w") as err:
            self.process = proc.spawn([node, str(TS_WATCHER), address, *job_ids], stdout=out, stderr=err)

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.read_text().splitlines() if line.strip()]

    def ready(self) -> set[str]:
        return {line["job"] for line in self.lines() if line.get("ready")}

    def events(self) -> dict[str, list[Seen]]:
        found: dict[str, list[Seen]] = defaultdict(list)
        for line in self.lines():
            if "sequence" in line:
                found[line["job"]].append((line["sequence"], line["kind"], line["status"]))
        return found

    def ended(self) -> set[str]:
        return {line["job"] for line in self.lines() if line.get("ended")}


async def _until(condition: Callable[[], bool], what: str, within_s: float = WAIT_S) -> None:
    """Return once `condition()` holds (it reads files other processes write: nothing to await)."""
    try:
        async with asyncio.timeout(within_s):
            while not condition():  # noqa: ASYNC110 - the state is in other processes' log files
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"waited {within_s:.0f}s for {what}") from None


def _handler_calls(worker: faultproc.WorkerProcess, call: str) -> list[dict[str, Any]]:
    return [r for r in worker.records() if r["call"] == call]


def _running_jobs(worker: faultproc.WorkerProcess) -> bool:
    """Whether the worker started KILL_AFTER jobs and some of them have not finished."""
    starts = len(_handler_calls(worker, "handler_start"))
    return starts >= KILL_AFTER and starts > len(_handler_calls(worker, "handler_finish"))


async def _unfinished(client: Client) -> int:
    jobs, _ = await client.list_jobs(
        statuses=["CREATED", "QUEUED", "RUNNING"], job_types=[JOB_TYPE], page_size=1
    )
    return len(jobs)


async def test_python_and_typescript_workers_drain_a_queue_together_through_kills(
    database: str, tmp_path: Path, typescript: str
) -> None:
    config = faultproc.write_config(
        tmp_path / "server.toml",
        settings={"reaper_interval_seconds": REAPER_S},
        retry={"default_max_attempts": 5, "initial_backoff_seconds": 0.1, "max_backoff_seconds": 0.2},
    )
    server = faultproc.ServerProcess(tmp_path, config, database=database)
    workers = [
        _python_worker(tmp_path, server.address, "py1"),
        _python_worker(tmp_path, server.address, "py2"),
        TypeScriptWorker(tmp_path, server.address, typescript, worker_id="ts1"),
        TypeScriptWorker(tmp_path, server.address, typescript, worker_id="ts2"),
    ]
    victims = [workers[0], workers[2]]
    with faultproc.cleanup(server, *workers):
        await server.start()
        async with Client(server.address) as client:
            created = await client.create_jobs(
                [NewJob(JOB_TYPE, {"n": n, "work_ms": WORK_MS}) for n in range(JOBS)]
            )
            assert all(isinstance(job, Job) for job in created), [
                j for j in created if not isinstance(j, Job)
            ]
            ids = [job.id for job in created if isinstance(job, Job)]
            # Early jobs are claimed first, around when the victims die: the sample is likely to hold one.
            sample = ids[: SAMPLE * 3 : 3]

            ts_watcher = TypeScriptWatcher(tmp_path, server.address, typescript, sample)
            py_watcher = PythonWatcher(client, sample)
            try:
                await _until(lambda: py_watcher.ready == set(sample), "the Python watcher's snapshots")
                await _until(lambda: ts_watcher.ready() == set(sample), "the TypeScript watcher's snapshots")

                for worker in workers:
                    worker.start()
                killed: set[int] = set()
                for victim in victims:
                    await _until(functools.partial(_running_jobs, victim), f"{victim.worker_id} running jobs")
                    assert victim.process is not None
                    killed.add(victim.process.pid)
                    victim.kill()

                async with asyncio.timeout(WAIT_S):
                    while await _unfinished(client):  # noqa: ASYNC110 - polling the server's state
                        await asyncio.sleep(0.05)

                await asyncio.wait_for(asyncio.gather(*py_watcher.tasks), WAIT_S)
                await _until(lambda: ts_watcher.process.poll() is not None, "the TypeScript watcher's exit")
                assert ts_watcher.process.returncode == 0, (tmp_path / "ts-watcher.log").read_text()
            finally:
                proc.stop(ts_watcher.process)
                for task in py_watcher.tasks:
                    task.cancel()
            for worker in workers:
                if worker not in victims:
                    assert worker.stop() == 0, worker.output.read_text()[-3000:]

            jobs = [job async for job in client.iter_jobs(job_types=[JOB_TYPE], page_size=500)]
            histories = await _histories(client, ids)
        await asyncio.to_thread(server.stop)

    _completed_once(jobs, histories)
    _ran_again_only_after_a_kill(jobs, ids, workers, killed)
    _watchers_agree(sample, histories, py_watcher, ts_watcher)


def _completed_once(jobs: list[Job], histories: dict[str, list[JobEvent]]) -> None:
    """Every job COMPLETED, and moved there exactly once."""
    assert Counter(job.status.value for job in jobs) == {"COMPLETED": JOBS}
    for job_id, events in histories.items():
        completions = [e for e in events if e.to_status is not None and e.to_status.value == "COMPLETED"]
        assert len(completions) == 1, (job_id, [_seen(e) for e in events])


def _ran_again_only_after_a_kill(
    jobs: list[Job], ids: list[str], workers: list[faultproc.WorkerProcess], killed: set[int]
) -> None:
    """A handler ran again only after a killed worker ran an earlier attempt; the last run is the result."""
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for worker in workers:
        for start in _handler_calls(worker, "handler_start"):
            runs[start["job"]].append(start)
    by_id = {job.id: job for job in jobs}
    reruns = 0
    for job_id in ids:
        attempts = sorted(runs[job_id], key=lambda r: r["attempt"])
        assert attempts, f"no handler ran {job_id}"
        assert len({r["attempt"] for r in attempts}) == len(attempts), (job_id, attempts)
        assert all(r["pid"] in killed for r in attempts[:-1]), (job_id, attempts, killed)
        last, job = attempts[-1], by_id[job_id]
        assert last["attempt"] == job.attempt, (job_id, attempts)
        assert job.result == {"pid": last["pid"], "worker": last["worker"], "attempt": job.attempt}
        reruns += len(attempts) > 1
    assert reruns > 0, "no job a killed worker was running ran again"


def _watchers_agree(
    sample: list[str],
    histories: dict[str, list[JobEvent]],
    py_watcher: PythonWatcher,
    ts_watcher: TypeScriptWatcher,
) -> None:
    """Both watchers saw each sampled job's whole history, in order, as ListJobEvents records it."""
    ts_events = ts_watcher.events()
    assert ts_watcher.ended() == py_watcher.ended == set(sample)
    for job_id in sample:
        recorded = [_seen(e) for e in histories[job_id]]
        assert py_watcher.events[job_id] == recorded, job_id
        assert ts_events[job_id] == recorded, job_id


async def _histories(client: Client, ids: list[str]) -> dict[str, list[JobEvent]]:
    """ListJobEvents of every job (a few calls at a time)."""
    limit = asyncio.Semaphore(16)

    async def history(job_id: str) -> list[JobEvent]:
        async with limit:
            return [e async for e in client.iter_job_events(job_id)]

    found = await asyncio.gather(*(history(job_id) for job_id in ids))
    return dict(zip(ids, found, strict=True))
