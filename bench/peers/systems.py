"""The systems `scripts/bench --peers` runs, the venv each runs in, and the pins of those venvs."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

JOBWARDEN, PEER, FLOOR = "jobwarden", "peer", "floor"
# Each peer at a pinned version in a venv of its own (bench/peers/venvs.py). "tools" draws the chart
# and profiles; matplotlib and py-spy are never a dependency of jobwarden itself.
VENVS: dict[str, tuple[str, ...]] = {
    # typer: pgqueuer 1.6.0's `pgq run` hands its --log-level default to typer as a plain string, which
    # typer 0.20+ no longer converts to the enum (AttributeError: 'str' object has no attribute 'name').
    "pgqueuer": ("pgqueuer==1.6.0", "asyncpg==0.32.0", "typer==0.19.2"),
    "procrastinate": ("procrastinate==3.10.0", "psycopg[binary]==3.3.9"),
    "celery": ("celery[redis]==5.7.0",),
    "arq": ("arq==0.28.0",),
    "tools": ("matplotlib==3.11.2", "py-spy==0.4.3"),
}


@dataclass(frozen=True, slots=True)
class System:
    """One row of the report."""

    name: str
    adapter: str  # module under bench.peers that the driver loads
    venv: str | None  # a key of VENVS; None: jobwarden's own .venv (the code under test)
    variant: str  # "noop", or "progress": one progress report per job
    needs: str  # "postgres", "redis" or "" (a SQLite file of its own)
    kind: str  # JOBWARDEN, PEER or FLOOR


SYSTEMS: tuple[System, ...] = (
    System("jobwarden-sqlite", "sys_jobwarden", None, "noop", "", JOBWARDEN),
    System("jobwarden-sqlite+progress", "sys_jobwarden", None, "progress", "", JOBWARDEN),
    System("jobwarden-postgres", "sys_jobwarden", None, "noop", "postgres", JOBWARDEN),
    System("jobwarden-postgres+progress", "sys_jobwarden", None, "progress", "postgres", JOBWARDEN),
    System("pgqueuer", "sys_pgqueuer", "pgqueuer", "noop", "postgres", PEER),
    System("procrastinate", "sys_procrastinate", "procrastinate", "noop", "postgres", PEER),
    System("celery", "sys_celery", "celery", "noop", "redis", PEER),
    System("celery+progress", "sys_celery", "celery", "progress", "redis", PEER),
    System("arq", "sys_arq", "arq", "noop", "redis", PEER),
    System("floor-sqlite", "sys_floor_sqlite", None, "noop", "", FLOOR),
    System("floor-asyncpg", "sys_floor_postgres", None, "noop", "postgres", FLOOR),
)


TS_SYSTEMS: tuple[System, ...] = (
    System("jobwarden-sqlite+ts", "sys_jobwarden_ts", None, "noop", "", JOBWARDEN),
    System("jobwarden-sqlite+ts+progress", "sys_jobwarden_ts", None, "progress", "", JOBWARDEN),
)
"""jobwarden drained by TypeScript SDK workers (Node.js): only with --ts-workers, which builds them."""


def select(patterns: str | None, *, ts_workers: bool = False) -> list[System]:
    """The systems named by a comma-separated list of names or globs (`jobwarden-*`); None: all. With
    `ts_workers`, TS_SYSTEMS are candidates too.

    Raises:
        ValueError: a pattern matches no system.
    """
    candidates = [*SYSTEMS, *(TS_SYSTEMS if ts_workers else ())]
    if not patterns:
        return candidates
    wanted = [p.strip() for p in patterns.split(",") if p.strip()]
    for p in wanted:
        if not any(fnmatch.fnmatchcase(s.name, p) for s in candidates):
            names = ", ".join(s.name for s in candidates)
            raise ValueError(f"--systems: {p!r} matches none of {names}")
    return [s for s in candidates if any(fnmatch.fnmatchcase(s.name, p) for p in wanted)]
