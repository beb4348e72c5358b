"""A real HTTP receiver for completion callbacks, on 127.0.0.1, in a thread of the test process.

It records every request it gets (headers, body, when) and answers what the test tells it to: a status
per request, optionally after a delay (a slow receiver). `down()` closes its listening socket, so
connections are refused as with a receiver that is not running; `up()` listens again on the same port.
Standard Webhooks signatures are checked by the tests with the `standardwebhooks` package.
"""

from __future__ import annotations

import base64
import dataclasses
import http.server
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, Self

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
"""The owner's signing secret in the callback tests."""
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
"""The secret being rotated out, in the rotation tests."""


def new_secret() -> str:
    """A random whsec_ secret."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclasses.dataclass(frozen=True)
class Received:
    """One request as the receiver got it."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    """time.monotonic() when it arrived."""

    @property
    def payload(self) -> Any:
        """The JSON body."""
        return json.loads(self.body)


Answer = Callable[[int, "Received"], tuple[int, float]]
"""(number of this request, 1-based; the request) -> (HTTP status, seconds to wait before answering)."""


def always(status: int, delay_s: float = 0.0) -> Answer:
    """Answer every request the same."""
    return lambda _n, _r: (status, delay_s)


def first_then(first: list[int], then: int = 200) -> Answer:
    """Answer the first requests with `first` in order, then `then`."""
    return lambda n, _r: (first[n - 1] if n <= len(first) else then, 0.0)


class _Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True  # up() again on the same port at once
    daemon_threads = True  # a slow answer in flight never holds down() or the test's end


class Receiver:
    """The receiver; use as a context manager (it stops its thread at the end)."""

    def __init__(self, answer: Answer | None = None) -> None:
        self.answer = answer or always(200)
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def __enter__(self) -> Self:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    @property
    def url(self) -> str:
        """The URL to give as callback_url."""
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def received(self) -> list[Received]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._received)

    def ids(self) -> list[str]:
        """The webhook-id of every request so far."""
        return [r.headers.get("webhook-id", "") for r in self.received]

    def up(self) -> None:
        """Listen (again, on the same port once it had one) and serve in a thread."""
        assert self._server is None, "already up"
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                got = Received(
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.monotonic(),
                )
                with receiver._lock:
                    receiver._received.append(got)
                    n = len(receiver._received)
                status, delay = receiver.answer(n, got)
                if delay:
                    time.sleep(delay)  # the receiver's own slowness, in its own thread
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("location", f"http://127.0.0.1:{receiver.port}/redirected")
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = _Server(("127.0.0.1", self.port), Handler)
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def down(self) -> None:
        """Stop listening: connections are refused until `up()`."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = None


def policy_settings(**overrides: Any) -> dict[str, Any]:
    """[callbacks] settings for tests: loopback allowed, owner "default" signing with SECRET, short
    timeouts and backoff, a fast poll."""
    values: dict[str, Any] = {
        "timeout_seconds": 2,
        "initial_backoff_seconds": 0.2,
        "max_backoff_seconds": 0.8,
        "multiplier": 2.0,
        "horizon_seconds": 30,
        "poll_interval_seconds": 0.05,
        "allow_networks": ["127.0.0.0/8", "::1/128"],
        "secrets": {"default": SECRET},
    }
    values.update(overrides)
    return values


def callbacks_toml(**overrides: Any) -> str:
    """policy_settings as the [callbacks] tables of a server config file (for `jobwarden serve`)."""
    values = policy_settings(**overrides)
    secrets_table = values.pop("secrets")
    lines = ["", "[callbacks]", *(f"{key} = {json.dumps(value)}" for key, value in values.items())]
    lines += [
        "",
        "[callbacks.secrets]",
        *(f"{owner} = {json.dumps(s)}" for owner, s in secrets_table.items()),
    ]
    return "\n".join(lines) + "\n"
