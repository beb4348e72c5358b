"""scripts/_venv.sh sets .venv up under a lock: two scripts started at once (scripts/serve and
scripts/test) create and install it once, one after the other, never both into one .venv at once.

The real _venv.sh runs (bash, flock, sha256sum) in a copy of the repository's layout; only the
interpreter is a stand-in, a shell script that records what it was asked to do and whether the
setup lock was held meanwhile, so the test takes milliseconds instead of two real installs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]

_FAKE_PYTHON = """#!/usr/bin/env bash
# Stands in for python3.11 and, copied into .venv/bin, for the venv's python.
set -euo pipefail
# Was the setup lock held while we ran? A shared probe fails only against the setup's exclusive lock
# (probes of other stand-ins running at the same moment do not count).
if flock -n -s "$FAKE_ROOT/.venv.lock" true; then held=unlocked; else held=locked; fi
case "$1 $2" in
    "-m venv") mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; echo "venv $held" >>"$FAKE_LOG" ;;
    "-m pip") echo "pip $held" >>"$FAKE_LOG" ;;
    *) ;;
esac
"""


def _setups_at_once(root: Path, n: int) -> list[str]:
    fake = root / "fake-python"
    fake.write_text(_FAKE_PYTHON)
    fake.chmod(0o755)
    log = root / "calls.log"
    env = {**os.environ, "PYTHON": str(fake), "FAKE_ROOT": str(root), "FAKE_LOG": str(log)}
    setups = [
        subprocess.Popen(
            [
                "bash",
                "-c",
                'source scripts/_venv.sh && test "$(command -v python)" = "$PWD/.venv/bin/python"',
            ],
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        for _ in range(n)
    ]
    assert [setup.wait(timeout=30) for setup in setups] == [0] * n
    return log.read_text().splitlines()


def test_setups_started_together_install_once_under_the_lock(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO / "scripts" / "_venv.sh", tmp_path / "scripts" / "_venv.sh")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    calls = _setups_at_once(tmp_path, 4)
    # One venv, one install (upgrade pip, install the project): the others waited, then found it done.
    assert calls == ["venv locked", "pip locked", "pip locked"]
    assert any(path.name.startswith(".installed-") for path in (tmp_path / ".venv").iterdir())
    # Set up: later runs take no lock and install nothing.
    assert _setups_at_once(tmp_path, 1) == calls
