"""README.md as tests see it: its fenced code blocks, and a terminal to type its shell commands into."""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from support import proc

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

_BASH = shutil.which("bash") or "/bin/bash"  # a path: the launcher execs it without searching PATH
_FENCE = re.compile(r"^```(\S*)\s*$")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block: `id` is `<section>-<n>-<language>` (n counts the blocks of its section)."""

    id: str
    language: str
    text: str
    line: int
    """Where the block's first line is in README.md (1-based)."""

    @property
    def commands(self) -> list[str]:
        """The commands of a shell block: comment lines dropped, backslash continuations joined."""
        commands: list[str] = []
        pending = ""
        for raw in self.text.splitlines():
            line = pending + raw
            if line.rstrip().endswith("\\"):
                pending = line.rstrip()[:-1] + " "
                continue
            pending = ""
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(line.strip())
        return commands

    def argv(self, command: str) -> list[str]:
        """A command as the shell splits it, its trailing comment dropped."""
        return shlex.split(command, comments=True)


def _slug(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lstrip("#").strip().lower()).strip("-")


def blocks(path: Path = README) -> list[Block]:
    """Every fenced code block of the file, in order."""
    found: list[Block] = []
    per_section: dict[str, int] = {}
    section = "top"
    language: str | None = None
    body: list[str] = []
    start = 0
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fence = _FENCE.match(line)
        if language is None:
            if fence:
                language, body, start = fence.group(1), [], number + 1
            elif line.startswith("#"):
                section = _slug(line)
            continue
        if line.startswith("```"):
            per_section[section] = per_section.get(section, 0) + 1
            name = f"{section}-{per_section[section]}-{language or 'text'}"
            found.append(Block(id=name, language=language, text="\n".join(body) + "\n", line=start))
            language = None
        else:
            body.append(line)
    if language is not None:
        raise ValueError(f"{path}: the code block at line {start - 1} is never closed")
    return found


class Shell:
    """A terminal the README tells the reader to open: bash in `cwd`, where what `source` set up stays
    in force for the commands typed after it (each command runs in a fresh bash that re-sources it)."""

    def __init__(self, cwd: Path, env: Mapping[str, str]) -> None:
        self.cwd = cwd
        # The developer's own JOBWARDEN_* settings must not leak into what the README promises.
        clean = {k: v for k, v in os.environ.items() if not k.startswith("JOBWARDEN_")}
        # `jobwarden` is the one installed next to this interpreter, as after `source .venv/bin/activate`.
        clean["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), clean.get("PATH", "")])
        self.env = {**clean, **env}
        self._sourced: list[str] = []

    def _script(self, command: str, *, exec_: bool = False) -> str:
        return "\n".join(["set -eo pipefail", *self._sourced, f"exec {command}" if exec_ else command])

    def run(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Types `command` and waits for it; a `source` line must succeed, and stays in force."""
        result = subprocess.run(
            ["bash", "-c", self._script(command)],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if command.startswith("source "):
            assert result.returncode == 0, (command, result.stderr)
            self._sourced.append(command)
        return result

    def start(self, command: str, stdout: IO[str], stderr: IO[str]) -> subprocess.Popen[str]:
        """Types a command that keeps running (bash execs it, so a signal reaches it directly)."""
        return proc.spawn(
            [_BASH, "-c", self._script(command, exec_=True)],
            cwd=self.cwd,
            env=self.env,
            inherit_env=False,
            stdout=stdout,
            stderr=stderr,
        )
