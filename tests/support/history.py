"""A Jepsen-style history of client operations, the server's final state, and the checks between them.

The history records what each client was told (`ok`, a definite `fail`, or `info` = unknown outcome:
the call may or may not have taken effect); the dump is what the server holds after the faults. The
checks are pure functions over both, so a failing run can be re-checked from the files it leaves behind.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from jobwarden.v1 import job_pb2, job_service_pb2
from support.rpc import Stubs

REPORT_DIR_ENV = "JOBWARDEN_FAULT_REPORT_DIR"
"""When set, every figures file is also written there (how the README's figures were collected)."""


@dataclasses.dataclass(slots=True)
class Op:
    """One logical client operation, however many attempts it took."""

    op: str
    proc: str
    request_id: str
    invoke_t: float
    complete_t: float = 0.0
    type: str = "info"  # ok | fail | info
    code: str = ""
    job_id: str = ""
    attempts: int = 0


@dataclasses.dataclass(slots=True)
class History:
    """The operations of one run, in invocation order."""

    ops: list[Op] = dataclasses.field(default_factory=list)

    def write(self, path: Path) -> None:
        """One JSON object per line."""
        path.write_text("".join(json.dumps(dataclasses.asdict(op)) + "\n" for op in self.ops))


@dataclasses.dataclass(frozen=True, slots=True)
class Table:
    """A lifecycle table as GetLifecycle publishes it, by status name."""

    name: str
    initial: str
    terminal: frozenset[str]
    transitions: frozenset[tuple[str, str]]

    @classmethod
    def from_pb(cls, table: job_pb2.Lifecycle) -> Table:
        """From the GetLifecycle answer."""
        name = job_pb2.JobStatus.Name
        return cls(
            name=table.name,
            initial=name(table.initial_status),
            terminal=frozenset(name(s) for s in table.terminal_statuses),
            transitions=frozenset((name(t.from_status), name(t.to_status)) for t in table.transitions),
        )


def status_name(value: int) -> str:
    """A JobStatus enum value as its name."""
    return job_pb2.JobStatus.Name(value)  # type: ignore[arg-type]


def path_problems(job: job_pb2.Job, events: Sequence[job_pb2.JobEvent], table: Table) -> list[str]:
    """Everything wrong with one job's recorded history (I4, I7): sequences 1..n without gaps, a
    `created` event first, each transition leaving the status the previous one entered, every
    transition in the table, nothing after a terminal status but callback attempts, and the job ending
    where its history does.
    """
    problems: list[str] = []
    sequences = [e.sequence for e in events]
    if sequences != list(range(1, len(events) + 1)):
        problems.append(f"sequences are not 1..{len(events)}: {sequences}")
    if job.last_sequence != len(events):
        problems.append(f"last_sequence {job.last_sequence} but {len(events)} events")
    if not events or events[0].WhichOneof("kind") != "created":
        return [*problems, "the history does not start with a created event"]
    status = status_name(events[0].created.status)
    if status not in (table.initial, "JOB_STATUS_CREATED"):
        problems.append(f"created in {status}, not in {table.initial} or CREATED")
    for event in events[1:]:
        # Only the attempts to deliver the job's completion callback follow its end: they record what
        # happened to the callback, not a change of the job.
        if status in table.terminal and event.WhichOneof("kind") != "callback_attempt":
            problems.append(f"event {event.sequence} ({event.WhichOneof('kind')}) after terminal {status}")
        if event.WhichOneof("kind") != "transition":
            continue
        edge = (status_name(event.transition.from_status), status_name(event.transition.to_status))
        if edge[0] != status:
            problems.append(f"event {event.sequence}: from {edge[0]}, but the job was {status}")
        if edge not in table.transitions:
            problems.append(f"event {event.sequence}: {edge[0]} -> {edge[1]} is not in table {table.name}")
        status = edge[1]
    if status != status_name(job.status):
        problems.append(f"the history ends in {status} but the job is {status_name(job.status)}")
    return problems


def illegal_transitions(events: Sequence[job_pb2.JobEvent], table: Table) -> int:
    """How many transitions are not edges of the table or do not leave the status they should."""
    count = 0
    status = status_name(events[0].created.status) if events and events[0].HasField("created") else ""
    for event in events:
        if event.WhichOneof("kind") != "transition":
            continue
        edge = (status_name(event.transition.from_status), status_name(event.transition.to_status))
        if edge not in table.transitions or edge[0] != status:
            count += 1
        status = edge[1]
    return count


def check_creates(history: History, rids_of_jobs: Mapping[str, str]) -> dict[str, Any]:
    """I1/I2 figures from the history and the final jobs (job id -> request id it was created with)."""
    jobs_by_rid: dict[str, list[str]] = collections.defaultdict(list)
    for job_id, rid in rids_of_jobs.items():
        jobs_by_rid[rid].append(job_id)
    creates = [op for op in history.ops if op.op == "create"]
    acked = [op for op in creates if op.type == "ok"]
    unknown = [op for op in creates if op.type == "info"]
    lost = [op.request_id for op in acked if op.job_id not in jobs_by_rid.get(op.request_id, [])]
    asked = {op.request_id for op in creates}
    return {
        "attempted": len(creates),
        "acked": len(acked),
        "failed": sum(op.type == "fail" for op in creates),
        "unknown": len(unknown),
        "lost": len(lost),
        "lost_request_ids": lost[:10],
        "recovered": sum(bool(jobs_by_rid.get(op.request_id)) for op in unknown),
        "duplicated": sum(len(ids) > 1 for ids in jobs_by_rid.values()),
        "unexpected": sum(rid not in asked for rid in jobs_by_rid),
        "create_attempts": sum(op.attempts for op in creates),
        "ok_frac": round(len(acked) / len(creates), 4) if creates else 0.0,
    }


async def all_jobs(
    s: Stubs, job_types: Iterable[str] = (), statuses: Iterable[job_pb2.JobStatus.ValueType] = ()
) -> list[job_pb2.Job]:
    """Every job of the caller (of those types, in those statuses), oldest first, across pages."""
    out: list[job_pb2.Job] = []
    token = ""
    query = job_service_pb2.ListJobsRequest(job_types=list(job_types), statuses=list(statuses), page_size=500)
    while True:
        query.page_token = token
        reply = await s.jobs.ListJobs(
            query,
            metadata=s.metadata,
            timeout=30,
        )
        out.extend(reply.jobs)
        token = reply.next_page_token
        if not token:
            return out


async def all_events(s: Stubs, job_id: str) -> list[job_pb2.JobEvent]:
    """A job's whole history, across pages."""
    out: list[job_pb2.JobEvent] = []
    token = ""
    while True:
        reply = await s.jobs.ListJobEvents(
            job_service_pb2.ListJobEventsRequest(job_id=job_id, page_size=1000, page_token=token),
            metadata=s.metadata,
            timeout=30,
        )
        out.extend(reply.events)
        token = reply.next_page_token
        if not token:
            return out


def store_name(database: str) -> str:
    """ "postgres" or "sqlite", for a server's --database value (figures name the store they measured)."""
    return "postgres" if database.startswith("postgresql") else "sqlite"


def report(name: str, figures: Mapping[str, Any], directory: Path) -> Path:
    """Print the figures (visible with `pytest -s`) and write them as JSON beside the test's files."""
    text = json.dumps(figures, indent=2, sort_keys=True, default=str)
    print(f"\n[{name}] figures:\n{text}")
    path = directory / f"{name}.figures.json"
    path.write_text(text + "\n")
    extra = os.environ.get(REPORT_DIR_ENV)
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        (Path(extra) / path.name).write_text(text + "\n")
    return path


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return round(ordered[rank], 3)
