"""The real `jobwarden serve` as a subprocess of the bench, over a fresh database, never outliving it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import sys
import urllib.parse
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

PR_SET_PDEATHSIG = 1
LISTENING = re.compile(r"serving on (\S+:\d+)")
DASHBOARD = re.compile(r"dashboard on (\S+)")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
WRAPPED_SLOWDOWN = 20.0
"""How many times longer a server run under a wrapper (valgrind) may take to start and to stop."""

# Started through this launcher, the server gets SIGKILL from the kernel if the bench dies (even by
# SIGKILL), so an interrupted run never leaves a server behind. execv keeps the pid, so the pid we hold
# is the server's own and /proc/<pid>/stat is its CPU time. (Same trick as tests/support/proc.py; a
# preexec_fn would be unsafe in a process with grpc's threads.)
_LAUNCHER = (
    "import ctypes, os, sys; "
    f"ctypes.CDLL('libc.so.6').prctl({PR_SET_PDEATHSIG}, {int(signal.SIGKILL)}); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Server:
    """A started server: where it listens, and how much CPU it has used."""

    pid: int
    address: str
    log_path: Path
    dashboard: str = ""
    """The HTTP port's base URL (http://127.0.0.1:PORT/), when started with one."""

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process (all its threads), in seconds.

        Resolution is one clock tick (usually 10 ms), so scenarios run long enough for that to vanish.
        """
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        # The command name (field 2) may hold spaces and parentheses: count fields after the last ")".
        fields = stat[stat.rindex(")") + 2 :].split()
        utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
        return (utime + stime) / _CLOCK_TICKS


def jobwarden_command() -> list[str]:
    """The venv's console script, else the one on PATH."""
    script = Path(sys.executable).with_name("jobwarden")
    if script.exists():
        return [str(script)]
    found = shutil.which("jobwarden")
    if found is None:
        raise RuntimeError("the jobwarden command is not installed (run scripts/bench, which sets up .venv)")
    return [found]


@contextlib.asynccontextmanager
async def serving(
    database: str,
    workdir: Path,
    log_level: str,
    config: Path | None = None,
    *,
    dashboard: bool = False,
    wrapper: Sequence[str] = (),
) -> AsyncIterator[Server]:
    """`jobwarden serve` on 127.0.0.1 with a free port over `database` (and the TOML file `config`, if
    given; with `dashboard`, the HTTP port too, on another free port); stopped with SIGTERM at the end.
    `wrapper` runs the server under another command (valgrind), given more time to start and stop."""
    slowdown = WRAPPED_SLOWDOWN if wrapper else 1.0
    out_path, log_path = workdir / "server.out", workdir / "server.log"
    # Files, not pipes: the server logs a line per transition, and a pipe nobody reads would fill up
    # and stall it in the middle of a measurement.
    with out_path.open("wb") as out, log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _LAUNCHER,
            *wrapper,
            *jobwarden_command(),
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            database,
            "--log-level",
            log_level,
            *(["--config", str(config)] if config is not None else []),
            *(["--http-listen", "127.0.0.1:0"] if dashboard else []),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=log,
        )
    try:
        address, url = await _listening_address(
            proc, out_path, log_path, dashboard=dashboard, within_s=START_TIMEOUT_S * slowdown
        )
        yield Server(pid=proc.pid, address=address, log_path=log_path, dashboard=url)
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S * slowdown)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def _listening_address(
    proc: asyncio.subprocess.Process, out_path: Path, log_path: Path, *, dashboard: bool, within_s: float
) -> tuple[str, str]:
    """The gRPC address and (with `dashboard`) the dashboard's URL, from the lines serve prints."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while loop.time() < deadline:
        out = await asyncio.to_thread(out_path.read_text, errors="replace")
        match, http = LISTENING.search(out), DASHBOARD.search(out)
        if match is not None and (http is not None or not dashboard):
            return match.group(1), http.group(1) if http is not None else ""
        if proc.returncode is not None:
            break
        await asyncio.sleep(0.05)  # the file has no readiness to await; polling it is the simple way
    tail = (await asyncio.to_thread(log_path.read_text, errors="replace"))[-2000:]
    raise RuntimeError(f"jobwarden serve did not start (exit status {proc.returncode}):\n{tail}")


def _asyncpg_url(url: str) -> str:
    # Accept the SQLAlchemy spelling the server also accepts; asyncpg only knows the plain scheme.
    return url.replace("postgresql+asyncpg://", "postgresql://", 1).replace("postgres://", "postgresql://", 1)


def with_database(url: str, name: str) -> str:
    """`url` pointing at database `name` on the same server."""
    parts = urllib.parse.urlsplit(_asyncpg_url(url))
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


@contextlib.asynccontextmanager
async def throwaway_postgres(url: str) -> AsyncIterator[str]:
    """A new, empty database on the server `url` names, dropped (WITH FORCE) when the block ends."""
    name = f"jobwarden_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(_asyncpg_url(url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(url, name)
    finally:
        admin = await asyncpg.connect(_asyncpg_url(url))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def postgres_version(url: str) -> str:
    """The server's version string, for the report."""
    conn = await asyncpg.connect(_asyncpg_url(url))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()
