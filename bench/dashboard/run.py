"""`scripts/bench --dashboard`: seed a fresh `jobwarden serve` (with its HTTP port), time the dashboard's
API requests against the floor, print a table and write the JSON."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import report
from bench.dashboard import requests, seed
from bench.report import say
from bench.rig import QUICK as RIG_SIZES
from bench.rig import rig
from bench.server import postgres_version, serving, throwaway_postgres
from bench.watchers.figures import ROOT
from bench.watchers.run import git_describe

HTTP_TIMEOUT_S = 60.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    """How much the run does."""

    jobs: int  # in the store
    repeats: int  # timed requests of each kind
    warmup: int  # untimed ones before them


FULL = Sizes(jobs=100_000, repeats=50, warmup=3)
QUICK = Sizes(jobs=2_000, repeats=5, warmup=1)
MIN_JOBS = 1_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The --dashboard options."""
    group = parser.add_argument_group("--dashboard: the web dashboard's API with a large store")
    group.add_argument("--dashboard", action="store_true", help="run the dashboard measurement instead")
    group.add_argument(
        "--dashboard-jobs",
        type=int,
        metavar="N",
        help=f"jobs in the store ({FULL.jobs}; --quick {QUICK.jobs})",
    )


async def _store_bytes(database: str | None, sqlite_path: Path) -> int:
    """The store's size on disk: the SQLite file with its WAL, or the PostgreSQL database."""
    if database is None:
        return sum(p.stat().st_size for p in sqlite_path.parent.glob(sqlite_path.name + "*"))
    conn = await asyncpg.connect(database)
    try:
        return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()


async def _settle(database: str) -> None:
    """VACUUM ANALYZE the fresh PostgreSQL database, as autovacuum does within a minute or so of a bulk
    load: measured before, the planner would still go by the statistics of an empty table (a type
    filter's page then takes a bitmap scan of every job and a sort, ~60 ms instead of ~1)."""
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> int:
    """Seed, measure, print the table; writes the JSON (bench-results/ unless --json)."""
    base = QUICK if args.quick else FULL
    sizes = dataclasses.replace(base, jobs=args.dashboard_jobs or base.jobs)
    load_before = os.getloadavg()[0]
    git = git_describe()
    async with contextlib.AsyncExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jobwarden-dashboard-")))
        sqlite_path = workdir / "jobwarden.db"
        postgres: str | None = None
        if args.database:
            postgres = await stack.enter_async_context(throwaway_postgres(args.database))
            url = postgres
            described = f"PostgreSQL {await postgres_version(url)}, throw-away database (dropped at the end)"
        else:
            url = str(sqlite_path)
            described = "SQLite file (WAL, synchronous=NORMAL), fresh"
        say(f"starting jobwarden serve with its dashboard ({described})")
        server = await stack.enter_async_context(serving(url, workdir, args.server_log_level, dashboard=True))
        r = await stack.enter_async_context(rig(server, workdir, RIG_SIZES))
        say(f"seeding {sizes.jobs} jobs")
        started = time.perf_counter()
        seeded = await seed.seed(r, sizes.jobs)
        seed_s = time.perf_counter() - started
        say(f"seeded in {seed_s:.1f} s: {seeded.statuses}")
        if postgres is not None:
            await _settle(postgres)
        store_bytes = await _store_bytes(postgres, sqlite_path)
        results = []
        with httpx.Client(base_url=server.dashboard, timeout=HTTP_TIMEOUT_S) as client:
            for request in requests.requests(client, seeded):
                results.append(requests.measure(client, request, repeats=sizes.repeats, warmup=sizes.warmup))
                say(f"{request.name}: p50 {results[-1]['p50_ms']:.2f} ms")
    floor = results[0]
    for item in results:
        item["ratio_p50"] = round(item["p50_ms"] / floor["p50_ms"], 1)
        item["ratio_p95"] = round(item["p95_ms"] / floor["p95_ms"], 1)
    env = report.environment(
        "quick" if args.quick else "default", described, postgres=bool(args.database), load_before=load_before
    )
    env["git"] = git
    env["note"] = (
        "one request at a time from the bench process, on the same machine as the server; the ratios "
        "divide by the floor measured in this run; compare runs on the same machine only"
    )
    out = {
        "environment": env,
        "settings": dataclasses.asdict(sizes),
        "store": {
            "jobs": seeded.total,
            "statuses": seeded.statuses,
            "mix": seed.__doc__,
            "bytes": store_bytes,
            "seed_seconds": round(seed_s, 1),
        },
        "floor": requests.FLOOR,
        "requests": results,
    }
    print(table(out))
    path = args.json or ROOT / "bench-results" / f"dashboard-{time.strftime('%Y%m%d-%H%M%S')}.json"
    report.write_json(path, json.dumps(out, indent=2))
    say(f"wrote {path}")
    return 0


def table(out: dict[str, Any]) -> str:
    """The figures as a Markdown table, under a line saying what was measured."""
    env, store = out["environment"], out["store"]
    mix = ", ".join(f"{n:,} {s}" for s, n in store["statuses"].items())
    title = (
        f"dashboard API, {store['jobs']:,} jobs ({mix}); store {store['bytes'] / 2**20:.0f} MiB; "
        f"{env['database']}, {env['mode']}, {out['settings']['repeats']} requests each"
    )
    lines = [
        title,
        "",
        "| request | answered | p50 ms | p95 ms | p50 / floor | p95 / floor |",
        "|---|---|--:|--:|--:|--:|",
    ]
    for item in out["requests"]:
        lines.append(
            f"| {item['name']} | {item['answered']} | {item['p50_ms']:.2f} | {item['p95_ms']:.2f} "
            f"| {item['ratio_p50']:.1f} | {item['ratio_p95']:.1f} |"
        )
    return "\n".join(lines)
