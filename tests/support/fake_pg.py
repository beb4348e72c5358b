"""A stand-in PostgreSQL server on 127.0.0.1 that turns every login down, speaking the real protocol.

For the start-up failures the test server cannot show: it trusts every login (no wrong password) and
has TLS off (no certificate to distrust). By default it asks for a password and answers SQLSTATE 28P01
(invalid_password) as PostgreSQL does; given a `certificate`, it accepts TLS with it instead, a
certificate the client does not trust.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct
import threading
from collections.abc import Iterator

from support import certs

SSL_REQUEST_CODE = 80877103
AUTH_CLEARTEXT_PASSWORD = 3


def _read_exactly(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the client went away")
        data += chunk
    return data


def _read_untyped(conn: socket.socket) -> bytes:
    """An SSLRequest or StartupMessage: a length (counting itself), then the body."""
    (length,) = struct.unpack("!i", _read_exactly(conn, 4))
    return _read_exactly(conn, length - 4)


def _read_typed(conn: socket.socket) -> tuple[bytes, bytes]:
    kind = _read_exactly(conn, 1)
    return kind, _read_untyped(conn)


def _error_response(sqlstate: str, message: str) -> bytes:
    fields = b"".join(
        code + value.encode() + b"\0" for code, value in ((b"S", "FATAL"), (b"C", sqlstate), (b"M", message))
    )
    body = fields + b"\0"
    return b"E" + struct.pack("!i", len(body) + 4) + body


def _user(startup: bytes) -> str:
    parts = startup[4:].split(b"\0")  # after the protocol version: key, value, key, value, ...
    pairs = dict(zip(parts[::2], parts[1::2], strict=False))
    return pairs.get(b"user", b"").decode()


class FakePostgres:
    """Accepts connections on a free port until closed; each is handled on its own thread."""

    def __init__(self, *, certificate: certs.Pair | None = None) -> None:
        self._certificate = certificate
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="fake-postgres", daemon=True)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed: the test is over
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            conn.settimeout(10)
            first = _read_untyped(conn)
            if struct.unpack("!i", first[:4])[0] == SSL_REQUEST_CODE:
                if self._certificate is None:
                    conn.sendall(b"N")
                else:
                    conn.sendall(b"S")
                    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                    context.load_cert_chain(self._certificate.cert, self._certificate.key)
                    # The client refuses the certificate: the handshake fails here, as it should.
                    context.wrap_socket(conn, server_side=True).close()
                    return
                first = _read_untyped(conn)
            user = _user(first)
            conn.sendall(b"R" + struct.pack("!ii", 8, AUTH_CLEARTEXT_PASSWORD))
            _read_typed(conn)  # the password, which is wrong whatever it is
            conn.sendall(_error_response("28P01", f'password authentication failed for user "{user}"'))

    def start(self) -> None:
        """Start accepting."""
        self._thread.start()

    def close(self) -> None:
        """Stop accepting."""
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(); close() alone may not
        self._listener.close()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def running(*, certificate: certs.Pair | None = None) -> Iterator[FakePostgres]:
    """A FakePostgres for the duration of the block."""
    server = FakePostgres(certificate=certificate)
    server.start()
    try:
        yield server
    finally:
        server.close()
