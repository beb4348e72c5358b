"""Who is calling: an owner and the roles granted to their token."""

from __future__ import annotations

import dataclasses
import enum

from jobwarden_server.domain import errors


class Role(enum.StrEnum):
    """What a token may do. Admin implies client and worker; admin-global implies every role."""

    CLIENT = "client"
    WORKER = "worker"
    ADMIN = "admin"
    GLOBAL_ADMIN = "admin-global"
    """An admin whose AdminService calls reach every owner's jobs (an `admin` reaches its own owner's)."""
    METRICS = "metrics"
    """Reads the server's metrics (GET /metrics), which count every owner's jobs, and nothing else:
    the role of a Prometheus scraper's token."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """The authenticated caller. Every query is scoped to `owner`."""

    owner: str
    roles: frozenset[Role]
    name: str = ""

    def has(self, role: Role) -> bool:
        """Whether the caller holds `role` (admins hold client and worker too; admin-global, which
        only a token granted it holds, holds every role). An owner's admin does not hold metrics:
        they count every owner's jobs."""
        if role in self.roles or Role.GLOBAL_ADMIN in self.roles:
            return True
        return role in (Role.CLIENT, Role.WORKER) and Role.ADMIN in self.roles

    def require(self, role: Role) -> Principal:
        """The caller, if it holds `role` (the gRPC guard's and the HTTP port's one check);
        PermissionDenied otherwise."""
        if not self.has(role):
            raise errors.PermissionDenied(f"this token lacks the {role.value!r} role")
        return self


LOCAL_OWNER = "default"
"""The owner of everything when the server runs without tokens (local mode, loopback only)."""

LOCAL_PRINCIPAL = Principal(owner=LOCAL_OWNER, roles=frozenset(Role), name="local")
