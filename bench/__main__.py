"""`python -m bench` (run it as scripts/bench): start the real server, measure, print ratios.

`--peers` runs the comparison with other job queues instead (bench/peers/); `--watchers` the watcher
measurements (bench/watchers/); `--dashboard` the dashboard's API with a large store (bench/dashboard/).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bench import baselines, pipeline, report, scenarios
from bench.dashboard import run as dashboard
from bench.measure import Measurement
from bench.peers import orchestrate
from bench.peers.systems import select
from bench.rig import CONCURRENCY, FULL, QUICK, Rig, rig
from bench.server import postgres_version, serving, throwaway_postgres
from bench.watchers import run as watchers

STEP_TIMEOUT_S = 120.0  # one scenario; a hung call or a wedged server fails the run instead of stalling it


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench",
        description="Measure jobwarden against baselines taken in the same run; prints ratios.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer operations: done in under 30 s (with --peers: 100 jobs, 1 round, every system; with "
        "--watchers: 5 s of load, 500 watchers; with --dashboard: 2,000 jobs, 5 requests each)",
    )
    parser.add_argument(
        "--database",
        metavar="URL",
        help="postgresql://... server to create (and drop) a throw-away database on; default: a SQLite "
        "file in a temporary directory (with --peers: postgresql://postgres@127.0.0.1:5432/postgres)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON here")
    parser.add_argument(
        "--server-log-level",
        default="INFO",
        help="the server's --log-level (INFO, as shipped, logs a line per transition: part of the cost)",
    )
    orchestrate.add_arguments(parser)
    watchers.add_arguments(parser)
    dashboard.add_arguments(parser)
    return parser


Step = tuple[str, Callable[[], Awaitable[Measurement]]]


def _steps(r: Rig, postgres_url: str | None) -> list[Step]:
    sizes = r.sizes
    steps: list[Step] = [
        ("health check c1", lambda: baselines.health(r, 1)),
        ("health check c16", lambda: baselines.health(r, CONCURRENCY)),
        (
            "raw sqlite3 commit",
            lambda: _sync(baselines.raw_sqlite(r.workdir, sizes.raw_commits, sizes.warmup)),
        ),
    ]
    if postgres_url is not None:
        steps.append(
            (
                "raw asyncpg commit",
                lambda: baselines.raw_postgres(postgres_url, sizes.raw_commits, sizes.warmup),
            )
        )
    steps += [
        ("streamed message", lambda: baselines.stream_message(r)),
        ("CreateJob c1", lambda: scenarios.create_jobs(r, 1)),
        ("CreateJob c16", lambda: scenarios.create_jobs(r, CONCURRENCY)),
        ("CreateJobs x100 c4", lambda: scenarios.create_batches(r, 100, 4)),
        ("claim+complete max 1", lambda: scenarios.claim_complete(r, 1)),
        ("claim+complete max 10", lambda: scenarios.claim_complete(r, 10)),
        ("ReportProgress c1", lambda: scenarios.report_progress(r, 1, heartbeat=False)),
        ("ReportProgress c16", lambda: scenarios.report_progress(r, CONCURRENCY, heartbeat=False)),
        ("heartbeat c16", lambda: scenarios.report_progress(r, CONCURRENCY, heartbeat=True)),
        ("watch latency", lambda: scenarios.watch_latency(r)),
        ("pipeline", lambda: pipeline.drain(r)),
    ]
    return steps


async def _sync(m: Measurement) -> Measurement:
    # The raw sqlite3 baseline is plain blocking stdlib code (nothing else runs meanwhile: the server is
    # another process); this lets it sit in the list of awaitable steps.
    return m


async def _run(args: argparse.Namespace) -> int:
    sizes = QUICK if args.quick else FULL
    mode = "quick" if args.quick else "default"
    results: list[Measurement] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="jobwarden-bench-") as tmp:
        workdir = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            if args.database:
                url = await stack.enter_async_context(throwaway_postgres(args.database))
                described = (
                    f"PostgreSQL {await postgres_version(url)}, throw-away database (dropped at the end)"
                )
                raw_key, raw_db = "raw.postgres", "asyncpg"
            else:
                url = str(workdir / "jobwarden.db")
                described = f"SQLite file in {workdir.parent} (WAL, synchronous=NORMAL), fresh"
                raw_key, raw_db = "raw.sqlite", "sqlite3"
            report.say(f"starting jobwarden serve ({described})")
            server = await stack.enter_async_context(serving(url, workdir, args.server_log_level))
            r = await stack.enter_async_context(rig(server, workdir, sizes))
            report.say(f"server pid {server.pid} on {server.address}")
            for label, step in _steps(r, url if args.database else None):
                started = time.perf_counter()
                async with asyncio.timeout(STEP_TIMEOUT_S):
                    results.append(await step())
                report.say(f"{label}: {time.perf_counter() - started:.1f} s")
            # The same empty call again at the end: how far it moved says how noisy this run was.
            again = await baselines.health(r, 1)
            again.key, again.name = "health.c1.end", "health check round trip (c1, again at the end)"
            results.append(again)
    env = report.environment(mode, described, postgres=bool(args.database), load_before=load_before)
    report.attach_ratios(results, raw_key)
    print(report.table(results, env, raw_db))
    if args.json:
        report.write_json(args.json, report.as_json(results, env, sizes.as_dict()))
        report.say(f"wrote {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; the exit status is 0 when every scenario ran (a failure raises, with its traceback)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.peers:
        try:
            select(args.systems, ts_workers=args.ts_workers)
        except ValueError as err:
            parser.error(str(err))  # exits 2 with the usage line
    if args.dashboard and args.dashboard_jobs is not None and args.dashboard_jobs < dashboard.MIN_JOBS:
        parser.error(f"--dashboard-jobs must be at least {dashboard.MIN_JOBS} (the mix and a second page)")
    try:
        if args.watchers:
            return asyncio.run(watchers.run(args))
        if args.dashboard:
            return asyncio.run(dashboard.run(args))
        return asyncio.run(orchestrate.run(args) if args.peers else _run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
