"""Hot statements run straight on the driver's cursor: written in Core like every other statement,
compiled once per database, executed without SQLAlchemy's per-call machinery.

A job's claim and completion are a handful of small statements in a write unit, and for each of them
SQLAlchemy's execution context, parameter processing and result objects cost about as much CPU as
SQLite's own work (docs/performance.md). A `Prepared` statement keeps what SQLAlchemy compiled for the
connection's dialect (the SQL text with its casts, the order of its parameters, the conversions of
its values and columns) and hands it to the DBAPI cursor itself: sqlite3's on the writer thread, the
asyncpg adapter's inside `run_sync` on PostgreSQL. What SQLAlchemy would do around a failure is done
here too: the driver's error is raised as SQLAlchemy's, and a connection that broke is invalidated.

Only plain bound parameters (no `expanding` IN lists): what the hot statements use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

Processor = Callable[[Any], Any] | None
Statement = sa.Select[Any] | sa.Update | sa.Insert | sa.TextClause
_REQUIRED = object()
"""Stands for the value of a parameter the caller must give (a bindparam without a value)."""


@dataclasses.dataclass(slots=True)
class _Compiled:
    sql: str
    binds: tuple[tuple[str, Processor, Any], ...]
    """Each positional parameter's name, its value conversion (JSON to text, for instance) and the
    value the statement itself gives it (a literal written into the statement, like a status)."""
    columns: tuple[tuple[int, Processor], ...] | None = None
    """The result columns that need a conversion, by position; learnt from the first result's
    description (a driver tells some column types only there)."""


class Prepared:
    """One Core statement, compiled for each database it first runs on; `rows` and `run_many` run it."""

    def __init__(self, statement: Statement, *, keys: Sequence[str] | None = None) -> None:
        """`keys`: for an INSERT, the columns its rows give (its VALUES clause is compiled from them)."""
        self.statement = statement
        self._keys = list(keys) if keys is not None else None
        self._compiled: dict[tuple[str, str], _Compiled] = {}

    def rows(self, conn: sa.Connection, params: Mapping[str, Any]) -> list[Mapping[Any, Any]]:
        """Execute with `params`; the rows it returns, as mappings by column name."""
        compiled = self._for(conn.dialect)
        args = _args(compiled, params)
        with _cursor(conn, compiled.sql, args) as cursor:
            cursor.execute(compiled.sql, args)
            description = cursor.description
            found = cursor.fetchall() if description else []
        if not description:
            return []
        if compiled.columns is None:
            compiled.columns = self._conversions(conn.dialect, description)
        names = [column[0] for column in description]
        if not compiled.columns:
            return [dict(zip(names, row, strict=True)) for row in found]
        return [dict(zip(names, _converted(row, compiled.columns), strict=True)) for row in found]

    def run(self, conn: sa.Connection, params: Mapping[str, Any]) -> int:
        """Execute with `params` a statement that returns no rows; how many rows it changed."""
        compiled = self._for(conn.dialect)
        args = _args(compiled, params)
        with _cursor(conn, compiled.sql, args) as cursor:
            cursor.execute(compiled.sql, args)
            return int(cursor.rowcount)

    def run_many(self, conn: sa.Connection, params: Sequence[Mapping[str, Any]]) -> None:
        """Execute once per item of `params` (an INSERT of several rows), returning nothing."""
        if not params:
            return
        compiled = self._for(conn.dialect)
        many = [_args(compiled, p) for p in params]
        with _cursor(conn, compiled.sql, many) as cursor:
            cursor.executemany(compiled.sql, many)

    def _for(self, dialect: sa.Dialect) -> _Compiled:
        key = (dialect.name, dialect.driver)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self._compile(dialect)
        return compiled

    def _compile(self, dialect: sa.Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect, column_keys=self._keys)
        if compiled.positiontup is None:
            raise ValueError(f"{dialect.name}'s driver takes named parameters; prepare for positional ones")
        if any(compiled.binds[name].expanding for name in compiled.positiontup):
            raise ValueError("a prepared statement takes plain parameters, not expanding lists")
        binds = tuple(
            (
                name,
                bind.type.dialect_impl(dialect).bind_processor(dialect),
                _REQUIRED if bind.required else bind.effective_value,
            )
            for name in compiled.positiontup
            if (bind := compiled.binds[name]) is not None
        )
        return _Compiled(sql=compiled.string, binds=binds)

    def _conversions(
        self, dialect: sa.Dialect, description: Sequence[Any]
    ) -> tuple[tuple[int, Processor], ...]:
        exported = list(getattr(self.statement, "exported_columns", ()))
        if len(exported) != len(description):
            raise ValueError("the statement's columns and the driver's description disagree")
        return tuple(
            (position, processor)
            for position, (column, described) in enumerate(zip(exported, description, strict=True))
            if (processor := column.type.dialect_impl(dialect).result_processor(dialect, described[1]))
            is not None
        )


def run_plain(conn: sa.Connection, sql: str) -> None:
    """A statement without parameters or rows (BEGIN, SAVEPOINT, RELEASE) on the driver's cursor: a
    batch of units runs two per unit."""
    with _cursor(conn, sql, ()) as cursor:
        cursor.execute(sql)


class _cursor:
    """A DBAPI cursor of the connection, closed after use; the driver's errors raised as SQLAlchemy
    raises them (OperationalError, IntegrityError, ...), so the store's seam (_errors.py) and the
    write units read them as from any other statement, and a connection that broke is invalidated
    (not handed back to the pool), as SQLAlchemy would.

    A class rather than a generator-based context manager: every hot statement opens one, and this
    costs a third as much."""

    __slots__ = ("_args", "_conn", "_cursor", "_dbapi_connection", "_sql")

    def __init__(self, conn: sa.Connection, sql: str, args: Any) -> None:
        self._conn, self._sql, self._args = conn, sql, args
        self._dbapi_connection = conn.connection.dbapi_connection
        assert self._dbapi_connection is not None
        self._cursor = self._dbapi_connection.cursor()

    def __enter__(self) -> Any:
        return self._cursor

    def __exit__(self, _kind: type[BaseException] | None, err: BaseException | None, _tb: object) -> None:
        if err is None:  # the common case, first
            self._close()
            return
        try:
            dialect = self._conn.dialect
            dbapi_error = dialect.loaded_dbapi.Error
            if isinstance(err, dbapi_error):
                gone = dialect.is_disconnect(err, self._dbapi_connection, self._cursor)
                if gone:
                    self._conn.invalidate(err)
                raise sa.exc.DBAPIError.instance(
                    self._sql, self._args, err, dbapi_error, connection_invalidated=gone, dialect=dialect
                ) from err
        finally:
            self._close()

    def _close(self) -> None:
        try:
            self._cursor.close()
        except Exception:  # noqa: BLE001, S110 - a cursor that will not close has nothing left to give
            pass


def _args(compiled: _Compiled, params: Mapping[str, Any]) -> tuple[Any, ...]:
    args = []
    for name, process, literal in compiled.binds:
        value = params.get(name, literal)
        if value is _REQUIRED:
            raise KeyError(f"no value for the statement's parameter {name!r}")
        args.append(value if process is None else process(value))
    return tuple(args)


def _converted(row: Sequence[Any], columns: tuple[tuple[int, Processor], ...]) -> list[Any]:
    values = list(row)
    for position, process in columns:
        assert process is not None
        values[position] = process(values[position])
    return values
