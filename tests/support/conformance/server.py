"""The one `jobwarden serve` the scenarios of a store share, started as every runner must start it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import secrets
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from support import pg, proc

from . import spec

T = TypeVar("T")


def _run_in_thread(coro: Coroutine[Any, Any, T]) -> T:
    # Module fixtures run outside pytest-asyncio's loops; asyncio.run on this thread would replace its loop.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@contextlib.contextmanager
def database(store: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty database of `store` ("sqlite": a file; "postgres": a throw-away database)."""
    if store == "sqlite":
        yield str(workdir / "conformance.db")
        return
    name = f"jobwarden_conf_{secrets.token_hex(4)}"
    base = pg.server_url()
    _run_in_thread(pg.run(base, f'CREATE DATABASE "{name}"'))
    try:
        yield pg.with_database(base, name)
    finally:
        # FORCE: a connection the stopped server left behind must not keep the database alive.
        _run_in_thread(pg.run(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def serving(store: str, workdir: Path) -> Iterator[str]:
    """`jobwarden serve --config server.toml --listen 127.0.0.1:0 --database <fresh>`; yields its address.

    The server's log goes to a file in `workdir` (a pipe nobody reads could fill up and stall it); it is
    quoted when the server does not start.
    """
    with database(store, workdir) as url:
        log_path = workdir / f"server-{store}.log"
        command = [*proc.jobwarden_command(), "serve", "--config", str(spec.SERVER_CONFIG)]
        command += ["--listen", "127.0.0.1:0", "--database", url]
        with log_path.open("w") as log:
            server = proc.spawn(command, stderr=log)
        try:
            assert server.stdout is not None
            line = server.stdout.readline()  # blocks until the server says where it listens, or exits
            match = proc.LISTENING.search(line)
            if match is None:
                server.wait(timeout=10)
                raise AssertionError(f"server did not start: {line!r}\n{log_path.read_text()[-3000:]}")
            yield match.group(1)
        finally:
            proc.stop(server)
