"""Why the database cannot be opened at start-up, in one line: the problem and what to do about it.

A missing database or role, a refused login, a failed TLS handshake or a SQLite path in a missing or
unwritable directory: `jobwarden serve` and `jobwarden migrate` must say which one it is and exit, not
print a driver traceback or a bare "database unavailable". `explained` turns each known driver error
into an error carrying that line: ConfigError for a set-up mistake, StoreUnavailable for a database
that is not (yet) there to answer (refused, no answer), which may pass by itself. Anything it does not
recognise passes through unchanged (to _errors.translated, and up).

Driver errors are recognised by SQLSTATE and by the standard library's exception classes, never by
asyncpg's classes, so this module imports nothing PostgreSQL-only (see _open.require_postgres).
"""

from __future__ import annotations

import contextlib
import errno
import getpass
import os
import re
import socket
import ssl
from collections.abc import Iterator

import sqlalchemy as sa
from sqlalchemy import exc

from jobwarden_server.domain.errors import ConfigError, StoreUnavailable
from jobwarden_server.store._open import Database

_FIX_URL = "the database URL (--database)"
_ERRNO = re.compile(r"\[Errno (\d+)\]")


@contextlib.contextmanager
def explained(database: Database) -> Iterator[None]:
    """Re-raise a known failure to open `database` as one line naming the problem and the fix.

    A SQLite path that cannot be opened is refused on entry, before any connection is tried: a failed
    aiosqlite connect leaves its worker thread to finish after the command's event loop has closed,
    and that thread then prints a traceback of its own.
    """
    if database.dialect == "sqlite":
        problem = _sqlite_path_problem(database.sqlite_path)
        if problem is not None:
            raise _mistake(problem)
    try:
        yield
    except (exc.DBAPIError, OSError) as err:
        explanation: ConfigError | StoreUnavailable | None
        if database.dialect == "sqlite":
            message = _sqlite_problem(err, database.sqlite_path)
            explanation = None if message is None else _mistake(message)
        else:
            assert database.postgres_url is not None
            explanation = _postgres_problem(err, database.postgres_url)
        if explanation is None:
            raise
        raise explanation from err


def _one_line(text: str) -> str:
    # Server messages are quoted inside ours; the command promises one line.
    return " ".join(text.split())


def _mistake(message: str) -> ConfigError:
    return ConfigError(_one_line(message))


def _outage(message: str) -> StoreUnavailable:
    return StoreUnavailable(_one_line(message))


def _postgres_problem(err: exc.DBAPIError | OSError, url: sa.URL) -> ConfigError | StoreUnavailable | None:
    port = url.port or 5432
    where = f"{url.host}:{port}" if url.host else f"the local socket (port {port})"
    if isinstance(err, exc.DBAPIError):
        message = _refused_by_server(err, url, where)
        return None if message is None else _mistake(message)
    if isinstance(err, ssl.SSLError):  # before OSError, of which it is one
        reason = getattr(err, "verify_message", None) or err.reason or str(err)
        return _mistake(
            f"TLS connection to PostgreSQL on {where} failed ({reason}); check the server's certificate, "
            f"the CA trusted for it (PGSSLROOTCERT) and the ssl option of {_FIX_URL}"
        )
    if isinstance(err, socket.gaierror):
        return _mistake(
            f"PostgreSQL host {url.host!r} does not resolve ({err.strerror}); fix the host in {_FIX_URL}"
        )
    if isinstance(err, TimeoutError):
        return _outage(
            f"no answer from PostgreSQL on {where} in time; check that the host is reachable and the port"
        )
    if isinstance(err, ConnectionError) and "SSL" in str(err):
        # asyncpg: 'PostgreSQL server at "host:port" rejected SSL upgrade' (the server has ssl = off).
        return _mistake(
            f"PostgreSQL on {where} does not offer TLS, but {_FIX_URL} asks for it (ssl=...); "
            "enable ssl on the server or drop the ssl option"
        )
    if _refused(err):
        return _outage(
            f"cannot connect to PostgreSQL on {where}: connection refused; start PostgreSQL there "
            f"or fix the host and port in {_FIX_URL}"
        )
    return _outage(
        f"cannot connect to PostgreSQL on {where}: {err.strerror or err}; check that it runs there "
        f"and {_FIX_URL}"
    )


