"""Who is calling: a bearer token (configured as a SHA-256 hash, never in clear text), or, under mutual
TLS, the common name of the client certificate the TLS layer verified."""

from __future__ import annotations

import contextvars
import hashlib
import hmac
from collections.abc import Iterable, Mapping

from jobwarden_server.domain import errors
from jobwarden_server.domain.auth import LOCAL_PRINCIPAL, Principal

_current: contextvars.ContextVar[Principal] = contextvars.ContextVar("jobwarden_principal")


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token, as written in the config file."""
    return hashlib.sha256(token.encode()).hexdigest()


CERT_COMMON_NAME = "x509_common_name"
"""The auth-context property gRPC sets from the peer certificate once the TLS handshake verified it."""


class Authenticator:
    """Maps `authorization: Bearer <token>` metadata, or a verified client certificate's common name,
    to a Principal. Neither configured = local mode.

    A token, when sent, decides (a wrong one is refused even with a good certificate: the caller asked
    to be someone specific). Without a token, the certificate's common name is looked up.
    """

    def __init__(
        self,
        principals_by_hash: Mapping[str, Principal],
        principals_by_cn: Mapping[str, Principal] | None = None,
    ) -> None:
        self._by_hash = dict(principals_by_hash)
        # Only ever consulted with the auth context of a verified handshake: the settings accept
        # common-name entries only when the server requires and verifies client certificates.
        self._by_cn = dict(principals_by_cn or {})

    @property
    def local_mode(self) -> bool:
        """Without credentials every caller is the local owner; the server then binds to loopback only."""
        return not self._by_hash and not self._by_cn

    def authenticate(
        self,
        metadata: Iterable[tuple[str, str | bytes]] | None,
        auth_context: Mapping[str, Iterable[bytes]] | None = None,
    ) -> Principal:
        """The caller, or Unauthenticated."""
        if self.local_mode:
            return LOCAL_PRINCIPAL
        header = ""
        for key, value in metadata or ():
            if key.lower() == "authorization":
                header = value.decode() if isinstance(value, bytes) else value
        if not header:
            by_cert = self._by_certificate(auth_context)
            if by_cert is not None:
                return by_cert
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.Unauthenticated("missing 'authorization: Bearer <token>' metadata")
        digest = hash_token(token.strip())
        for known, principal in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return principal
        raise errors.Unauthenticated("unknown token")

    def _by_certificate(self, auth_context: Mapping[str, Iterable[bytes]] | None) -> Principal | None:
        if not self._by_cn or not auth_context:
            return None
        for name in auth_context.get(CERT_COMMON_NAME, ()):
            principal = self._by_cn.get(name.decode(errors="replace"))
            if principal is not None:
                return principal
        return None


def current_principal() -> Principal:
    """The caller of the RPC being served (set by the guard interceptor)."""
    return _current.get()


def set_principal(principal: Principal) -> contextvars.Token[Principal]:
    """Bind the caller for the rest of this RPC's task."""
    return _current.set(principal)
