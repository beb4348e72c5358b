"""Hot statements run straight on SQLite's cursor: written in Core like every other statement,
compiled once, executed without SQLAlchemy's per-call machinery.

A job's claim and completion are a handful of small statements on the writer thread, and for each
of them SQLAlchemy's execution context, parameter processing and result objects cost about as much
CPU as SQLite's own work (docs/performance.md). A `Prepared` statement keeps what SQLAlchemy compiled
(the SQL text, the order of its parameters, the type conversions of its values and columns) and hands
it to the sqlite3 cursor itself. Anywhere else it runs through `Connection.execute` as before: on
PostgreSQL the statements cross a socket, and asyncpg's adapter needs SQLAlchemy's own path (as does
aiosqlite's, on the maintenance engine).

Only plain bound parameters (no `expanding` IN lists) and columns of known types: what the hot
statements use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

Processor = Callable[[Any], Any] | None
_REQUIRED = object()
"""Stands for the value of a parameter the caller must give (a bindparam without a value)."""
Statement = sa.Select[Any] | sa.Update | sa.Insert


@dataclasses.dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    binds: tuple[tuple[str, Processor, Any], ...]
    """Each positional parameter's name, its value conversion (JSON to text, for instance) and the
    value the statement itself gives it (a literal written into the statement, like a status)."""
    columns: tuple[tuple[int, Processor], ...]
    """The result columns that need a conversion (JSON from text, for instance), by position."""


class Prepared:
    """One Core statement, compiled for SQLite on first use; `rows` and `run` execute it."""

    def __init__(self, statement: Statement, *, keys: Sequence[str] | None = None) -> None:
        """`keys`: for an INSERT, the columns its rows give (its VALUES clause is compiled from them)."""
        self.statement = statement
        self._keys = list(keys) if keys is not None else None
        self._sqlite: _Compiled | None = None

    def rows(self, conn: sa.Connection, params: Mapping[str, Any]) -> list[Mapping[Any, Any]]:
        """Execute with `params`; the rows it returns, as mappings by column name."""
        if not _on_sqlite3(conn):
            return list(conn.execute(self.statement, dict(params)).mappings())
        compiled = self._sqlite or self._compile(conn)
        args = _args(compiled, params)
        with _as_sqlalchemy_errors(compiled.sql, args):
            cursor = conn.connection.driver_connection.execute(compiled.sql, args)  # type: ignore[union-attr]
        names = [column[0] for column in cursor.description] if cursor.description else []
        found = cursor.fetchall()
        if compiled.columns:
            found = [_converted(row, compiled.columns) for row in found]
        return [dict(zip(names, row, strict=True)) for row in found]

    def run_many(self, conn: sa.Connection, params: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per item of `params` (an INSERT of several rows), returning nothing."""
        if not params:
            return
        if not _on_sqlite3(conn):
            conn.execute(self.statement, [dict(p) for p in params])
            return
        compiled = self._sqlite or self._compile(conn)
        many = [_args(compiled, p) for p in params]
        with _as_sqlalchemy_errors(compiled.sql, many):
            conn.connection.driver_connection.executemany(compiled.sql, many)  # type: ignore[union-attr]

    def _compile(self, conn: sa.Connection) -> _Compiled:
        dialect = conn.dialect
        compiled = self.statement.compile(dialect=dialect, column_keys=self._keys)
        assert compiled.positiontup is not None, "SQLite's parameters are positional"
        binds = tuple(
            (
                name,
                bind.type.dialect_impl(dialect).bind_processor(dialect),
                _REQUIRED if bind.required else bind.effective_value,
            )
            for name in compiled.positiontup
            if (bind := compiled.binds[name]) is not None
        )
        if any(compiled.binds[name].expanding for name in compiled.positiontup):
            raise ValueError("a prepared statement takes plain parameters, not expanding lists")
        exported = getattr(self.statement, "exported_columns", ())
        columns = tuple(
            (position, processor)
            for position, column in enumerate(exported)
            if (processor := column.type.dialect_impl(dialect).result_processor(dialect, None)) is not None
        )
        self._sqlite = _Compiled(sql=compiled.string, binds=binds, columns=columns)
        return self._sqlite


def run_plain(conn: sa.Connection, sql: str) -> None:
    """A statement without parameters or rows (BEGIN, SAVEPOINT, RELEASE), straight on sqlite3's
    connection where there is one, else through SQLAlchemy: a batch of units runs two per unit."""
    if not _on_sqlite3(conn):
        conn.exec_driver_sql(sql)
        return
    with _as_sqlalchemy_errors(sql, ()):
        conn.connection.driver_connection.execute(sql)  # type: ignore[union-attr]


@contextlib.contextmanager
def _as_sqlalchemy_errors(sql: str, args: Any) -> Iterator[None]:
    """sqlite3's errors as SQLAlchemy raises them (OperationalError, IntegrityError, ...), so the
    store's seam (_errors.py) and the write thread read them as from any other statement."""
    try:
        yield
    except sqlite3.Error as err:
        raise sa.exc.DBAPIError.instance(sql, args, err, sqlite3.Error) from err


def _on_sqlite3(conn: sa.Connection) -> bool:
    """Whether `conn` is the sqlite3 module's own connection (the writer thread's), not an async
    adapter's (aiosqlite, asyncpg), whose driver connection cannot be called from sync code."""
    return conn.dialect.name == "sqlite" and conn.dialect.driver == "pysqlite"


def _args(compiled: _Compiled, params: Mapping[str, Any]) -> tuple[Any, ...]:
    args = []
    for name, process, literal in compiled.binds:
        value = params.get(name, literal)
        if value is _REQUIRED:
            raise KeyError(f"no value for the statement's parameter {name!r}")
        args.append(value if process is None else process(value))
    return tuple(args)


def _converted(row: tuple[Any, ...], columns: tuple[tuple[int, Processor], ...]) -> tuple[Any, ...]:
    values = list(row)
    for position, process in columns:
        assert process is not None
        values[position] = process(values[position])
    return tuple(values)
