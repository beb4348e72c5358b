"""The listen address: parsed when the settings are loaded, and checked before the server binds it.

gRPC takes almost any string and fails late or not at all: `127.0.0.1:80000` binds port 14464 (the
port wraps around 65536), and a port another process listens on is shared silently when both set
SO_REUSEPORT (grpcio's default). So the address is parsed here with one clear error for each
mistake, the server binds exclusively (EXCLUSIVE_BIND), and a port that cannot be bound is explained
here, since gRPC itself reports only "Failed to bind".
"""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import re
import socket

from jobwarden_server.domain.errors import ConfigError

EXCLUSIVE_BIND = ("grpc.so_reuseport", 0)
"""gRPC server option: never share a port with another listener (a second server must fail)."""

ANY_FREE_PORT = 0
"""Port 0: the operating system picks a free port; the server prints the one it got."""

MAX_PORT = 65535

_HOST_LABEL = r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)"
_HOSTNAME = re.compile(rf"^{_HOST_LABEL}(\.{_HOST_LABEL})*\.?$")
_EXAMPLE = "host:port, e.g. 127.0.0.1:50051, [::1]:50051 or 0.0.0.0:50051"


@dataclasses.dataclass(frozen=True, slots=True)
class ListenAddress:
    """A checked host:port. `host` is without brackets; port 0 means any free port."""

    host: str
    port: int


def parse_listen(listen: str) -> ListenAddress:
    """Read `host:port` (an IPv6 host in brackets); ConfigError naming the mistake otherwise.

    The port is 1-65535, or 0 for any free port (what tests and embedders ask for).
    """
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"listen address {listen!r} is not {_EXAMPLE}")
    if not port_text.isascii() or not port_text.isdigit():
        raise ConfigError(f"listen address {listen!r}: port {port_text!r} is not a number; give {_EXAMPLE}")
    port = int(port_text)
    if port > MAX_PORT:
        raise ConfigError(
            f"listen address {listen!r}: port {port} is out of range; use 1-{MAX_PORT} "
            f"(or {ANY_FREE_PORT} for any free port)"
        )
    if host.startswith("["):
        inner = host[1:-1] if host.endswith("]") else ""
        if not _is_ipv6(inner):
            raise ConfigError(f"listen address {listen!r}: {host} is not an IPv6 address in brackets")
        return ListenAddress(inner, port)
    if ":" in host:
        raise ConfigError(f"listen address {listen!r}: put an IPv6 host in brackets, e.g. [{host}]:{port}")
    if not _HOSTNAME.match(host):
        raise ConfigError(f"listen address {listen!r}: {host!r} is not a host name or IP address")
    return ListenAddress(host, port)


def _is_ipv6(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv6Address)
    except ValueError:
        return False


def bind_problem(address: ListenAddress) -> str | None:
    """Why binding `address` would fail, as one line naming it and what to do; None if it would work.

    Binds and closes a plain socket on each address the host resolves to, as gRPC will (with
    SO_REUSEADDR, so a port that only has connections in TIME_WAIT still counts as free, and without
    SO_REUSEPORT). gRPC listens if any of them binds (`localhost` may name ::1 on a machine without
    IPv6), so a failure counts only when all fail, except "in use", which counts on any.
    """
    shown = f"[{address.host}]:{address.port}" if ":" in address.host else f"{address.host}:{address.port}"
    try:
        candidates = socket.getaddrinfo(
            address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as err:
        return f"cannot listen on {shown}: host {address.host!r} does not resolve ({err.strerror})"
    failures: list[OSError] = []
    for family, kind, proto, _name, sockaddr in candidates:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(sockaddr)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                return (
                    f"cannot listen on {shown}: the address is already in use (another jobwarden or "
                    "another program listens there); stop it or choose another --listen"
                )
            failures.append(err)
    if not failures or len(failures) < len(candidates):
        return None
    first = failures[0]
    if first.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {shown}: {address.host} is not an address of this machine; fix --listen"
    if first.errno == errno.EACCES:
        return f"cannot listen on {shown}: permission denied (ports below 1024 need privileges); fix --listen"
    return f"cannot listen on {shown}: {first.strerror or first}; fix --listen"
