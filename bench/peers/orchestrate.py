"""`scripts/bench --peers`: every system, interleaved over the repetitions, medians and ratios."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.peers import profile, summary, venvs
from bench.peers.drive import CONCURRENCY, WORKERS
from bench.peers.systems import JOBWARDEN, System, select
from bench.report import environment, say
from bench.server import postgres_version, throwaway_postgres

ROOT = Path(__file__).resolve().parents[2]
FULL_JOBS, QUICK_JOBS = 5000, 100
FULL_REPETITIONS, QUICK_REPETITIONS = 3, 1
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
RUN_TIMEOUT_S = 900.0
PROFILE_JOBS = 1000
INSTRUCTION_JOBS, QUICK_INSTRUCTION_JOBS = 1000, 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The --peers options (the plain bench ignores them)."""
    group = parser.add_argument_group("--peers: jobwarden beside other job queues and raw floors")
    group.add_argument("--peers", action="store_true", help="run the peers comparison instead")
    group.add_argument("--systems", metavar="LIST", help="comma-separated names or globs (default: all)")
    group.add_argument("--jobs", type=int, help=f"jobs per run ({FULL_JOBS}; --quick {QUICK_JOBS})")
    group.add_argument(
        "--repetitions", type=int, help=f"rounds over all systems ({FULL_REPETITIONS}; --quick 1)"
    )
    group.add_argument(
        "--redis", default=DEFAULT_REDIS, metavar="URL", help="the bench's own database number"
    )
    group.add_argument("--venvs", type=Path, metavar="DIR", help="venv cache (default .bench-venvs/)")
    group.add_argument(
        "--profile", action="store_true", help="then py-spy jobwarden's server over one more SQLite drain"
    )
    group.add_argument(
        "--instructions",
        action="store_true",
        help="then count jobwarden's server instructions per job under valgrind's callgrind (drains of "
        f"{INSTRUCTION_JOBS:,} and {3 * INSTRUCTION_JOBS:,} jobs on SQLite; --quick {QUICK_INSTRUCTION_JOBS} "
        "and 3x): a figure that does not move with the machine's speed, for comparing two trees",
    )
    group.add_argument("--no-chart", action="store_true", help="skip the PNG (and the tools venv)")
    group.add_argument(
        "--ts-workers",
        action="store_true",
        help="also drain jobwarden with TypeScript SDK workers (Node.js; builds client/typescript first)",
    )


def _reachable(url: str, default_port: int) -> bool:
    parts = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=3):
            return True
    except OSError:
        return False


@contextlib.asynccontextmanager
async def _database(system: System, postgres: str) -> AsyncIterator[str | None]:
    if system.needs != "postgres":
        yield None
        return
    async with throwaway_postgres(postgres) as url:
        yield url


async def _run_one(
    system: System, python: Path, jobs: int, postgres: str, redis: str, extra: list[str]
) -> dict[str, Any]:
    async with _database(system, postgres) as url:
        with tempfile.TemporaryDirectory(prefix="jobwarden-peers-run-") as tmp:
            out = Path(tmp) / "result.json"
            argv = [
                str(python), "-m", "bench.peers.drive",
                "--system", system.adapter, "--name", system.name, "--variant", system.variant,
                "--jobs", str(jobs), "--out", str(out), *extra,
            ]  # fmt: skip
            if url:
                argv += ["--postgres-url", url]
            if system.needs == "redis":
                argv += ["--redis-url", redis]
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            try:
                output, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT_S)
            except TimeoutError:
                proc.kill()
                output, _ = await proc.communicate()
            if proc.returncode != 0 or not out.exists():
                raise RuntimeError(output.decode(errors="replace")[-4000:])
            return dict(json.loads(out.read_text()))


def _check_services(systems: list[System], postgres: str, redis: str) -> None:
    # Start nothing: the bench uses the PostgreSQL and Redis the machine runs, and says so if one is missing.
    if any(s.needs == "postgres" for s in systems) and not _reachable(postgres, 5432):
        raise SystemExit(
            f"scripts/bench --peers: no PostgreSQL at {postgres} (scripts/dev-postgres starts one)"
        )
    if any(s.needs == "redis" for s in systems) and not _reachable(redis, 6379):
        raise SystemExit(
            f"scripts/bench --peers: no Redis at {redis}; run it, or leave out celery/arq (--systems)"
        )


