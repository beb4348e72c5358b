"""The peers' venvs: created once under a cache folder with pip, reused while their pins are unchanged."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.peers.systems import VENVS

STAMP = ".bench-pins"
PIP_TIMEOUT_S = 600.0


def default_cache(root: Path) -> Path:
    """$JOBWARDEN_BENCH_VENVS, else .bench-venvs/ in the repository (git-ignored)."""
    return Path(os.environ.get("JOBWARDEN_BENCH_VENVS") or root / ".bench-venvs")


def _pins_text(name: str) -> str:
    # The interpreter is part of the pins: a venv made by another Python is made again.
    return "\n".join([f"python {platform.python_version()}", *VENVS[name]]) + "\n"


def _ensure_one(cache: Path, name: str) -> Path:
    where = cache / f"{name}-{hashlib.sha256(_pins_text(name).encode()).hexdigest()[:10]}"
    python = where / "bin" / "python"
    stamp = where / STAMP
    if stamp.exists() and stamp.read_text() == _pins_text(name) and python.exists():
        return python
    shutil.rmtree(where, ignore_errors=True)
    # The base interpreter, not this venv's: a venv made from inside a venv still links to the base.
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=PIP_TIMEOUT_S)
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *VENVS[name]],
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(where, ignore_errors=True)
        raise RuntimeError(
            f"pip could not make the {name} venv ({' '.join(VENVS[name])}):\n{done.stderr[-3000:]}"
        )
    stamp.write_text(_pins_text(name))  # written last: a half-made venv is never taken for a ready one
    return python


def ensure(cache: Path, names: Iterable[str]) -> dict[str, Path]:
    """The python of each named venv, creating the missing ones in parallel (pip mostly waits on the
    network, so this is quicker than one after the other even on 2 cores)."""
    wanted = sorted(set(names))
    cache.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, len(wanted))) as pool:
        pythons = list(pool.map(lambda n: _ensure_one(cache, n), wanted))
    return dict(zip(wanted, pythons, strict=True))
