"""A TCP proxy in the test's own event loop, for network faults a real server cannot be asked to make.

A reply lost after the server committed, a connection reset mid-stream, a slow link: these make a
call's outcome ambiguous, and are what request ids and watch cursors exist for. Killing the server
would fake them badly (it loses in-flight work too); the proxy hurts only the network, at the moment
the test chooses, on connections that are already open.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import socket
import struct
from types import TracebackType
from typing import Literal, Self

# SO_LINGER on with timeout 0: closing sends RST instead of FIN, as a crashed peer or middlebox would.
_LINGER_ZERO = struct.pack("ii", 1, 0)


def _cut(parts: list[_Direction | asyncio.StreamWriter]) -> None:
    for part in parts:
        if isinstance(part, _Direction):
            part.cancel()
        elif not part.transport.is_closing():
            with contextlib.suppress(OSError):
                part.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
            part.transport.abort()


class _Direction:
    """One way of one connection. Chunks wait here until due, so a delay keeps their order without
    stopping the next chunk from being read: latency, not a bandwidth cap."""

    def __init__(self, proxy: TcpProxy, writer: asyncio.StreamWriter, *, to_client: bool) -> None:
        self.proxy = proxy
        self.writer = writer
        self.to_client = to_client
        self.queue: collections.deque[tuple[float, bytes | None]] = collections.deque()
        self.held: list[bytes] = []
        self.timer: asyncio.TimerHandle | None = None

    def push(self, data: bytes | None) -> None:
        """Queue a chunk (None: the sender closed its side) behind everything queued before it."""
        due = asyncio.get_running_loop().time() + self.proxy._latency
        self.queue.append((max(due, self.queue[-1][0]) if self.queue else due, data))
        if self.timer is None:
            self._flush()

    def _flush(self) -> None:
        self.timer = None
        loop = asyncio.get_running_loop()
        while self.queue and self.queue[0][0] <= loop.time():
            self._deliver(self.queue.popleft()[1])
        if self.queue:
            self.timer = loop.call_at(self.queue[0][0], self._flush)

    def _deliver(self, data: bytes | None) -> None:
        if self.writer.transport.is_closing():
            return
        if data is None:
            self.writer.close()  # after what was written before it
            return
        mode = self.proxy._replies if self.to_client else "pass"
        if mode == "drop":
            self.proxy.bytes_dropped += len(data)
        elif mode == "hold":
            self.held.append(data)
        else:
            self.writer.write(data)
            if self.to_client:
                self.proxy.bytes_to_client += len(data)
            else:
                self.proxy.bytes_to_server += len(data)

    def release(self) -> None:
        held, self.held = self.held, []
        for data in held:
            self._deliver(data)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()
        self.held.clear()


class TcpProxy:
    """127.0.0.1:<free port> -> target. Controls apply at once, to open connections as well as new ones.

    An async context manager: leaving it stops accepting, aborts every connection and waits for every
    task it started, so no socket or task outlives the block.
    """

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.connections = 0
        self.bytes_to_server = 0
        self.bytes_to_client = 0
        self.bytes_dropped = 0
        self._replies: Literal["pass", "hold", "drop"] = "pass"
        self._latency = 0.0
        self._epoch = 0  # bumped by reset(): a connection still being set up from before it is aborted
        self._listener: socket.socket | None = None
        self._acceptor: asyncio.Task[None] | None = None
        self._links: dict[asyncio.Task[None], list[_Direction | asyncio.StreamWriter]] = {}

    @property
    def address(self) -> str:
        """host:port to dial instead of the target."""
        assert self._listener is not None, "use TcpProxy as an async context manager"
        port: int = self._listener.getsockname()[1]
        return f"127.0.0.1:{port}"

    @property
    def bytes_held(self) -> int:
        """Bytes from the server waiting for release(): proof that the server did answer."""
        return sum(len(data) for d in self._directions() for data in d.held)

    def hold_replies(self) -> None:
        self._replies = "hold"

    def drop_replies(self) -> None:
        self._replies = "drop"

    def release(self) -> None:
        """Deliver the held replies, then pass replies through again."""
        self._replies = "pass"
        for d in self._directions():
            d.release()

    def latency(self, seconds: float) -> None:
        """Delay each chunk, both ways, from now on; a property of the link, so reset() keeps it."""
        self._latency = seconds

    def reset(self) -> None:
        """Abort every open connection, both sides (held bytes die with it); new ones pass replies."""
        self._replies = "pass"
        self._epoch += 1
        for parts in self._links.values():
            _cut(parts)

    def _directions(self) -> list[_Direction]:
        return [p for parts in self._links.values() for p in parts if isinstance(p, _Direction)]

    async def __aenter__(self) -> Self:
        # Our own accept loop rather than asyncio.start_server: every accepted socket gets its task at
        # once, so there is no moment where a connection exists that reset() or exit cannot see.
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setblocking(False)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self._acceptor = asyncio.create_task(self._accept(self._listener))
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._acceptor is not None and self._listener is not None
        self._acceptor.cancel()
        await asyncio.gather(self._acceptor, return_exceptions=True)
        self._listener.close()
        self.reset()
        for task in self._links:
            task.cancel()
        await asyncio.gather(*self._links, return_exceptions=True)

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            conn, _ = await loop.sock_accept(listener)
            self.connections += 1
            parts: list[_Direction | asyncio.StreamWriter] = []
            task = asyncio.create_task(self._serve(conn, parts, self._epoch))
            self._links[task] = parts
            task.add_done_callback(self._links.pop)

    async def _serve(
        self, conn: socket.socket, parts: list[_Direction | asyncio.StreamWriter], epoch: int
    ) -> None:
        c_writer: asyncio.StreamWriter | None = None
        try:
            c_reader, c_writer = await asyncio.open_connection(sock=conn)
            parts.append(c_writer)
            u_reader, u_writer = await asyncio.open_connection(*self.target)
            parts.append(u_writer)
            if epoch != self._epoch:
                return
            up = _Direction(self, u_writer, to_client=False)
            down = _Direction(self, c_writer, to_client=True)
            parts += [up, down]
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._pump(c_reader, up))
                tg.create_task(self._pump(u_reader, down))
        except OSError:
            pass  # the target refused, or a side broke: the client sees its connection end
        finally:
            _cut(parts)
            if c_writer is None:
                conn.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, direction: _Direction) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                direction.push(data)
        direction.push(None)
