"""Debian packages a test needs, installed with apt-get when missing (CI runs as root on a machine that
may be fresh). One install at a time: pytest-xdist's processes would otherwise race for dpkg's lock."""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from pathlib import Path

_LOCK = Path(tempfile.gettempdir()) / "jobwarden-tests-apt.lock"


def ensure(package: str, path: Path) -> None:
    """Install `package` unless `path` (a file it provides) already exists."""
    if path.exists():
        return
    with _LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():  # another test process installed it while this one waited
            return
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-q", package], check=True, env=env, capture_output=True)
