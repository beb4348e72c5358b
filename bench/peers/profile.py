"""Reads py-spy's collapsed stacks ("frame;frame;... count" per line, recorded with --native) into where
the server's CPU went.

py-spy samples every thread, and with --native it does not tell a thread waiting (in epoll, on a
condition variable, for the GIL) from one running: samples whose innermost frames are such a wait are
counted apart, and the shares are of the rest.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<where>[^()]*)\)$")
WAITS = frozenset(
    {
        "epoll_wait",
        "pthread_cond_timedwait",
        "pthread_cond_wait",
        "PyThread_acquire_lock_timed",  # the GIL, or a threading lock
        "sem_wait",
        "sem_timedwait",
        "poll",
        "select",
        "clock_nanosleep",
        "nanosleep",
    }
)
# A frame's library, by where py-spy says it is (a module path, or a shared object for native frames).
# The innermost frame with a library decides a sample's; interpreter and libc frames have none.
LIBRARIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging", ("logging/",)),
    ("json", ("json/", "_json")),
    ("protobuf", ("google/", "_upb", "_message")),
    ("grpc (incl. its C core)", ("grpc/", "cygrpc", "grpc_")),
    ("SQLAlchemy", ("sqlalchemy/",)),
    ("aiosqlite", ("aiosqlite/",)),
    ("SQLite (C library and sqlite3 module)", ("sqlite3/", "_sqlite3", "libsqlite3")),
    ("asyncpg", ("asyncpg/",)),
    ("asyncio", ("asyncio/", "_asyncio")),
    ("threads and queues", ("threading.py", "queue.py", "_queuemodule", "concurrent/")),
    ("jobwarden server", ("jobwarden_server/",)),
    ("socket/selectors", ("selectors.py", "socket", "selectmodule")),
)
# Whole subtrees worth naming: the share of (non-waiting) samples with such a frame anywhere on the stack.
MARKERS: tuple[tuple[str, str], ...] = (
    ("SQLAlchemy statement compile", "sqlalchemy/sql/compiler.py"),
    ("SQLAlchemy execute (engine)", "sqlalchemy/engine/"),
    ("aiosqlite's thread (SQLite work and its hand-offs)", "aiosqlite/core.py"),
    ("logging", "logging/"),
    ("json", "json/"),
    ("jobwarden api layer", "jobwarden_server/api/"),
    ("jobwarden service layer", "jobwarden_server/service/"),
    ("jobwarden store layer", "jobwarden_server/store/"),
    ("jobwarden events", "jobwarden_server/events/"),
    ("garbage collection", "gc_collect"),
)


def _split(frame: str) -> tuple[str, str]:
    match = _FRAME.match(frame)
    return (match["func"], match["where"]) if match else (frame, "")


def _library(frame: str) -> str | None:
    _, where = _split(frame)
    for name, needles in LIBRARIES:
        if any(n in where for n in needles):
            return name
    return None


def summarise(collapsed: str) -> dict[str, Any]:
    """Self time by library (innermost frame with one) and inclusive shares of a few subtrees, in % of
    the samples that were not waiting."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = waiting = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if any(_split(f)[0] in WAITS for f in frames[-3:]):
            waiting += count
            continue
        total += count
        library = next((lib for f in reversed(frames) if (lib := _library(f))), "interpreter, other")
        own[library] += count
        for name, needle in MARKERS:
            if any(needle in f for f in frames):
                inclusive[name] += count
    if not total:
        return {
            "samples": 0,
            "waiting_samples": waiting,
            "self_percent": {},
            "inclusive_percent": {},
            "text": [],
        }
    self_pct = {k: round(100 * v / total, 1) for k, v in own.most_common()}
    incl_pct = {k: round(100 * inclusive[k] / total, 1) for k, _ in MARKERS}
    text = [f"{total} running samples ({waiting} waiting ones left out); self time by library:"]
    text += [f"  {v:5.1f}%  {k}" for k, v in self_pct.items()]
    text += ["inclusive (a frame anywhere on the stack):"]
    text += [f"  {v:5.1f}%  {k}" for k, v in incl_pct.items()]
    return {
        "samples": total,
        "waiting_samples": waiting,
        "self_percent": self_pct,
        "inclusive_percent": incl_pct,
        "text": text,
    }
