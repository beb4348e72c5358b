"""Creating jobs, one or a thousand in one write unit, idempotent per (owner, request_id).

The rows are inserted with one `INSERT ... ON CONFLICT (owner, request_id) WHERE request_id <> '' DO
NOTHING RETURNING id` (each dialect builds it with its own `insert`). A request_id already taken, by an
earlier call or by a concurrent one that committed first, is skipped instead of failing the statement
(on PostgreSQL a failed INSERT would abort the whole transaction, and with it the other jobs); only
the request_ids that did not insert are read back, to answer them as replays or mismatches. So the
common case, all new, costs two statements however many jobs: the INSERT and the events' INSERT.

Items of one call that share a request_id are settled before any SQL: the first is inserted, the
others are answered like retries of it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from jobwarden_server.domain import errors
from jobwarden_server.domain.status import JobStatus
from jobwarden_server.store import _rows as rows
from jobwarden_server.store import _tables as tables
from jobwarden_server.store._protocol import Change, JobCreateParams, JobCreateResult

jobs = tables.jobs

Outcome = JobCreateResult | errors.DomainError
Key = tuple[str, str]
"""(owner, request_id)."""


def insert_statement(insert: Any) -> sa.Insert:
    """The INSERT of new jobs, from a dialect's `insert` (sqlalchemy.dialects.<name>.insert): skips a
    taken request_id, and returns the ids of the rows it did insert. Built once per dialect."""
    statement = insert(jobs).on_conflict_do_nothing(
        index_elements=[jobs.c.owner, jobs.c.request_id], index_where=sa.text(tables.REQUEST_ID_WHERE)
    )
    returning: sa.Insert = statement.returning(jobs.c.id)
    return returning


class Creation:
    """The jobs of one call: what to insert, then what each item is answered."""

    def __init__(self, params: Sequence[JobCreateParams]) -> None:
        self._params = params
        self._values = [rows.create_values(p, rows.to_us(p.now)) for p in params]
        self._first: dict[Key, int] = {}
        for i, p in enumerate(params):
            if p.request_id:
                self._first.setdefault((p.owner, p.request_id), i)
        # Sorted by (owner, request_id): concurrent calls sharing request_ids then take the unique
        # index's entries in the same order, so on PostgreSQL one waits for the other instead of
        # the two deadlocking.
        self._tried = sorted(
            (i for i, p in enumerate(params) if not p.request_id or self._first[_key(p)] == i),
            key=lambda i: (params[i].owner, params[i].request_id),
        )

    def insert(self, conn: sa.Connection, statement: sa.Insert) -> tuple[set[str], dict[Key, Any]]:
        """Insert the new jobs; the ids inserted, and the rows already holding the other request_ids."""
        inserted = set(conn.execute(statement, [self._values[i] for i in self._tried]).scalars())
        taken: dict[str, list[str]] = {}
        for i in self._tried:
            if self._values[i]["id"] not in inserted:
                taken.setdefault(self._params[i].owner, []).append(self._params[i].request_id)
        earlier: dict[Key, Any] = {}
        for owner, request_ids in taken.items():
            query = sa.select(jobs).where(jobs.c.owner == owner, jobs.c.request_id.in_(request_ids))
            for row in conn.execute(query).mappings():
                earlier[(owner, row["request_id"])] = row
        return inserted, earlier

    def taken(self, conn: sa.Connection) -> dict[Key, Any]:
        """The rows already holding the items' request_ids (read only: for a preview)."""
        by_owner: dict[str, set[str]] = {}
        for p in self._params:
            if p.request_id:
                by_owner.setdefault(p.owner, set()).add(p.request_id)
        earlier: dict[Key, Any] = {}
        for owner, request_ids in by_owner.items():
            query = sa.select(jobs).where(jobs.c.owner == owner, jobs.c.request_id.in_(sorted(request_ids)))
            for row in conn.execute(query).mappings():
                earlier[(owner, row["request_id"])] = row
        return earlier

    def preview(self, earlier: Mapping[Key, Any]) -> list[Outcome]:
        """What `outcomes` would answer if the items were inserted now, given the rows holding their
        request_ids (`taken`): nothing is written (validate_only)."""
        out: list[Outcome] = []
        for i, params in enumerate(self._params):
            if params.request_id:
                key = _key(params)
                if key in earlier:
                    out.append(_replay(params, earlier[key]))
                    continue
                if self._first[key] != i:
                    out.append(_replay(params, self._values[self._first[key]]))
                    continue
            event = rows.created_event_row(params, self._values[i]["create_us"])
            change = Change(job=rows.job_from_row(self._values[i]), events=(rows.event_from_row(event),))
            out.append(JobCreateResult(change=change, created=True))
        return out

    def event_rows(self, inserted: Collection[str]) -> list[dict[str, Any]]:
        """The CREATED events of the jobs inserted."""
        return [
            rows.created_event_row(self._params[i], self._values[i]["create_us"])
            for i in self._tried
            if self._values[i]["id"] in inserted
        ]

    def queues_work(self, inserted: Collection[str]) -> bool:
        """Whether a job inserted is claimable (QUEUED), so waiting claimers should hear of it."""
        return any(
            self._params[i].status is JobStatus.QUEUED
            for i in self._tried
            if self._values[i]["id"] in inserted
        )

    def outcomes(self, inserted: Collection[str], earlier: Mapping[Key, Any]) -> list[Outcome]:
        """Each item's answer, in the order of the items."""
        out: list[Outcome] = []
        for i, params in enumerate(self._params):
            values = self._values[i]
            if values["id"] in inserted:
                event = rows.created_event_row(params, values["create_us"])
                change = Change(job=rows.job_from_row(values), events=(rows.event_from_row(event),))
                out.append(JobCreateResult(change=change, created=True))
                continue
            key = _key(params)
            first = self._values[self._first[key]]
            row = first if first["id"] in inserted else earlier.get(key)
            out.append(_replay(params, row))
        return out


def _key(params: JobCreateParams) -> Key:
    return params.owner, params.request_id


def _replay(params: JobCreateParams, row: Mapping[str, Any] | None) -> Outcome:
    """The answer to an item whose request_id names `row`'s job: that job, if the content matches."""
    if row is None:
        # The job holding the request_id was gone by the time it was read back (deleted meanwhile).
        return errors.Conflict(
            f"request_id {params.request_id!r} was in use by a job that no longer exists; retry",
            metadata={"request_id": params.request_id},
        )
    if row["request_fingerprint"] != params.request_fingerprint:
        return errors.RequestIdMismatch(
            f"request_id {params.request_id!r} was already used for a different request",
            metadata={"request_id": params.request_id, "job_id": row["id"]},
        )
    return JobCreateResult(change=Change(job=rows.job_from_row(row), events=()), created=False)
