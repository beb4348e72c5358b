"""Run the real `jobwarden` command as a subprocess, bound to 127.0.0.1, never outliving the tests."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1
LISTENING = re.compile(r"serving on (\S+:\d+)")


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


@contextlib.contextmanager
def serving(
    database: Path | str,
    *extra: str,
    env: dict[str, str] | None = None,
    command: Sequence[str] | None = None,
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`jobwarden serve` on 127.0.0.1 with a free port; yields the process and its address.

    `command` replaces `jobwarden` (e.g. an interpreter running the CLI under special conditions).
    """
    jobwarden = command or jobwarden_command()
    proc = subprocess.Popen(
        _tied_to_us([*jobwarden, "serve", "--listen", "127.0.0.1:0", "--database", str(database), *extra]),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
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
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
