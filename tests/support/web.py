"""Calling the HTTP port from tests: clients with or without a bearer token, the JSON refusal, and
reading server-sent events."""

from __future__ import annotations

import json
from typing import Any

import httpx

from jobwarden_server.domain.auth import Role

TOKENS = {
    "token-a": ("alice", frozenset({Role.CLIENT, Role.WORKER})),
    "token-b": ("bob", frozenset({Role.CLIENT, Role.WORKER})),
    "token-admin-a": ("alice", frozenset({Role.ADMIN})),
}
"""Token -> (owner, roles) for rpc.principals."""


def client(base: str, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(base_url=base, headers=headers, timeout=10)


def refusal(response: httpx.Response, status: int, reason: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert (error["status"], error["reason"]) == (status, reason)
    return error


async def read_sse(response: httpx.Response, until: str) -> list[tuple[str, str, Any]]:
    """(event, id, data) of each message until one named `until`."""
    messages: list[tuple[str, str, Any]] = []
    kind, event_id, data = "", "", ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and kind:
            messages.append((kind, event_id, json.loads(data)))
            if kind == until:
                return messages
            kind, event_id, data = "", "", ""
    raise AssertionError(f"stream ended before {until!r}: {messages}")
