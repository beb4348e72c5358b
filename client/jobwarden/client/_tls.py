"""TLS options of the SDK: which CA to trust, and the client certificate for mutual TLS."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import grpc

PemSource = bytes | str | os.PathLike[str]
"""PEM data as ``bytes``, or the path of a PEM file as ``str`` or ``pathlib.Path``."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TlsOptions:
    """How the client secures its channel; pass to ``Client(..., tls=TlsOptions(...))``.

    ``Client(..., tls=True)`` is ``TlsOptions()``: verify the server against the system's trusted CAs.

    Attributes:
        ca_cert: CA certificate(s) the server's certificate must chain to; None trusts the system's CAs.
        client_cert: Client certificate (chain) for servers that require mutual TLS; needs ``client_key``.
        client_key: Private key of ``client_cert``.
        server_name: Name to verify the server's certificate against, when it differs from the host
            in the target (for example when dialling an IP address whose certificate names a host).
    """

    ca_cert: PemSource | None = None
    client_cert: PemSource | None = None
    client_key: PemSource | None = dataclasses.field(default=None, repr=False)
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("TlsOptions: client_cert and client_key go together; give both or neither")

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """Reads the PEM material and returns the channel credentials.

        Raises:
            OSError: A named file cannot be read.
        """
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(self.ca_cert),
            private_key=_pem(self.client_key),
            certificate_chain=_pem(self.client_cert),
        )

    def channel_options(self) -> list[tuple[str, Any]]:
        """The channel options these settings need (the name override, when set)."""
        if not self.server_name:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]


def _pem(source: PemSource | None) -> bytes | None:
    if source is None or isinstance(source, bytes):
        return source
    return Path(source).read_bytes()
