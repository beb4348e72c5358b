"""Timing: run an operation a fixed number of times (after a warm-up) and keep what it cost."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Self

# One call of an operation; given its index, returns how many units (jobs, calls) it did.
Op = Callable[[int], Awaitable[int]]


@dataclass(slots=True)
class Measurement:
    """One row of the report."""

    key: str
    name: str
    units: int  # what ops/s counts: calls, jobs or messages
    seconds: float  # wall time of the measured part
    latencies: list[float]  # seconds per call (a call may do several units); empty when not measured
    concurrency: int = 1
    one_call: bool = True  # each unit is one RPC (so its latency compares with one empty round trip)
    server_cpu_s: float | None = None
    client_cpu_s: float | None = None
    baseline: bool = False
    note: str = ""
    ratios: dict[str, float] = field(default_factory=dict)
    ratio_text: list[str] = field(default_factory=list)

    @property
    def ops_per_s(self) -> float:
        """Units per second of wall time."""
        return self.units / self.seconds if self.seconds > 0 else math.nan

    @property
    def seconds_per_op(self) -> float:
        """Mean wall time per unit; under concurrency, the inverse of throughput."""
        return self.seconds / self.units if self.units else math.nan

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile of the call latencies, in seconds."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    @property
    def p50(self) -> float | None:
        """Median call latency, seconds."""
        return self.percentile(0.50)

    @property
    def p99(self) -> float | None:
        """99th percentile call latency, seconds."""
        return self.percentile(0.99)

    @property
    def server_cpu_per_op(self) -> float | None:
        """Server CPU seconds per unit."""
        return self.server_cpu_s / self.units if self.server_cpu_s is not None and self.units else None

    @property
    def client_cpu_per_op(self) -> float | None:
        """Load-generator CPU seconds per unit."""
        return self.client_cpu_s / self.units if self.client_cpu_s is not None and self.units else None


class CpuMeter:
    """Server and load-generator CPU over a span; `server` reads the server's /proc entry (or None)."""

    def __init__(self, server: Callable[[], float] | None) -> None:
        self._server = server
        self._start = (0.0, 0.0)
        self.server_s: float | None = None
        self.client_s = 0.0

    def __enter__(self) -> Self:
        self._start = (self._server() if self._server else 0.0, time.process_time())
        return self

    def __exit__(self, *_exc: object) -> None:
        # process_time covers every thread of this process, grpc's polling threads included.
        self.client_s = time.process_time() - self._start[1]
        self.server_s = self._server() - self._start[0] if self._server else None


async def _drive(op: Op, indices: Iterator[int], concurrency: int, latencies: list[float] | None) -> int:
    units = 0

    async def lane() -> None:
        nonlocal units
        # Lanes share one iterator: each index is taken once, and a fast lane simply takes more.
        for i in indices:
            start = time.perf_counter()
            done = await op(i)  # not `units += await ...`: that reads units before the await, losing counts
            units += done
            if latencies is not None:
                latencies.append(time.perf_counter() - start)

    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return units


async def run_ops(
    key: str,
    name: str,
    op: Op,
    *,
    calls: int,
    warmup: int,
    concurrency: int = 1,
    server_cpu: Callable[[], float] | None = None,
) -> Measurement:
    """Call `op` `warmup` times unmeasured, then `calls` times measured, `concurrency` at a time.

    Warm-up indices come after the measured ones (calls .. calls+warmup-1), so an op that indexes
    prepared state has calls+warmup items to draw from.
    """
    await _drive(op, iter(range(calls, calls + warmup)), concurrency, None)
    latencies: list[float] = []
    with CpuMeter(server_cpu) as cpu:
        start = time.perf_counter()
        units = await _drive(op, iter(range(calls)), concurrency, latencies)
        seconds = time.perf_counter() - start
    return Measurement(
        key=key,
        name=name,
        units=units,
        seconds=seconds,
        latencies=latencies,
        concurrency=concurrency,
        server_cpu_s=cpu.server_s,
        client_cpu_s=cpu.client_s,
    )
