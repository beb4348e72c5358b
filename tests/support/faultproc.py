"""Real processes the fault tests can hurt: a `jobwarden serve` that is SIGKILLed and restarted on the
same port and database, and SDK worker processes (worker_proc.py) that are killed or frozen.

Every process is started through `proc`'s launcher, so the kernel kills it if the test process dies;
each one's output goes to a file in the test's directory (a pipe nobody reads would fill up and block
it), and the tests bound every wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import grpc
import grpc.aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from jobwarden.v1 import job_service_pb2_grpc, worker_service_pb2_grpc
from support import proc
from support.rpc import Stubs

WORKER_SCRIPT = Path(__file__).with_name("worker_proc.py")
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0


# A client of a server that restarts should find it again quickly: gRPC's default reconnect backoff
# starts at 1 s and grows to 120 s, which would measure the backoff rather than the server.
RECONNECT_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
)


@contextlib.asynccontextmanager
async def stubs(address: str, token: str | None = None) -> AsyncIterator[Stubs]:
    """Like rpc.stubs, on a channel that reconnects fast after a server restart."""
    async with grpc.aio.insecure_channel(address, options=RECONNECT_OPTIONS) as channel:
        yield Stubs(
            channel=channel,
            jobs=job_service_pb2_grpc.JobServiceStub(channel),
            workers=worker_service_pb2_grpc.WorkerServiceStub(channel),
            metadata=(("authorization", f"Bearer {token}"),) if token else (),
        )


@contextlib.asynccontextmanager
async def connections(address: str, n: int, token: str | None = None) -> AsyncIterator[list[Stubs]]:
    """`n` separate connections (a race between connections is a race between clients)."""
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(stubs(address, token)) for _ in range(n)]


async def healthy(channel: grpc.aio.Channel, within_s: float = 5.0) -> bool:
    """Whether the server answers its health check with SERVING."""
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=within_s
        )
    except grpc.aio.AioRpcError:
        return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def free_port() -> int:
    """A port on 127.0.0.1 that nobody listens on now (chosen once; a restart reuses it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Sequence):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def write_config(
    path: Path,
    *,
    settings: Mapping[str, Any],
    retry: Mapping[str, Any] | None = None,
    tokens: Sequence[Mapping[str, Any]] = (),
) -> Path:
    """A server config file: top-level settings, a [retry] table and [[tokens]] entries."""
    lines = [f"{key} = {_toml_value(value)}" for key, value in settings.items()]
    if retry:
        lines += ["", "[retry]", *(f"{key} = {_toml_value(value)}" for key, value in retry.items())]
    for token in tokens:
        lines += ["", "[[tokens]]", *(f"{key} = {_toml_value(value)}" for key, value in token.items())]
    path.write_text("\n".join(lines) + "\n")
    return path


def _spawn(command: Sequence[str], log: Path, *, stdout_pipe: bool) -> subprocess.Popen[str]:
    with open(log, "a", encoding="utf-8") as err:
        return subprocess.Popen(
            proc._tied_to_us(command),
            stdout=subprocess.PIPE if stdout_pipe else err,
            stderr=err,
            stdin=subprocess.DEVNULL,
            text=True,
        )


def _reap(p: subprocess.Popen[str], sig: signal.Signals, timeout: float) -> int:
    """Send `sig` (unless it already exited) and wait; SIGKILL if it outlives `timeout`."""
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=STOP_TIMEOUT_S)
    if p.stdout is not None:
        p.stdout.close()
    return p.returncode


class ServerProcess:
    """`jobwarden serve --config ... --database ... --listen 127.0.0.1:<port>`, restartable in place.

    The database is a SQLite file in `workdir` unless `database` names another file or a PostgreSQL URL.
    """

    def __init__(
        self,
        workdir: Path,
        config: Path,
        *,
        port: int | None = None,
        name: str = "server",
        database: str | None = None,
    ) -> None:
        self.workdir = workdir
        self.database = database or str(workdir / f"{name}.db")
        self.config = config
        self.port = port or free_port()
        self.name = name
        self.process: subprocess.Popen[str] | None = None
        self.starts = 0
        self.kills = 0
        self.start_seconds: list[float] = []

    @property
    def address(self) -> str:
        """host:port to dial; the same across restarts."""
        return f"127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        """Whether the current incarnation is running."""
        return self.process is not None and self.process.poll() is None

    def log_path(self, incarnation: int) -> Path:
        """Where incarnation n (1-based) writes its log."""
        return self.workdir / f"{self.name}-{incarnation}.log"

    async def start(self) -> float:
        """Start an incarnation and wait (bounded) until it says it serves; returns how long it took."""
        assert not self.alive, "the previous incarnation is still running"
        self.starts += 1
        began = time.monotonic()
        command = [
            *proc.jobwarden_command(),
            "serve",
            "--config",
            str(self.config),
            "--database",
            str(self.database),
            "--listen",
            self.address,
            "--log-level",
            "WARNING",
        ]
        p = _spawn(command, self.log_path(self.starts), stdout_pipe=True)
        self.process = p
        assert p.stdout is not None
        try:
            line = await asyncio.wait_for(asyncio.to_thread(p.stdout.readline), START_TIMEOUT_S)
        except TimeoutError:
            line = ""
        if proc.LISTENING.search(line) is None:
            _reap(p, signal.SIGKILL, STOP_TIMEOUT_S)
            tail = self.log_path(self.starts).read_text()[-3000:]
            raise AssertionError(f"{self.name} did not start: {line!r}\n{tail}")
        took = time.monotonic() - began
        self.start_seconds.append(took)
        return took

    def kill(self) -> None:
        """kill -9, and wait until it is gone."""
        assert self.process is not None
        self.kills += 1
        _reap(self.process, signal.SIGKILL, STOP_TIMEOUT_S)

    def stop(self) -> int | None:
        """SIGTERM (graceful), bounded; returns the exit code."""
        if self.process is None:
            return None
        return _reap(self.process, signal.SIGTERM, STOP_TIMEOUT_S)

    def logs(self) -> str:
        """Every incarnation's log, in order."""
        return "\n".join(
            self.log_path(n).read_text() for n in range(1, self.starts + 1) if self.log_path(n).exists()
        )


