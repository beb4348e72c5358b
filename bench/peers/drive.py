"""One run of one system, inside that system's venv: queue N jobs, start its workers, time the drain.

Run as `python -m bench.peers.drive --system NAME --jobs N --out PATH ...` by the orchestrator. Prints
nothing on success; writes one JSON object to --out. Only the standard library plus the system's
adapter module (which imports the system's own packages).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from bench.peers import cpu

WORKERS = 2
CONCURRENCY = 16
STOP_TIMEOUT_S = 20.0
# Polls of "how many jobs are left" come closer together early and further apart later: about 200
# polls whatever the drain's length, so the end is known to ~0.5% and the polling costs the same.
POLLS_PER_DRAIN = 200
MIN_POLL_S, MAX_POLL_S = 0.005, 0.25

PR_SET_PDEATHSIG = 1
# Workers are started through this launcher so that the kernel kills them if the driver dies, even by
# SIGKILL; execv keeps the pid, so the pid held is the worker's own (as in bench/server.py).
_LAUNCHER = (
    "import ctypes, os, sys; "
    f"ctypes.CDLL('libc.so.6').prctl({PR_SET_PDEATHSIG}, {int(signal.SIGKILL)}); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    """What every adapter is given."""

    system: str
    variant: str  # "noop" or "progress" (one progress report per job)
    jobs: int
    workdir: Path
    postgres_url: str | None  # a throw-away database of this run's own, for PostgreSQL systems
    redis_url: str | None  # the bench's Redis database number, flushed before and after
    profile: Path | None  # with a server process: py-spy records it over the drain into this file
    py_spy: str | None
    callgrind: Path | None = None  # with a server process: run it under valgrind's callgrind, totals here

    @property
    def progress(self) -> bool:
        """Whether each job reports progress once."""
        return self.variant == "progress"

    @property
    def bin(self) -> Path:
        """The venv's bin folder (console scripts of the system)."""
        return Path(sys.executable).parent


class Adapter(Protocol):
    """What a system supplies to the driver (one module per system: bench/peers/sys_*.py)."""

    enqueue_mode: str  # "per call" or "batch (...)": how enqueue() queues the jobs
    server_pid: int | None  # a coordinating server process of its own, if the system has one
    database: str  # "postgres", "redis", or where an in-process database's CPU is counted

    async def setup(self) -> None:
        """Create the schema / start the server; nothing queued yet."""

    async def enqueue(self, n: int) -> None:
        """Queue n jobs, as a user would."""

    def worker_command(self, index: int) -> tuple[list[str], dict[str, str]]:
        """Argv (argv[0] an absolute path) and extra environment of worker process `index`."""
        ...

    async def remaining(self) -> int:
        """Jobs not yet finished, as the system's own store says."""
        ...

    async def check(self, n: int) -> None:
        """Raise unless exactly n jobs finished successfully."""

    def excluded_backends(self) -> list[int]:
        """PostgreSQL backend pids of the bench's own connections (not the system's cost)."""
        ...

    async def database_seconds(self) -> float | None:
        """For a database with its own CPU counter (Redis): that counter now; else None."""
        ...

    def versions(self) -> dict[str, str]:
        """The versions measured, for the report."""
        ...

    async def close(self) -> None:
        """Stop what setup() started and clean up (Redis: flush the bench database)."""


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        # A file, not a pipe: a pipe nobody reads fills up and stalls a chatty worker mid-drain.
        return subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, *argv],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path.cwd(),
        )


