"""Opaque page tokens. A token is bound to the query that made it, so reusing it with other filters
is refused instead of silently returning a wrong page."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from jobwarden_server.domain.errors import InvalidArgument


def query_key(*parts: Any) -> str:
    """A short fingerprint of a query's filters and order."""
    canonical = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode(query: str, position: list[Any]) -> str:
    """A token for the page after `position` of the query with fingerprint `query`."""
    raw = json.dumps({"q": query, "p": position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(token: str, query: str, field: str = "page_token") -> list[Any] | None:
    """The position stored in `token` (None for an empty token); InvalidArgument if it is malformed or
    was made for another query."""
    if not token:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        position = data["p"]
        made_for = data["q"]
    except (ValueError, KeyError, TypeError) as err:
        raise InvalidArgument(field, "is not a page token of this API", reason="INVALID_PAGE_TOKEN") from err
    if made_for != query or not isinstance(position, list):
        raise InvalidArgument(field, "belongs to a different query", reason="INVALID_PAGE_TOKEN")
    return position


def page_size(field: str, requested: int, default: int, maximum: int) -> int:
    """AIP-158: 0 means the default, larger than the maximum is capped, negative is an error."""
    if requested < 0:
        raise InvalidArgument(field, "must not be negative")
    return min(requested or default, maximum)
