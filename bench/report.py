"""Ratios against the same run's baselines, the printed table, the JSON file, and the machine it ran on."""

from __future__ import annotations

import json
import math
import os
import platform
import sqlite3
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.measure import Measurement

HEALTH_SEQ, HEALTH_CONC = "health.c1", "health.c16"


def attach_ratios(results: list[Measurement], raw_commit_key: str) -> None:
    """Give each jobwarden row its ratios. Sequential one-call-per-unit rows compare p50 latencies;
    the others compare wall time per unit (the inverse of throughput) with the concurrent baseline."""
    by_key = {m.key: m for m in results}
    raw = by_key.get(raw_commit_key)
    for m in results:
        if m.baseline:
            continue
        sequential = m.concurrency == 1 and m.one_call and len(m.latencies) == m.units
        rpc = by_key[HEALTH_SEQ if m.concurrency == 1 else HEALTH_CONC]
        if sequential and m.p50 is not None and rpc.p50:
            _add(m, "time_vs_health", m.p50 / rpc.p50, "{:.1f}x RTT")
        else:
            _add(m, "time_vs_health", m.seconds_per_op / rpc.seconds_per_op, "{:.1f}x RTT")
        mine, base = m.server_cpu_per_op, rpc.server_cpu_per_op
        if mine is not None and base:
            _add(m, "server_cpu_vs_health", mine / base, "{:.1f}x CPU")
        if raw is None or not raw.p50:
            continue
        # Every jobwarden row commits. Sequentially, the time beyond an empty round trip is the work
        # behind the RPC, the commit path included; under concurrency the single writer makes the time
        # per unit itself the figure to hold against one raw commit.
        if sequential and m.p50 is not None and rpc.p50 is not None:
            _add(m, "beyond_rpc_vs_raw_commit", (m.p50 - rpc.p50) / raw.p50, "{:.0f}x commit")
        else:
            _add(m, "time_vs_raw_commit", m.seconds_per_op / raw.p50, "{:.0f}x commit")


def _add(m: Measurement, key: str, value: float, text: str) -> None:
    m.ratios[key] = round(value, 2)
    m.ratio_text.append(text.format(value))


LEGEND = """\
ratios: "RTT" = time per unit (p50 for sequential one-RPC rows, else wall time per unit) over the same
        for an empty Health/Check round trip at matching concurrency (c1 or c16);
        "CPU" = server CPU per unit over the server CPU of one Health/Check at matching concurrency;
        "commit" = sequential rows: (p50 - health p50) / p50 of one raw {db} commit of a job+event row;
                   concurrent rows: wall time per unit / p50 of one raw {db} commit.
srv/gen us = CPU microseconds per unit of the server process / of the load generator (this process)."""


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None or math.isnan(seconds) else f"{seconds * 1e3:.3f}"


def _us(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e6:.0f}"


def table(results: list[Measurement], env: dict[str, Any], raw_db: str) -> str:
    """The report as text."""
    lines = [
        (
            f"jobwarden bench ({env['mode']}): {env['cpus']} cores ({env['cpu_model']}), python "
            f"{env['python']}, grpcio {env['grpcio']}, protobuf {env['protobuf']}, sqlite {env['sqlite']}"
        ),
        (
            f"database: {env['database']}; load average before the run {env['load_average_before']}, "
            f"after {env['load_average_1m']}"
        ),
        f"note: {env['note']}",
        "",
    ]
    header = ("operation", "units", "ops/s", "p50 ms", "p99 ms", "srv us", "gen us", "ratios")
    rows = [header]
    for m in results:
        rows.append(
            (
                ("  " if m.baseline else "") + m.name,
                str(m.units),
                f"{m.ops_per_s:,.0f}",
                _ms(m.p50),
                _ms(m.p99),
                _us(m.server_cpu_per_op),
                _us(m.client_cpu_per_op),
                "baseline" if m.baseline else ", ".join(m.ratio_text),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for n, r in enumerate(rows):
        cells = [r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:-1], widths[1:], strict=True))]
        lines.append("  ".join([*cells, r[-1]]))
        if n == 0:
            lines.append("-" * (sum(widths) + 2 * len(widths) + len("ratios")))
    lines += ["", LEGEND.format(db=raw_db)]
    notes = [f"  {m.name}: {m.note}" for m in results if m.note]
    if notes:
        lines += ["notes:", *notes]
    return "\n".join(lines)


def environment(mode: str, database: str, *, postgres: bool, load_before: float) -> dict[str, Any]:
    """What the figures depend on."""
    cpus = len(os.sched_getaffinity(0))
    note = (
        f"server and load generator share these {cpus} cores, so every ratio includes the load "
        "generator competing for CPU (see 'gen us'); compare runs on the same machine only"
    )
    if postgres:
        # The backend processes doing the SQL are PostgreSQL's, not the server's.
        note += "; 'srv us' excludes PostgreSQL's own CPU, which competes for the same cores if it is local"
    return {
        "mode": mode,
        "cpus": cpus,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "grpcio": metadata.version("grpcio"),
        "protobuf": metadata.version("protobuf"),
        "sqlalchemy": metadata.version("sqlalchemy"),
        "sqlite": sqlite3.sqlite_version,
        "database": database,
        # Other work on the machine (someone's test suite) skews everything: say how busy it was.
        "load_average_before": round(load_before, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "note": note,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


def as_json(results: list[Measurement], env: dict[str, Any], sizes: dict[str, Any]) -> str:
    """The report as JSON: environment, sizes, and one object per row (times in seconds)."""
    rows = [
        {
            "key": m.key,
            "name": m.name,
            "baseline": m.baseline,
            "units": m.units,
            "concurrency": m.concurrency,
            "seconds": m.seconds,
            "ops_per_s": m.ops_per_s,
            "p50_s": m.p50,
            "p99_s": m.p99,
            "server_cpu_s_per_op": m.server_cpu_per_op,
            "client_cpu_s_per_op": m.client_cpu_per_op,
            "ratios": m.ratios,
            "note": m.note,
        }
        for m in results
    ]
    return json.dumps({"environment": env, "sizes": sizes, "results": rows}, indent=2)


def write_json(path: Path, text: str) -> None:
    """Write the JSON report (creating its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def say(message: str) -> None:
    """Progress on stderr, so stdout holds only the report."""
    print(f"bench: {message}", file=sys.stderr, flush=True)
