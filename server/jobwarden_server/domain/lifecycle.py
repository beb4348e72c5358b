"""Lifecycle tables: which status changes are legal, as data.

A table is chosen per job type. Built-in tables follow DESIGN.md section 2; custom ones come from the
server's config file and are checked once at start-up by `Lifecycle.checked`, so a wrong table stops
the server instead of stranding jobs later.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from jobwarden_server.domain.errors import ConfigError, LifecycleNotConfigured
from jobwarden_server.domain.status import TERMINAL, JobStatus

S = JobStatus


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Lifecycle:
    """A named table of legal transitions. Build it with `Lifecycle.checked`."""

    name: str
    initial: JobStatus
    transitions: frozenset[tuple[JobStatus, JobStatus]]

    @classmethod
    def checked(
        cls, name: str, initial: JobStatus, transitions: Iterable[tuple[JobStatus, JobStatus]]
    ) -> Lifecycle:
        """Build a table and check it; raise ConfigError naming the offending state if it is wrong."""
        table = cls(name=name, initial=initial, transitions=frozenset(transitions))
        table._check()
        return table

    @property
    def statuses(self) -> frozenset[JobStatus]:
        """Every status that appears in the table."""
        return frozenset({self.initial, *(s for edge in self.transitions for s in edge)})

    def allows(self, from_status: JobStatus, to_status: JobStatus) -> bool:
        """Whether the table has the edge from -> to."""
        return (from_status, to_status) in self.transitions

    def sources_of(self, to_status: JobStatus) -> frozenset[JobStatus]:
        """The statuses from which `to_status` can be reached in one step."""
        return frozenset(a for a, b in self.transitions if b == to_status)

    def can_hold(self) -> bool:
        """Whether jobs of this table may start held in CREATED (and be released to the initial state)."""
        return self.allows(S.CREATED, self.initial)

    def _check(self) -> None:
        where = f"lifecycle {self.name!r}"
        if not self.name:
            raise ConfigError("a lifecycle needs a name")
        if self.initial.terminal:
            raise ConfigError(f"{where}: initial state {self.initial} is terminal")
        for a, b in sorted(self.transitions):
            if a.terminal:
                raise ConfigError(f"{where}: terminal state {a} has a way out (to {b})")
            if a == b:
                raise ConfigError(f"{where}: state {a} has a transition to itself")
        if not self.allows(S.QUEUED, S.RUNNING):
            raise ConfigError(f"{where}: QUEUED -> RUNNING is missing, so no worker could ever claim a job")
        for status in sorted(self.statuses - TERMINAL):
            if not self._reaches_terminal(status):
                raise ConfigError(f"{where}: state {status} cannot reach a terminal state")
        entries = self._entries()
        for status in sorted(self.statuses - entries):
            if not any(status in self._closure(s) for s in entries):
                raise ConfigError(f"{where}: state {status} cannot be reached from {self.initial}")

    def _reaches_terminal(self, start: JobStatus) -> bool:
        return any(s.terminal for s in self._closure(start))

    def _entries(self) -> set[JobStatus]:
        """Where jobs enter the table: the initial state, and CREATED when jobs can be held there."""
        return {self.initial} | ({S.CREATED} if self.can_hold() else set())

    def _closure(self, start: JobStatus) -> set[JobStatus]:
        """Every status reachable from `start` (itself included)."""
        seen = {start}
        frontier = [start]
        while frontier:
            current = frontier.pop()
            for a, b in self.transitions:
                if a == current and b not in seen:
                    seen.add(b)
                    frontier.append(b)
        return seen


def _edges(
    pairs: Iterable[tuple[Iterable[JobStatus], Iterable[JobStatus]]],
) -> list[tuple[JobStatus, JobStatus]]:
    return [(a, b) for sources, targets in pairs for a in sources for b in targets]


STANDARD = Lifecycle.checked(
    "standard",
    S.QUEUED,
    _edges(
        [
            ([S.CREATED], [S.QUEUED]),
            ([S.CREATED, S.QUEUED], [S.CANCELLED, S.EXPIRED]),
            ([S.QUEUED], [S.RUNNING]),
            ([S.RUNNING], [S.COMPLETED, S.PARTIAL, S.FAILED, S.CANCELLED, S.EXPIRED]),
            # Retry: only the server takes this edge (lease rescue, retryable failure).
            ([S.RUNNING], [S.QUEUED]),
        ]
    ),
)

SIMPLE = Lifecycle.checked(
    "simple",
    S.QUEUED,
    _edges([([S.QUEUED], [S.RUNNING]), ([S.RUNNING], [S.COMPLETED, S.FAILED, S.PARTIAL])]),
)

STAGED = Lifecycle.checked(
    "staged",
    S.QUEUED,
    _edges(
        [
            ([S.CREATED], [S.QUEUED]),
            ([S.QUEUED], [S.RUNNING]),
            ([S.CREATED, S.QUEUED, S.RUNNING], [S.COMPLETED, S.FAILED, S.CANCELLED, S.EXPIRED]),
        ]
    ),
)

BATCH = Lifecycle.checked(
    "batch",
    S.QUEUED,
    _edges(
        [
            ([S.QUEUED], [S.RUNNING, S.CANCELLED]),
            ([S.RUNNING], [S.COMPLETED, S.PARTIAL, S.FAILED, S.CANCELLED]),
        ]
    ),
)
"""The table of every batch parent, whatever its job type: the server drives a parent from its
children (domain/batches.py), so its moves must not depend on a table chosen for workers' jobs."""

BUILTIN: Mapping[str, Lifecycle] = {t.name: t for t in (STANDARD, SIMPLE, STAGED, BATCH)}


@dataclasses.dataclass(frozen=True, slots=True)
class Lifecycles:
    """The tables in force: every named table, the choice per job type and the default."""

    tables: Mapping[str, Lifecycle]
    by_job_type: Mapping[str, str]
    default: str = STANDARD.name

    @classmethod
    def build(
        cls,
        custom: Iterable[Lifecycle] = (),
        by_job_type: Mapping[str, str] | None = None,
        default: str = STANDARD.name,
    ) -> Lifecycles:
        """Merge built-ins with custom tables and check every reference; raise ConfigError if wrong."""
        tables = dict(BUILTIN)
        for table in custom:
            if table.name in tables:
                raise ConfigError(f"lifecycle {table.name!r} is defined twice (or shadows a built-in)")
            tables[table.name] = table
        choice = dict(by_job_type or {})
        for job_type, name in [*choice.items(), ("(default)", default)]:
            if name not in tables:
                raise ConfigError(f"job type {job_type!r} uses unknown lifecycle {name!r}")
        return cls(tables=tables, by_job_type=choice, default=default)

    def for_job_type(self, job_type: str) -> Lifecycle:
        """The table governing jobs of `job_type`."""
        return self.tables[self.by_job_type.get(job_type, self.default)]

    def named(self, name: str) -> Lifecycle:
        """The table stored on a job. The server refuses to start without a table that unfinished jobs
        use, but a replica started with another config may still meet one: LifecycleNotConfigured."""
        try:
            return self.tables[name]
        except KeyError:
            raise LifecycleNotConfigured(name) from None

    def missing(self, in_use: Mapping[str, int]) -> dict[str, int]:
        """Of the tables unfinished jobs use (name -> how many jobs), those this config lacks."""
        return {name: count for name, count in sorted(in_use.items()) if name not in self.tables}
