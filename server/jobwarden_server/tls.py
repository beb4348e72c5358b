"""TLS for the server: the certificate, key and optional client CA (mTLS), read and checked at start-up.

The files are read once, when the settings are loaded, so a missing or unreadable file stops
`jobwarden serve` with one clear line instead of failing later at bind time (where gRPC only says
"Failed to bind") or, worse, at the first handshake.
"""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import grpc

from jobwarden_server.domain.errors import ConfigError


@dataclasses.dataclass(frozen=True, slots=True)
class TlsSettings:
    """PEM material for `grpc.ssl_server_credentials`. With `client_ca`, clients must present a
    certificate signed by it (mutual TLS)."""

    cert_chain: bytes
    private_key: bytes = dataclasses.field(repr=False)  # never in logs or error messages
    client_ca: bytes | None = None
    paths: tuple[Path, Path] | None = dataclasses.field(default=None, compare=False)
    """Where the cert and key were read from: Python's ssl module loads a key only from a file."""

    @property
    def mutual(self) -> bool:
        """Whether client certificates are required and verified."""
        return self.client_ca is not None

    @property
    def mode(self) -> str:
        """Either "TLS" or "mTLS", for log lines."""
        return "mTLS" if self.mutual else "TLS"

    @classmethod
    def from_files(
        cls,
        cert: Path | str | None = None,
        key: Path | str | None = None,
        client_ca: Path | str | None = None,
    ) -> TlsSettings | None:
        """TLS settings from PEM files, or None when no file is named (plaintext).

        Raises:
            ConfigError: a file is missing, unreadable or not PEM, or the set is incomplete.
        """
        if cert is None and key is None and client_ca is None:
            return None
        if cert is None and key is None:
            raise ConfigError("TLS: a client CA needs the server's cert and key too (--tls-cert, --tls-key)")
        if cert is None or key is None:
            given, missing = ("key", "cert") if cert is None else ("cert", "key")
            raise ConfigError(
                f"TLS: a {given} needs a {missing} too (--tls-{missing} or [tls] {missing} in the config)"
            )
        return cls(
            cert_chain=_read("cert", cert, b"CERTIFICATE"),
            private_key=_read("key", key, b"PRIVATE KEY"),
            client_ca=None if client_ca is None else _read("client_ca", client_ca, b"CERTIFICATE"),
            paths=(Path(cert), Path(key)),
        )

    def server_credentials(self) -> grpc.ServerCredentials:
        """Credentials for `add_secure_port`; with a client CA, client certificates are required and
        verified during the handshake, so a call without a valid one never reaches a handler."""
        return grpc.ssl_server_credentials(
            [(self.private_key, self.cert_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.mutual,
        )

    def ssl_context(self) -> ssl.SSLContext:
        """The same certificate, key and client CA for the HTTP port (aiohttp's server).

        Raises:
            ConfigError: the files cannot be loaded (changed since start-up, or a key of another cert).
        """
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        if self.paths is None:
            raise ConfigError("TLS for the HTTP port needs the cert and key files (--tls-cert, --tls-key)")
        try:
            context.load_cert_chain(*self.paths)
            if self.client_ca is not None:
                context.load_verify_locations(cadata=self.client_ca.decode())
                context.verify_mode = ssl.CERT_REQUIRED
        except (OSError, ssl.SSLError, ValueError) as err:
            raise ConfigError(f"TLS for the HTTP port: cannot load the cert and key ({err})") from err
        return context


def _read(what: str, path: Path | str, marker: bytes) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise ConfigError(f"TLS {what} file {path}: cannot read it ({err.strerror or err})") from err
    # gRPC would accept the bytes here and fail only at bind time with a message naming no file;
    # a PEM marker check catches the common mistakes (swapped cert and key, a DER file) up front.
    if b"-----BEGIN " not in data or marker not in data:
        raise ConfigError(f"TLS {what} file {path}: not a PEM file with a {marker.decode()} block")
    return data