def _stop(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    for w in workers:
        if w.poll() is None:
            w.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for w in workers:
        try:
            w.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()


def _profile(pid: int, s: Settings) -> subprocess.Popen[bytes]:
    assert s.profile is not None and s.py_spy is not None
    # The flame graph is of Python frames (cheap to record); the collapsed stacks that get summarised
    # include native ones (--native: SQLite, grpc's C core, the GIL waits), which slows the server more.
    fmt, native = ("flamegraph", []) if s.profile.suffix == ".svg" else ("raw", ["--native"])
    with s.profile.with_suffix(".log").open("wb") as log:
        return subprocess.Popen(
            [
                s.py_spy,
                "record",
                "--pid",
                str(pid),
                "--rate",
                "100",
                *native,
                "--format",
                fmt,
                "-o",
                str(s.profile),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _stop_profiler(profiler: subprocess.Popen[bytes], s: Settings) -> None:
    # py-spy writes its file when interrupted.
    profiler.send_signal(signal.SIGINT)
    try:
        profiler.wait(30)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.wait()
    if s.profile is not None and not s.profile.exists():
        raise RuntimeError(f"py-spy wrote no profile; see {s.profile.with_suffix('.log')}")


def _tail(paths: Sequence[Path]) -> str:
    return "\n".join(f"--- {p.name}:\n{p.read_text(errors='replace')[-1500:]}" for p in paths if p.exists())


async def _drained(
    adapter: Adapter,
    workers: Sequence[subprocess.Popen[bytes]],
    logs: Sequence[Path],
    start: float,
    limit: float,
) -> float:
    """Seconds from `start` until the system reports no job left."""
    while True:
        left = await adapter.remaining()
        now = time.perf_counter()
        if left == 0:
            return now - start
        elapsed = now - start
        if elapsed > limit:
            raise RuntimeError(f"{left} jobs still unfinished after {limit:.0f} s\n{_tail(logs)}")
        dead = [w.args for w in workers if w.poll() is not None]
        if dead:
            raise RuntimeError(f"a worker exited before the drain ended ({left} left)\n{_tail(logs)}")
        await asyncio.sleep(min(MAX_POLL_S, max(MIN_POLL_S, elapsed / POLLS_PER_DRAIN)))


async def measure(adapter: Adapter, s: Settings) -> dict[str, Any]:
    """Queue, drain, and measure one run; the adapter is set up and closed here."""
    await adapter.setup()
    try:
        started = time.perf_counter()
        await adapter.enqueue(s.jobs)
        enqueue_s = time.perf_counter() - started
        if (queued := await adapter.remaining()) != s.jobs:
            raise RuntimeError(f"{queued} jobs queued, expected {s.jobs}")
        backends = None
        if adapter.database == "postgres" and s.postgres_url:
            backends = cpu.PostgresBackends(s.postgres_url.rsplit("/", 1)[1], adapter.excluded_backends())
            backends.start()
        db_before = await adapter.database_seconds()
        server_before = cpu.process_seconds(adapter.server_pid) if adapter.server_pid else None
        logs = [s.workdir / f"worker-{i}.log" for i in range(WORKERS)]
        profiler = _profile(adapter.server_pid, s) if s.profile and adapter.server_pid else None
        start = time.perf_counter()
        workers = []
        try:
            for i in range(WORKERS):
                argv, env = adapter.worker_command(i)
                workers.append(_spawn(argv, env, logs[i]))
            drain_s = await _drained(adapter, workers, logs, start, limit=60 + s.jobs * 0.1)
            # Read while the workers still live: their CPU over the timed span, start-up included.
            worker_s = cpu.tree_seconds(w.pid for w in workers)
            server_s = (
                cpu.process_seconds(adapter.server_pid) - server_before
                if adapter.server_pid and server_before is not None
                else None
            )
            db_after = await adapter.database_seconds()
            db_s = backends.stop() if backends else None
            if db_before is not None and db_after is not None:
                db_s = db_after - db_before
        finally:
            _stop(workers)
            if profiler is not None:
                _stop_profiler(profiler, s)
        await adapter.check(s.jobs)
    finally:
        await adapter.close()
    return {
        "system": s.system,
        "variant": s.variant,
        "jobs": s.jobs,
        "enqueue_s": enqueue_s,
        "enqueue_mode": adapter.enqueue_mode,
        "drain_s": drain_s,
        "cpu_s": {"server": server_s, "workers": worker_s, "database": db_s},
        "database": adapter.database,
        "versions": adapter.versions(),
    }


def callgrind_command(out: Path) -> list[str]:
    """The prefix that runs a command under callgrind, counting its instructions into `out`."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (Debian: apt-get install valgrind)")
    return [valgrind, "--tool=callgrind", f"--callgrind-out-file={out}"]


def callgrind_total(out: Path) -> int:
    """The instructions a callgrind output file counted, all threads together."""
    for line in out.read_text(errors="replace").splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.peers.drive")
    p.add_argument("--system", required=True, help="adapter module under bench.peers, e.g. sys_celery")
    p.add_argument("--name", required=True, help="the system's name in the report")
    p.add_argument("--variant", choices=("noop", "progress"), default="noop")
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--postgres-url")
    p.add_argument("--redis-url")
    p.add_argument("--profile", type=Path, help="py-spy the server over the drain (.svg or .txt)")
    p.add_argument("--py-spy", help="the py-spy command")
    p.add_argument("--callgrind", type=Path, help="run the server under callgrind, its output file here")
    p.add_argument("--out", type=Path, required=True)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run once; the JSON result goes to --out."""
    args = _parser().parse_args(argv)
    module = importlib.import_module(f"bench.peers.{args.system}")
    with tempfile.TemporaryDirectory(prefix="jobwarden-peers-") as tmp:
        s = Settings(
            system=args.name,
            variant=args.variant,
            jobs=args.jobs,
            workdir=Path(tmp),
            postgres_url=args.postgres_url,
            redis_url=args.redis_url,
            profile=args.profile,
            py_spy=args.py_spy,
            callgrind=args.callgrind,
        )
        result = asyncio.run(measure(module.make(s), s))
        if s.callgrind is not None:
            result["server_instructions"] = callgrind_total(s.callgrind)
    args.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
