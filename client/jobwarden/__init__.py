"""jobwarden: gRPC job coordination. The SDK is in jobwarden.client, the CLI in jobwarden.cli."""

from __future__ import annotations

__version__ = "0.1.0"
