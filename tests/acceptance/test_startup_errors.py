"""A database that cannot be opened stops `jobwarden serve` and `jobwarden migrate` with one line on
stderr naming the problem and what to do, and exit status 2: never a traceback.

Missing database and role: the real PostgreSQL (tests marked `postgres`). Nothing listening: a closed
port on 127.0.0.1. A wrong password and TLS: support.fake_pg, since the test server trusts every login
and has TLS off. SQLite: a missing directory, and /sys, where nobody (not even root) may create files.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

import pytest
import sqlalchemy as sa
from support import certs, fake_pg, pg, proc

COMMANDS = ["serve", "migrate"]


def _one_line_failure(command: str, database: str, env: dict[str, str] | None = None) -> str:
    """Run the command on `database`; it must fail with status 2 and one stderr line, which is returned."""
    args = [command, "--database", database]
    if command == "serve":
        args += ["--listen", "127.0.0.1:0"]
    result = proc.run(args, env=env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert result.stdout == ""
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _where() -> str:
    url = sa.make_url(pg.server_url())
    return f"{url.host}:{url.port or 5432}"


@pytest.mark.postgres
@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_database(command: str) -> None:
    name = f"jobwarden_missing_{secrets.token_hex(4)}"
    line = _one_line_failure(command, pg.with_database(pg.server_url(), name))
    assert line == (
        f'error: database "{name}" does not exist on {_where()}; create it (createdb {name}) '
        "or fix the database URL (--database)"
    )


@pytest.mark.postgres
@pytest.mark.parametrize("command", COMMANDS)
def test_a_missing_role(command: str) -> None:
    role = f"jobwarden_nobody_{secrets.token_hex(4)}"
    url = sa.make_url(pg.server_url()).set(username=role).render_as_string(hide_password=False)
    line = _one_line_failure(command, url)
    assert line == (
        f'error: role "{role}" does not exist on {_where()}; create it (createuser {role}) '
        "or fix the database URL (--database)"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_nothing_listening_on_the_port(command: str) -> None:
    port = _closed_port()
    line = _one_line_failure(command, f"postgresql://jw@127.0.0.1:{port}/jobs")
    assert line == (
        f"error: cannot connect to PostgreSQL on 127.0.0.1:{port}: connection refused; start PostgreSQL "
        "there or fix the host and port in the database URL (--database)"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_a_wrong_password(command: str) -> None:
    with fake_pg.running() as server:
        line = _one_line_failure(command, f"postgresql://jw:wrong@127.0.0.1:{server.port}/jobs")
    assert line == (
        f'error: PostgreSQL on 127.0.0.1:{server.port} refused the password of user "jw"; '
        "fix the password in the database URL (--database)"
    )


@pytest.mark.parametrize("option", ["sslmode=require", "ssl=require"])
def test_tls_required_by_the_url_but_not_offered_by_the_server(option: str) -> None:
    # libpq's sslmode is taken as asyncpg's ssl (asyncpg itself would fail on it with a TypeError).
    with fake_pg.running() as server:
        line = _one_line_failure("migrate", f"postgresql://jw:pw@127.0.0.1:{server.port}/jobs?{option}")
    assert line == (
        f"error: PostgreSQL on 127.0.0.1:{server.port} does not offer TLS, but the database URL "
        "(--database) asks for it (ssl=...); enable ssl on the server or drop the ssl option"
    )


def test_a_server_certificate_the_client_does_not_trust(tmp_path: Path) -> None:
    server_pair = certs.Authority.create(tmp_path, "server").server()
    trusted = certs.Authority.create(tmp_path, "other")
    with fake_pg.running(certificate=server_pair) as server:
        line = _one_line_failure(
            "serve",
            f"postgresql://jw:pw@127.0.0.1:{server.port}/jobs?sslmode=verify-full",
            env={"PGSSLROOTCERT": str(trusted.cert)},
        )
    assert line.startswith(f"error: TLS connection to PostgreSQL on 127.0.0.1:{server.port} failed (")
    assert "certificate" in line and line.endswith("the ssl option of the database URL (--database)")


@pytest.mark.parametrize("command", COMMANDS)
def test_a_sqlite_file_in_a_missing_directory(tmp_path: Path, command: str) -> None:
    directory = tmp_path / "no" / "such"
    line = _one_line_failure(command, str(directory / "jw.db"))
    assert line == (
        f"error: cannot open SQLite database {directory / 'jw.db'}: directory {directory} does not exist; "
        f"create it (mkdir -p {directory}) or fix the database URL (--database)"
    )
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_a_sqlite_file_in_an_unwritable_directory(command: str) -> None:
    line = _one_line_failure(command, "/sys/jobwarden-test.db")
    assert line == (
        "error: cannot open SQLite database /sys/jobwarden-test.db: directory /sys is not writable "
        "(Permission denied); make it writable for this user or fix the database URL (--database)"
    )
