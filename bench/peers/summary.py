"""Medians over the repetitions, every jobwarden ÷ peer and ÷ floor ratio, and the printed table."""

from __future__ import annotations

import statistics
from typing import Any

from bench.peers.systems import JOBWARDEN, System

COMPONENTS = ("server", "workers", "database")


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def _per_system(system: System, runs: list[dict[str, Any]]) -> dict[str, Any]:
    jobs = runs[0]["jobs"]
    cpu: dict[str, float | None] = {
        c: _median([r["cpu_s"][c] * 1e3 / jobs if r["cpu_s"][c] is not None else None for r in runs])
        for c in COMPONENTS
    }
    cpu["total"] = _median([sum(v for v in r["cpu_s"].values() if v is not None) * 1e3 / jobs for r in runs])
    return {
        "kind": system.kind,
        "variant": system.variant,
        "needs": system.needs or "sqlite",
        "repetitions": len(runs),
        "drain_jobs_per_s": _median([jobs / r["drain_s"] for r in runs]),
        "enqueue_jobs_per_s": _median([jobs / r["enqueue_s"] for r in runs]),
        "cpu_ms_per_job": cpu,
        "drain_jobs_per_s_each": [round(jobs / r["drain_s"], 1) for r in runs],
        "enqueue_mode": runs[0]["enqueue_mode"],
        "database_cpu": runs[0]["database"],
        "versions": runs[0]["versions"],
    }


def build(
    systems: list[System],
    runs: list[dict[str, Any]],
    failures: list[dict[str, Any]],
    env: dict[str, Any],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """The report: environment, settings, per-system medians, ratios, every run, and what failed."""
    per: dict[str, dict[str, Any]] = {}
    for system in systems:
        mine = [r for r in runs if r["system"] == system.name]
        if mine:
            per[system.name] = _per_system(system, mine)
    ratios: dict[str, dict[str, dict[str, float]]] = {}
    for name, row in per.items():
        if row["kind"] != JOBWARDEN:
            continue
        ratios[name] = {
            other: {
                "drain": round(row["drain_jobs_per_s"] / o["drain_jobs_per_s"], 4),
                "enqueue": round(row["enqueue_jobs_per_s"] / o["enqueue_jobs_per_s"], 4),
                "cpu_per_job": round(row["cpu_ms_per_job"]["total"] / o["cpu_ms_per_job"]["total"], 2),
            }
            for other, o in per.items()
            if o["kind"] != JOBWARDEN
        }
    return {
        "environment": env,
        "settings": settings,
        "systems": per,
        "ratios": ratios,
        "runs": runs,
        "failures": failures,
    }


def _num(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _grid(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        lines.append(
            "  ".join([r[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True))])
        )
        if n == 0:
            lines.append("-" * len(lines[0]))
    return lines


def table(report: dict[str, Any]) -> str:
    """The report as text: one row per system, then the ratio matrices."""
    env, st, per = report["environment"], report["settings"], report["systems"]
    lines = [
        (
            f"jobwarden peers bench ({env['mode']}, {env['git']}): {st['jobs']} no-op jobs queued, then drained "
            f"by {st['workers']} worker processes x {st['concurrency']}; median of {st['repetitions']} "
            "interleaved rounds"
        ),
        f"{env['cpus']} cores ({env['cpu_model']}), python {env['python']}; {env['database']}",
        f"load average before {env['load_average_before']}, after {env['load_average_1m']}",
        "",
    ]
    rows = [
        [
            "system",
            "drain jobs/s",
            "(each round)",
            "enqueue jobs/s",
            "cpu ms/job: server",
            "workers",
            "database",
            "total",
        ]
    ]
    for name, r in per.items():
        cpu = r["cpu_ms_per_job"]
        rows.append(
            [
                name,
                _num(r["drain_jobs_per_s"]),
                " ".join(_num(v) for v in r["drain_jobs_per_s_each"]),
                _num(r["enqueue_jobs_per_s"]),
                _num(cpu["server"], 2),
                _num(cpu["workers"], 2),
                _num(cpu["database"], 2),
                _num(cpu["total"], 2),
            ]
        )
    lines += _grid(rows)
    others = [n for n, r in per.items() if r["kind"] != "jobwarden"]
    titles = {
        "drain": "drain jobs/s (above 1: jobwarden is faster)",
        "enqueue": "enqueue jobs/s (above 1: jobwarden is faster)",
        "cpu_per_job": "total CPU per job (above 1: jobwarden spends more)",
    }
    for what, title in titles.items():
        if report["ratios"] and others:
            lines += ["", f"jobwarden ÷ peer/floor, {title}"]
            grid = [["", *others]]
            for name, against in report["ratios"].items():
                grid.append([name, *(f"{against[o][what]:.3g}" for o in others)])
            lines += _grid(grid)
    lines += ["", "how each system queued its jobs, and where its database CPU is counted:"]
    lines += [f"  {n}: {r['enqueue_mode']}; database: {r['database_cpu']}" for n, r in per.items()]
    lines += [
        "notes: drain is timed from spawning the worker processes (start-up included) until the system's own",
        "  store says every job is finished; worker CPU is over the same span. PostgreSQL CPU = the backends of",
        "  the run's own database (shared WAL writer/checkpointer not attributed); Redis CPU = the whole",
        "  redis-server (the bench's own polling included). Enqueue is one client, one call at a time.",
    ]
    for f in report["failures"]:
        lines.append(f"FAILED: {f['system']} (round {f['repetition']}): {f['error'].splitlines()[-1:]}")
    if "profile" in report:
        for name, p in report["profile"].items():
            lines += ["", f"profile of {name}'s server over one drain (py-spy; {p['flamegraph']}):"]
            lines += [f"  {line}" for line in p["summary"]["text"]]
    return "\n".join(lines)
