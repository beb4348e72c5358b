"""Bearer-token authentication. Tokens are configured as SHA-256 hashes, never in clear text."""

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


class Authenticator:
    """Maps `authorization: Bearer <token>` metadata to a Principal. No tokens = local mode."""

    def __init__(self, principals_by_hash: Mapping[str, Principal]) -> None:
        self._by_hash = dict(principals_by_hash)

    @property
    def local_mode(self) -> bool:
        """Without tokens every caller is the local owner; the server then binds to loopback only."""
        return not self._by_hash

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> Principal:
        """The caller, or Unauthenticated."""
        if self.local_mode:
            return LOCAL_PRINCIPAL
        header = ""
        for key, value in metadata or ():
            if key.lower() == "authorization":
                header = value.decode() if isinstance(value, bytes) else value
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.Unauthenticated("missing 'authorization: Bearer <token>' metadata")
        digest = hash_token(token.strip())
        for known, principal in self._by_hash.items():
            if hmac.compare_digest(known, digest):
                return principal
        raise errors.Unauthenticated("unknown token")


def current_principal() -> Principal:
    """The caller of the RPC being served (set by the guard interceptor)."""
    return _current.get()


def set_principal(principal: Principal) -> contextvars.Token[Principal]:
    """Bind the caller for the rest of this RPC's task."""
    return _current.set(principal)
