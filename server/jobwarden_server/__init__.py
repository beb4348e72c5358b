"""jobwarden server: gRPC API over a SQL store. Composition root: jobwarden_server.app."""

from __future__ import annotations