async def run(args: argparse.Namespace) -> int:
    """The whole comparison; exit status 1 when any run failed (the others are still reported)."""
    systems = select(args.systems, ts_workers=args.ts_workers)
    if any(s.adapter == "sys_jobwarden_ts" for s in systems):
        _build_typescript()
    jobs = args.jobs or (QUICK_JOBS if args.quick else FULL_JOBS)
    repetitions = args.repetitions or (QUICK_REPETITIONS if args.quick else FULL_REPETITIONS)
    postgres = args.database or DEFAULT_POSTGRES
    _check_services(systems, postgres, args.redis)
    load_before = os.getloadavg()[0]
    git = _git_describe()  # before the runs: the code that was measured
    started = time.monotonic()
    cache = args.venvs or venvs.default_cache(ROOT)
    wanted = {s.venv for s in systems if s.venv} | (
        set() if args.no_chart and not args.profile else {"tools"}
    )
    say(f"venvs in {cache}: {', '.join(sorted(wanted)) or 'none needed'}")
    pythons: dict[str | None, Path] = {None: Path(sys.executable), **venvs.ensure(cache, wanted)}
    venv_s = time.monotonic() - started
    say(f"venvs ready in {venv_s:.0f} s")
    runs: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for rep in range(repetitions):
        # Rotated each round, so no system always runs first (on a cold cache) or last.
        order = systems[rep % len(systems) :] + systems[: rep % len(systems)]
        for system in order:
            t = time.monotonic()
            try:
                result = await _run_one(system, pythons[system.venv], jobs, postgres, args.redis, [])
            except (RuntimeError, OSError) as err:  # one system failing must not lose the others' figures
                failures.append({"system": system.name, "repetition": rep + 1, "error": str(err)})
                say(f"round {rep + 1}/{repetitions} {system.name}: FAILED\n{err}")
                continue
            result["repetition"] = rep + 1
            runs.append(result)
            say(
                f"round {rep + 1}/{repetitions} {system.name}: {jobs / result['drain_s']:,.0f} jobs/s drain, "
                f"{jobs / result['enqueue_s']:,.0f} jobs/s enqueue ({time.monotonic() - t:.0f} s)"
            )
    env = environment(
        "peers quick" if args.quick else "peers",
        f"PostgreSQL {await postgres_version(postgres)} at {postgres}; Redis at {args.redis}",
        postgres=True,
        load_before=load_before,
    )
    env["git"] = git
    report = summary.build(
        systems, runs, failures, env,
        {"jobs": jobs, "repetitions": repetitions, "workers": WORKERS, "concurrency": CONCURRENCY,
         "venv_seconds": round(venv_s, 1)},
    )  # fmt: skip
    if args.profile:
        report["profile"] = await _profile(pythons, jobs, postgres, args.redis)
    if args.instructions:
        n = QUICK_INSTRUCTION_JOBS if args.quick else INSTRUCTION_JOBS
        report["instructions"] = await _instructions(pythons[None], n, postgres, args.redis)
    report["settings"]["total_seconds"] = round(time.monotonic() - started, 1)
    print(summary.table(report))
    json_path = args.json or ROOT / "bench-results" / f"peers-{time.strftime('%Y%m%d-%H%M%S')}.json"
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    say(f"wrote {json_path}")
    if not args.no_chart:
        png = json_path.with_suffix(".png")
        chart = await asyncio.create_subprocess_exec(
            str(pythons["tools"]), "-m", "bench.peers.chart", str(json_path), str(png),
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        if await chart.wait() != 0:
            raise RuntimeError("drawing the chart failed (see above)")
        say(f"wrote {png}")
    return 1 if failures else 0


async def _profile(pythons: dict[str | None, Path], jobs: int, postgres: str, redis: str) -> dict[str, Any]:
    """One more jobwarden-sqlite drain with py-spy on the server: a flame graph and a summary by library."""
    from bench.peers.systems import SYSTEMS

    py_spy = str(pythons["tools"].parent / "py-spy")
    outdir = ROOT / "bench-results"
    outdir.mkdir(exist_ok=True)
    found: dict[str, Any] = {}
    jobs = min(jobs, PROFILE_JOBS)  # py-spy --native slows the server several times over
    for system in (s for s in SYSTEMS if s.kind == JOBWARDEN and s.needs == ""):
        stem = outdir / f"profile-{system.name}"
        for suffix in (".txt", ".svg"):  # collapsed stacks to summarise, then a flame graph to look at
            extra = ["--profile", str(stem.with_suffix(suffix)), "--py-spy", py_spy]
            result = await _run_one(system, pythons[None], jobs, postgres, redis, extra)
        found[system.name] = {
            "jobs": jobs,
            "drain_jobs_per_s_under_py_spy": jobs / result["drain_s"],
            "flamegraph": str(stem.with_suffix(".svg")),
            "summary": profile.summarise(stem.with_suffix(".txt").read_text()),
        }
        say(f"profiled {system.name}: {stem}.svg")
    return found


async def _instructions(python: Path, jobs: int, postgres: str, redis: str) -> dict[str, Any]:
    """The server's instructions per job: the no-op SQLite drain of `jobs` and of three times `jobs` jobs with
    the server under callgrind. Their difference is the jobs' own (queued and drained); start-up and
    the idle loops cancel out of it. Wall-clock figures on a shared machine move by tens of percent
    between runs; instruction counts repeat within a fraction of one, so two trees compare on them."""
    from bench.peers.systems import SYSTEMS

    system = next(s for s in SYSTEMS if s.kind == JOBWARDEN and s.needs == "" and s.variant == "noop")
    counts: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="jobwarden-callgrind-") as tmp:
        for n in (jobs, 3 * jobs):
            extra = ["--callgrind", str(Path(tmp) / f"server-{n}.callgrind")]
            counts[n] = int(
                (await _run_one(system, python, n, postgres, redis, extra))["server_instructions"]
            )
    per_job = (counts[3 * jobs] - counts[jobs]) / (2 * jobs)
    found = {
        "system": system.name,
        "server_instructions": {str(n): c for n, c in counts.items()},
        "per_job": round(per_job),
        "start_up_and_idle": round(counts[jobs] - jobs * per_job),
    }
    say(
        f"instructions: {system.name} server {per_job / 1e6:.2f} M per job "
        f"(drains of {jobs:,} and {3 * jobs:,} jobs under callgrind; {found['start_up_and_idle'] / 1e9:.2f} G "
        "start-up and idle)"
    )
    return found


def _build_typescript() -> None:
    """Builds client/typescript (its dependencies from the lock file, then tsc) for the TS workers."""
    say("building client/typescript for the TypeScript workers")
    script = "source scripts/_node.sh && cd client/typescript && npm run --silent build"
    done = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(
            f"scripts/bench --peers --ts-workers: building client/typescript failed\n{done.stderr}"
        )


def _git_describe() -> str:
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"
