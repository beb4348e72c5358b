"""Run the real `jobwarden` command as a subprocess, bound to 127.0.0.1, never outliving the tests."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

PR_SET_PDEATHSIG = 1
LISTENING = re.compile(r"serving on (\S+:\d+)")
DASHBOARD = re.compile(r"dashboard on (\S+)")


def dashboard_url(process: subprocess.Popen[str]) -> str:
    """The dashboard's address, which `jobwarden serve --http-listen` prints after "serving on"."""
    assert process.stdout is not None
    line = process.stdout.readline()
    match = DASHBOARD.search(line)
    assert match is not None, f"no dashboard line: {line!r}"
    return match.group(1)


def jobwarden_command() -> list[str]:
    """The installed console script (falls back to the module in the current interpreter)."""
    script = Path(sys.executable).with_name("jobwarden")
    if script.exists():
        return [str(script)]
    found = shutil.which("jobwarden")
    return [found] if found else [sys.executable, "-m", "jobwarden.cli.main"]


# Started through this tiny launcher, the server gets SIGKILL from the kernel if the test process dies
# (even by SIGKILL), so no server outlives its test. The setting survives exec; a preexec_fn would
# do the same but is unsafe in a process with threads (grpc has some).
_LAUNCHER = (
    "import ctypes, os, sys; "
    f"ctypes.CDLL('libc.so.6').prctl({PR_SET_PDEATHSIG}, {int(signal.SIGKILL)}); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def _tied_to_us(command: Sequence[str]) -> list[str]:
    return [sys.executable, "-c", _LAUNCHER, *command]


def run(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 30,
    command: Sequence[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `jobwarden args...` to completion (`command` instead of `jobwarden`, when given)."""
    return subprocess.run(
        [*(command or jobwarden_command()), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        check=False,
    )


def spawn(
    command: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    stdout: int | IO[str] = subprocess.PIPE,
    stderr: int | IO[str] = subprocess.PIPE,
    stdin: int = subprocess.DEVNULL,
) -> subprocess.Popen[str]:
    """Start `command` (any program) tied to the test process: it is killed if the tests die.

    `env` is added to this process's environment, or with `inherit_env=False` is the whole of it.
    """
    return subprocess.Popen(
        _tied_to_us(command),
        stdout=stdout,
        stderr=stderr,
        stdin=stdin,
        text=True,
        cwd=cwd,
        env={**(os.environ if inherit_env else {}), **(env or {})},
    )


def stop(process: subprocess.Popen[str], sig: signal.Signals = signal.SIGTERM) -> int:
    """Send `sig` (unless it already exited) and wait for the exit status; SIGKILL after 15 s."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    return process.returncode


@contextlib.contextmanager
def serving(
    database: Path | str | None,
    *extra: str,
    env: dict[str, str] | None = None,
    serve: Sequence[str] | None = None,
    cwd: Path | str | None = None,
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`jobwarden serve` on 127.0.0.1 with a free port; yields the process and its address.

    `serve` replaces the command that runs the server (default `jobwarden serve`; e.g. `scripts/serve`);
    `--listen 127.0.0.1:0` and `--database` (unless None: then the config file's, or the default) follow
    it, then `extra`.
    """
    command = list(serve) if serve is not None else [*jobwarden_command(), "serve"]
    command += ["--listen", "127.0.0.1:0"]
    if database is not None:
        command += ["--database", str(database)]
    proc = spawn([*command, *extra], cwd=cwd, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the server says where it listens, or exits
        match = LISTENING.search(line)
        if match is None:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"server did not start: {line!r} {err[-2000:]}")
        yield proc, match.group(1)
    finally:
        stop(proc)
