"""The Celery app its workers run: `celery -A bench.peers.celery_app worker`.

Broker and result backend are the bench's Redis database; a result backend is what `update_state`
(the +progress variant) writes to, and where the bench sees a task finished.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
app = Celery("bench", broker=_URL, backend=_URL)


@app.task(name="bench.noop")
def noop() -> None:
    """The job: nothing."""


@app.task(name="bench.progress", bind=True)
def progress(self: Any) -> None:
    """The job, reporting progress once on the way."""
    self.update_state(state="PROGRESS", meta={"percent": 50, "message": "halfway"})
