"""A cap on long-lived calls (watch streams, long polls) per owner.

Each holds server memory and a slot of the event loop for minutes; without a cap one owner could open
enough of them to starve everyone else (the HTTP/2 rapid-reset lesson: bound what a peer can hold).
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator

from jobwarden_server.domain.errors import ResourceExhausted


class StreamSlots:
    """At most `per_owner` long-lived calls open at once for each owner."""

    def __init__(self, per_owner: int) -> None:
        self._per_owner = per_owner
        self._open: collections.Counter[str] = collections.Counter()

    @contextlib.contextmanager
    def hold(self, owner: str) -> Iterator[None]:
        """Take a slot for the `with` block; ResourceExhausted if the owner has none left."""
        if self._open[owner] >= self._per_owner:
            raise ResourceExhausted(
                f"too many open watch streams and long polls for this owner (limit {self._per_owner}); "
                "close some or retry later",
                metadata={"limit": str(self._per_owner)},
            )
        self._open[owner] += 1
        try:
            yield
        finally:
            self._open[owner] -= 1
            if not self._open[owner]:
                del self._open[owner]
