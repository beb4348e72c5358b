"""Driver errors to domain errors, at the seam, so nothing above the store sees SQLAlchemy or a driver.

Only failures of the database itself (busy, locked, unreachable, restarted, out of connections,
serialization conflicts) become StoreUnavailable: the transaction did not commit, so a retry is safe.
Anything else (a constraint the service should have checked, a bug in a query) propagates unchanged,
because calling it "unavailable" would invite pointless retries of something that cannot succeed.
"""

from __future__ import annotations

from sqlalchemy import exc

from jobwarden_server.domain import errors
from jobwarden_server.store import _tables as tables

# PostgreSQL SQLSTATE classes that mean "try again": connection exception, transaction rollback
# (serialization failure, deadlock), insufficient resources (too many connections), operator
# intervention (admin shutdown, cannot connect now), system error (I/O).
_PROGRESS_CONSTRAINT = f"ck_jobs_{tables.PROGRESS_CHECK_NAME}"

_RETRYABLE_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})

# Text PostgreSQL cannot store: character_not_in_repertoire (a NUL in text), untranslatable_character
# (a NUL in jsonb). The API refuses NULs before they get here; this keeps any other way in from
# surfacing as INTERNAL, and a retry could never succeed.
_UNSTORABLE_TEXT_SQLSTATES = frozenset({"22021", "22P05"})

# pysqlite reports SQL mistakes as OperationalError too; these are bugs or an unmigrated database,
# not unavailability, so they must not be retried.
_SQLITE_PROGRAMMING_PREFIXES = ("no such table", "no such column", "near ", "table ", "index ")


def _sqlstate(err: exc.DBAPIError) -> str | None:
    sqlstate = getattr(err.orig, "sqlstate", None) or getattr(err.orig, "pgcode", None)
    return sqlstate if isinstance(sqlstate, str) else None


def _is_unavailable(err: exc.DBAPIError) -> bool:
    if err.connection_invalidated:
        return True
    sqlstate = _sqlstate(err)
    if isinstance(sqlstate, str) and sqlstate[:2] in _RETRYABLE_SQLSTATE_CLASSES:
        return True
    if isinstance(err, exc.InterfaceError):
        # The connection is closed or broken (asyncpg's ConnectionDoesNotExistError, for one).
        return True
    if isinstance(err, exc.OperationalError):
        return not str(err.orig).lower().startswith(_SQLITE_PROGRAMMING_PREFIXES)
    return False


class translated:  # used as a function: `with translated():`
    """Re-raise database unavailability as StoreUnavailable with the driver error as its cause.

    A class, not a generator-based context manager: every store call opens one, and this costs a
    fraction of what contextlib's wrapper does."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, _kind: type[BaseException] | None, err: BaseException | None, _tb: object) -> None:
        if err is not None:
            _raise_translated(err)


def _raise_translated(err: BaseException) -> None:
    """Raise the domain error `err` stands for, from it; return to let `err` itself propagate."""
    if isinstance(err, exc.IntegrityError):
        # The service validates progress first; the CHECK constraint is the schema holding the line.
        if _PROGRESS_CONSTRAINT in str(err.orig):
            raise errors.InvalidArgument(
                "progress.percent", "must be between 0 and 100", reason="PROGRESS_OUT_OF_RANGE"
            ) from err
        return
    if isinstance(err, exc.DBAPIError):
        if _sqlstate(err) in _UNSTORABLE_TEXT_SQLSTATES:
            raise errors.InvalidArgument(
                "request", "holds text the database cannot store (the NUL character U+0000)"
            ) from err
        if _is_unavailable(err):
            raise errors.StoreUnavailable(f"database unavailable: {err.orig}") from err
        return
    if isinstance(err, exc.TimeoutError):
        # Every pooled connection stayed busy for the pool timeout: overloaded, not broken.
        raise errors.StoreUnavailable("database unavailable: no free connection") from err
    if isinstance(err, OSError):
        # asyncpg raises these unwrapped while connecting: refused, reset, unreachable, and
        # TimeoutError (an OSError subclass) when the connect timeout passes.
        raise errors.StoreUnavailable(f"database unavailable: {err!r}") from err
