"""Who is calling: an owner and the roles granted to their token."""

from __future__ import annotations

import dataclasses
import enum


class Role(enum.StrEnum):
    """What a token may do. Admin implies both others."""

    CLIENT = "client"
    WORKER = "worker"
    ADMIN = "admin"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """The authenticated caller. Every query is scoped to `owner`."""

    owner: str
    roles: frozenset[Role]
    name: str = ""

    def has(self, role: Role) -> bool:
        """Whether the caller holds `role` (admins hold every role)."""
        return role in self.roles or Role.ADMIN in self.roles


LOCAL_OWNER = "default"
"""The owner of everything when the server runs without tokens (local mode, loopback only)."""

LOCAL_PRINCIPAL = Principal(owner=LOCAL_OWNER, roles=frozenset(Role), name="local")
