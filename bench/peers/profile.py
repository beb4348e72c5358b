"""Reads py-spy's collapsed stacks ("frame;frame;... count" per line) into where the server's CPU went."""

from __future__ import annotations

from collections import Counter
from typing import Any

# The innermost frame that matches decides a sample's library (first match in this order wins for
# that frame). Paths as py-spy prints them: "function (path/to/module.py:line)".
LIBRARIES: tuple[tuple[str, str], ...] = (
    ("logging", "/logging/"),
    ("json", "/json/"),
    ("protobuf", "/google/protobuf/"),
    ("grpc", "/grpc/"),
    ("sqlalchemy", "/sqlalchemy/"),
    ("aiosqlite", "/aiosqlite/"),
    ("sqlite3 (stdlib wrapper)", "/sqlite3/"),
    ("asyncpg", "/asyncpg/"),
    ("asyncio", "/asyncio/"),
    ("threading/queue", "/threading.py"),
    ("threading/queue", "/queue.py"),
    ("jobwarden server", "jobwarden_server/"),
)
# Whole subtrees worth naming: the share of samples with such a frame anywhere on the stack.
MARKERS: tuple[tuple[str, str], ...] = (
    ("SQLAlchemy statement compile", "sqlalchemy/sql/compiler.py"),
    ("SQLAlchemy ORM/Core execute", "sqlalchemy/engine/"),
    ("aiosqlite worker thread", "aiosqlite/core.py"),
    ("logging", "/logging/"),
    ("json", "/json/"),
    ("jobwarden api layer", "jobwarden_server/api/"),
    ("jobwarden service layer", "jobwarden_server/service/"),
    ("jobwarden store layer", "jobwarden_server/store/"),
    ("jobwarden events", "jobwarden_server/events/"),
)


def _library(frame: str) -> str | None:
    for name, needle in LIBRARIES:
        if needle in frame:
            return name
    return None


def summarise(collapsed: str) -> dict[str, Any]:
    """Self time by library (innermost known frame) and inclusive shares of a few subtrees, in %."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        library = next((lib for f in reversed(frames) if (lib := _library(f))), "other (interpreter, C)")
        own[library] += count
        for name, needle in MARKERS:
            if any(needle in f for f in frames):
                inclusive[name] += count
    if not total:
        return {"samples": 0, "self_percent": {}, "inclusive_percent": {}, "text": ["no samples"]}
    self_pct = {k: round(100 * v / total, 1) for k, v in own.most_common()}
    incl_pct = {k: round(100 * inclusive[k] / total, 1) for k, _ in MARKERS}
    text = [f"{total} samples; self time by library (innermost known frame):"]
    text += [f"  {v:5.1f}%  {k}" for k, v in self_pct.items()]
    text += ["inclusive (a frame anywhere on the stack):"]
    text += [f"  {v:5.1f}%  {k}" for k, v in incl_pct.items()]
    return {"samples": total, "self_percent": self_pct, "inclusive_percent": incl_pct, "text": text}