def _refused(err: OSError) -> bool:
    if isinstance(err, ConnectionRefusedError):
        return True
    # asyncio, having tried every address of a host (::1 and 127.0.0.1 for localhost), raises one
    # OSError("Multiple exceptions: [Errno 111] ..., [Errno 111] ...") without an errno of its own.
    codes = {int(code) for code in _ERRNO.findall(str(err))}
    return codes == {errno.ECONNREFUSED}


def _refused_by_server(err: exc.DBAPIError, url: sa.URL, where: str) -> str | None:
    """What the server said when it turned the connection down, by SQLSTATE."""
    sqlstate = getattr(err.orig, "sqlstate", None)
    # SQLAlchemy wraps the driver's exception; its own text is the server's message.
    cause = err.orig.__cause__ if err.orig is not None else None
    said = str(cause or err.orig or err).strip().split("\n", 1)[0]  # its HINT line is asyncpg's advice
    user = url.username or getpass.getuser()
    if isinstance(cause, ValueError):
        # asyncpg's ClientConfigurationError (an InterfaceError and a ValueError): its settings, from
        # the URL or the PG* environment, are unusable, e.g. ssl=verify-full without a root certificate.
        return f"cannot connect to PostgreSQL on {where}: {said}; fix {_FIX_URL} or the PG* environment"
    if sqlstate == "3D000":  # invalid_catalog_name
        name = url.database or user
        return f'database "{name}" does not exist on {where}; create it (createdb {name}) or fix {_FIX_URL}'
    if sqlstate == "28P01":  # invalid_password
        return f'PostgreSQL on {where} refused the password of user "{user}"; fix the password in {_FIX_URL}'
    if sqlstate == "28000":  # invalid_authorization_specification: no such role, or pg_hba.conf
        if "does not exist" in said:
            return f'role "{user}" does not exist on {where}; create it (createuser {user}) or fix {_FIX_URL}'
        hint = " (the server may require TLS: add ?ssl=require)" if "no encryption" in said else ""
        return f"PostgreSQL on {where} refused the login: {said}{hint}; allow it in pg_hba.conf or fix {_FIX_URL}"
    return None


def _sqlite_problem(err: exc.DBAPIError | OSError, path: str) -> str | None:
    said = str(err.orig) if isinstance(err, exc.DBAPIError) else str(err)
    if "attempt to write a readonly database" in said:
        return f"SQLite database {path} is read-only; make it writable for this user or fix {_FIX_URL}"
    if "unable to open database file" not in said:
        return None
    problem = _sqlite_path_problem(path)
    if problem is not None:
        return problem
    parent = os.path.dirname(os.path.abspath(path))
    if not os.access(parent, os.W_OK):
        # The file opens, but SQLite also creates its -wal and -shm files beside it.
        return (
            f"cannot open SQLite database {path}: directory {parent} is not writable (SQLite keeps its "
            f"-wal and -shm files there); make it writable for this user or fix {_FIX_URL}"
        )
    return f"cannot open SQLite database {path}; check the path and its permissions, or fix {_FIX_URL}"


def _sqlite_path_problem(path: str) -> str | None:
    """Why the file at `path` cannot be opened (or created) read-write; None if it can."""
    opening = f"cannot open SQLite database {path}"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.exists(parent):
        return (
            f"{opening}: directory {parent} does not exist; create it (mkdir -p {parent}) or fix {_FIX_URL}"
        )
    if not os.path.isdir(parent):
        return f"{opening}: {parent} is not a directory; fix {_FIX_URL}"
    if os.path.isdir(path):
        return f"{opening}: it is a directory; give a file path in {_FIX_URL}"
    refusal = _open_refusal(path)
    if refusal is None:
        return None
    if refusal.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and not os.path.exists(path):
        return (
            f"{opening}: directory {parent} is not writable ({refusal.strerror}); make it writable "
            f"for this user or fix {_FIX_URL}"
        )
    return f"{opening}: {refusal.strerror}; fix its permissions or {_FIX_URL}"


def _open_refusal(path: str) -> OSError | None:
    """Open (or create) `path` read-write as SQLite would, to learn what the system refuses and why;
    a file this creates is removed again."""
    exists = os.path.exists(path)
    flags = os.O_RDWR if exists else os.O_RDWR | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as err:
        return err
    os.close(fd)
    if not exists:
        os.unlink(path)
    return None
