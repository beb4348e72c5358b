"""`scripts/bench --watchers`: both watcher measurements, each on a fresh `jobwarden serve`, as JSON."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench import report
from bench.report import say
from bench.rig import QUICK as RIG_SIZES
from bench.rig import Rig, rig
from bench.server import postgres_version, serving, throwaway_postgres
from bench.watchers import fanout, latency
from bench.watchers.figures import ROOT


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    """How much each measurement does."""

    rates: tuple[float, ...]  # jobs/s offered in the latency runs, one run each (the goal's first)
    seconds: float  # measured, after the warm-up
    warmup_s: float
    watchers: int  # concurrent watches in the fan-out run
    processes: int  # holding them
    sample: int  # jobs changed once they are all open


FULL = Sizes(rates=(200, 100, 50), seconds=30, warmup_s=3, watchers=10_000, processes=4, sample=100)
QUICK = Sizes(rates=(200,), seconds=5, warmup_s=1, watchers=500, processes=2, sample=50)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The --watchers options."""
    group = parser.add_argument_group("--watchers: progress-to-watcher latency and many concurrent watchers")
    group.add_argument("--watchers", action="store_true", help="run the watcher measurements instead")
    group.add_argument(
        "--rates",
        metavar="LIST",
        help="comma-separated jobs/s, a latency run each (default 200,100,50; --quick 200)",
    )
    group.add_argument("--watcher-count", type=int, help=f"concurrent watches ({FULL.watchers}; --quick 500)")


@contextlib.asynccontextmanager
async def _rigged(args: argparse.Namespace, workdir: Path, config: Path) -> AsyncIterator[tuple[Rig, str]]:
    """A fresh server over a fresh database (a throw-away one on --database), with channels to it."""
    await asyncio.to_thread(workdir.mkdir)
    async with contextlib.AsyncExitStack() as stack:
        if args.database:
            url = await stack.enter_async_context(throwaway_postgres(args.database))
            described = f"PostgreSQL {await postgres_version(url)}, throw-away database"
        else:
            url = str(workdir / "jobwarden.db")
            described = "SQLite file (WAL, synchronous=NORMAL), fresh"
        server = await stack.enter_async_context(serving(url, workdir, args.server_log_level, config))
        yield await stack.enter_async_context(rig(server, workdir, RIG_SIZES)), described


async def run(args: argparse.Namespace) -> int:
    """Both measurements; prints a summary and writes the JSON (bench-results/ unless --json)."""
    base = QUICK if args.quick else FULL
    rates = tuple(float(r) for r in args.rates.split(",")) if args.rates else base.rates
    sizes = dataclasses.replace(base, rates=rates, watchers=args.watcher_count or base.watchers)
    load_before = os.getloadavg()[0]
    git = git_describe()
    results: dict[str, Any] = {}
    described = ""
    with tempfile.TemporaryDirectory(prefix="jobwarden-watchers-") as tmp:
        workdir = Path(tmp)
        # The default of 256 streams per owner would refuse the fan-out (every watch here has one owner).
        config = workdir / "server.toml"
        config.write_text(f"max_streams_per_owner = {sizes.watchers + 1000}\n")
        results["latency"] = []
        for rate in sizes.rates:  # a fresh server each: a run's backlog must not slow the next
            say(f"latency: {rate:g} jobs/s for {sizes.warmup_s:g} s warm-up + {sizes.seconds:g} s")
            here = workdir / f"latency-{rate:g}"
            async with _rigged(args, here, config) as (r, described):
                results["latency"].append(
                    await latency.run(r, here, rate=rate, seconds=sizes.seconds, warmup_s=sizes.warmup_s)
                )
        say(f"fan-out: {sizes.watchers} watchers over {sizes.processes} processes")
        async with _rigged(args, workdir / "fanout", config) as (r, described):
            results["fanout"] = await fanout.run(
                r, watchers=sizes.watchers, processes=sizes.processes, sample=sizes.sample
            )
    env = report.environment(
        "quick" if args.quick else "default", described, postgres=bool(args.database), load_before=load_before
    )
    env["git"] = git
    out = {"environment": env, "settings": dataclasses.asdict(sizes), **results}
    print(_summary(out))
    path = args.json or ROOT / "bench-results" / f"watchers-{time.strftime('%Y%m%d-%H%M%S')}.json"
    report.write_json(path, json.dumps(out, indent=2))
    say(f"wrote {path}")
    return 0


def _summary(out: dict[str, Any]) -> str:
    env, fan = out["environment"], out["fanout"]
    lines = [f"watchers ({env['database']}, {env['mode']})"]
    for lat in out["latency"]:
        ms = lat["send_to_watcher_ms"]
        lines.append(
            f"  progress report -> watcher at {lat['offered_jobs_per_s']:g} jobs/s offered "
            f"({lat['finished_jobs_per_s']} finished/s; {lat['progress_events_received']} of {lat['jobs']} "
            f"events): p50 {ms['p50']} ms, p95 {ms['p95']} ms, p99 {ms['p99']} ms, max {ms['max']} ms"
        )
        lines.append(
            f"    CPU, share of a core: server {lat['server_cpu_share']:.0%}, workers "
            f"{lat['worker_cpu_share']:.0%}, load generator {lat['generator_cpu_share']:.0%}; report "
            f"acked after p50 {lat['send_to_ack_ms']['p50']} ms; outcomes {lat['outcomes']}; "
            f"errors {lat['errors'] or 'none'}"
        )
    change, rss = fan["change_to_watcher_ms"], fan["server_rss_mib"]
    lines.append(
        f"  {fan['opened']} of {fan['watchers']} watchers open in {fan['open_seconds']} s "
        f"({fan['opened_per_s']}/s, {fan['server_cpu_ms_per_open']} ms server CPU each, "
        f"{fan['open_retries']} refused openings retried)"
    )
    lines.append(
        f"  server VmRSS {rss['before']} MiB before, {rss['all_open']} MiB with all open "
        f"({fan['rss_kib_per_watcher']} KiB per watcher), peak {rss['peak']} MiB"
    )
    lines.append(
        f"  a change on {fan['sample']} jobs reached {fan['sample_received']} of their watchers: "
        f"p50 {change['p50']} ms, p99 {change['p99']} ms; events elsewhere {fan['unexpected_events']}"
    )
    return "\n".join(lines)


def git_describe() -> str:
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"
