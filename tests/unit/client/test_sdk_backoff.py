"""How long the SDK waits before trying a server again: its own backoff and gRPC's reconnect options."""

from __future__ import annotations

from jobwarden.client import _channel
from jobwarden.client._backoff import MAX_BACKOFF_S, backoff


def test_backoff_grows_to_its_cap_with_jitter() -> None:
    assert 0.5 <= backoff(1) <= 1.0
    assert MAX_BACKOFF_S / 2 <= backoff(20) <= MAX_BACKOFF_S
    assert all(1.0 <= backoff(20, cap=2.0) <= 2.0 for _ in range(50))


def test_reconnect_options_cap_grpcs_backoff_from_the_first_wait() -> None:
    assert dict(_channel.reconnect_options(2.0)) == {
        "grpc.initial_reconnect_backoff_ms": 1000,
        "grpc.max_reconnect_backoff_ms": 2000,
    }
    assert dict(_channel.reconnect_options(0.25)) == {
        "grpc.initial_reconnect_backoff_ms": 250,
        "grpc.max_reconnect_backoff_ms": 250,
    }
