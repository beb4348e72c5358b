"""CPU seconds read from /proc: a process tree, and the PostgreSQL backends serving one database.

Only the standard library: every system's venv imports this.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY_S = 0.2


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and of its children it has waited for), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after the last ")".
    fields = text[text.rindex(")") + 2 :].split()
    # utime, stime, cutime, cstime: fields 14-17 of proc(5). Waited-for children count, so a worker
    # runtime's own helper processes that have exited are not lost.
    ticks = sum(int(f) for f in fields[11:15])
    return int(fields[1]), ticks / _TICKS


def _pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def process_seconds(pid: int) -> float:
    """CPU seconds of one process (0.0 once it is gone)."""
    stat = _stat(pid)
    return stat[1] if stat else 0.0


def tree_seconds(roots: Iterable[int]) -> float:
    """CPU seconds of the given processes and all their live descendants."""
    parents: dict[int, list[int]] = {}
    seconds: dict[int, float] = {}
    for pid in _pids():
        stat = _stat(pid)
        if stat is not None:
            parents.setdefault(stat[0], []).append(pid)
            seconds[pid] = stat[1]
    total, todo, seen = 0.0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        total += seconds.get(pid, 0.0)
        todo.extend(parents.get(pid, []))
    return total


class PostgresBackends:
    """CPU of the backend processes serving database `name`, sampled in a thread over a span.

    A backend's process title is "postgres: <cluster>: <user> <database> <host>(<port>) <state>", so the
    database name picks out this system's backends even while other databases on the same server are
    busy. Backends that exit between two samples lose at most SAMPLE_EVERY_S of their CPU. The shared
    background processes (WAL writer, checkpointer) serve every database and are not attributed.
    """

    def __init__(self, name: str, exclude: Iterable[int] = ()) -> None:
        self._needle = f" {name} ".encode()
        self._exclude = set(exclude)  # the bench's own polling connection
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def _sample(self) -> None:
        for pid in _pids():
            if pid in self._exclude:
                continue
            try:
                title = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if not title.startswith(b"postgres:") or self._needle not in title:
                continue
            stat = _stat(pid)
            if stat is not None:
                self._first.setdefault(pid, stat[1] if self._thread.ident is None else 0.0)
                self._last[pid] = stat[1]

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self._sample()

    def start(self) -> None:
        """Take the baseline (backends alive now count from here; later ones from their start)."""
        self._sample()
        self._thread.start()

    def stop(self) -> float:
        """CPU seconds used by the database's backends since start()."""
        self._stop.set()
        self._thread.join()
        self._sample()
        return sum(self._last[pid] - self._first[pid] for pid in self._last)