class WorkerProcess:
    """One worker_proc.py process; its calls are logged as JSON lines in `log`."""

    def __init__(
        self,
        workdir: Path,
        address: str,
        *,
        worker_id: str,
        job_type: str,
        mode: str,
        lease_s: float = 2.0,
        concurrency: int = 4,
        poll_wait_s: float = 2.0,
        token: str = "",
    ) -> None:
        self.worker_id = worker_id
        self.log = workdir / f"{worker_id}.calls.jsonl"
        self.output = workdir / f"{worker_id}.log"
        self.command = [
            sys.executable,
            str(WORKER_SCRIPT),
            "--target",
            address,
            "--log",
            str(self.log),
            "--worker-id",
            worker_id,
            "--job-type",
            job_type,
            "--mode",
            mode,
            "--lease",
            str(lease_s),
            "--concurrency",
            str(concurrency),
            "--poll-wait",
            str(poll_wait_s),
            *(["--token", token] if token else []),
        ]
        self.process: subprocess.Popen[str] | None = None

    @property
    def actor(self) -> str:
        """How this worker appears in job histories."""
        return f"worker:{self.worker_id}"

    def start(self) -> None:
        """Start the process (it connects and claims on its own)."""
        self.process = _spawn(self.command, self.output, stdout_pipe=False)

    def kill(self) -> None:
        """kill -9, and wait until it is gone."""
        assert self.process is not None
        _reap(self.process, signal.SIGKILL, STOP_TIMEOUT_S)

    def freeze(self) -> None:
        """SIGSTOP: the process stops dead, sockets open, exactly like a long GC pause or a VM freeze."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> int | None:
        """SIGTERM (the SDK drains), bounded; SIGKILL if it does not exit. Returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGCONT)  # a frozen process cannot handle SIGTERM
        return _reap(self.process, signal.SIGTERM, STOP_TIMEOUT_S)

    def records(self) -> list[dict[str, Any]]:
        """Every call the worker logged so far."""
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]


class LoopServer:
    """A server process and a connection to it, driven from synchronous code on a private event loop.

    For hypothesis (its @given functions and state machines are synchronous): each call runs one
    coroutine to completion on the loop this object owns, so no other loop is ever involved. The loop
    is also the thread's current loop while the block runs: a grpc.aio call object made in synchronous
    code (before it is awaited) binds to the current loop.
    """

    def __init__(self, workdir: Path, config: Path, token: str | None = None) -> None:
        self.server = ServerProcess(workdir, config)
        self.loop = asyncio.new_event_loop()
        self._token = token
        self._stack = contextlib.AsyncExitStack()
        self.stubs: Stubs | None = None

    def run(self, aw: Any) -> Any:
        """Run one awaitable on the private loop and return its result."""
        return self.loop.run_until_complete(aw)

    @property
    def s(self) -> Stubs:
        """The connection (with the token, if any)."""
        assert self.stubs is not None, "use LoopServer as a context manager"
        return self.stubs

    def __enter__(self) -> Self:
        asyncio.set_event_loop(self.loop)
        try:
            self.run(self.server.start())
            self.stubs = self.run(self._stack.enter_async_context(stubs(self.server.address, self._token)))
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.run(self._stack.aclose())
            self.run(self.loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            self.loop.close()
            if self.server.process is not None:
                self.server.stop()


@contextlib.contextmanager
def cleanup(*processes: ServerProcess | WorkerProcess) -> Iterator[None]:
    """Make sure every process is gone when the block ends, however it ends."""
    try:
        yield
    finally:
        for p in processes:
            if p.process is not None:
                _reap(p.process, signal.SIGKILL, STOP_TIMEOUT_S)
