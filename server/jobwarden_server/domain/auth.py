"""Who is calling: an owner and the roles granted to their token."""

from __future__ import annotations

import dataclasses
import enum


class Role(enum.StrEnum):
    """What a token may do. Admin implies both others; admin-global implies admin."""

    CLIENT = "client"
    WORKER = "worker"
    ADMIN = "admin"
    GLOBAL_ADMIN = "admin-global"
    """An admin whose AdminService calls reach every owner's jobs (an `admin` reaches its own owner's)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """The authenticated caller. Every query is scoped to `owner`."""

    owner: str
    roles: frozenset[Role]
    name: str = ""

    def has(self, role: Role) -> bool:
        """Whether the caller holds `role` (admins hold every role but admin-global, which only a
        token granted it holds, and which holds every role)."""
        if role in self.roles or Role.GLOBAL_ADMIN in self.roles:
            return True
        return role is not Role.GLOBAL_ADMIN and Role.ADMIN in self.roles


LOCAL_OWNER = "default"
"""The owner of everything when the server runs without tokens (local mode, loopback only)."""

LOCAL_PRINCIPAL = Principal(owner=LOCAL_OWNER, roles=frozenset(Role), name="local")
