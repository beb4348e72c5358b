"""Acceptance tier: the real `jobwarden` command, as a subprocess."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No colour forced on from outside, and no token: piped output must be plain because it is piped,
    and each test says which token it uses."""
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR", "JOBWARDEN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
