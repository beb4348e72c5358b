"""Comparing what a step produced with what the scenario expects: a recursive subset match."""

from __future__ import annotations

from typing import Any


class Mismatch(AssertionError):
    """A step's outcome differs from its expectation; the message names the path that differs."""


def matches(expected: Any, actual: Any, path: str = "") -> None:
    """Raise Mismatch unless `actual` matches `expected`.

    Objects: every expected key must match (keys not mentioned are not compared; a missing actual key
    is null). Lists: same length, item by item. Numbers compare by value (1 == 1.0). Anything else:
    equality.
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            raise Mismatch(f"{path or '.'}: expected an object {expected!r}, got {actual!r}")
        for key, value in expected.items():
            matches(value, actual.get(key), f"{path}.{key}")
        return
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            raise Mismatch(f"{path or '.'}: expected {len(expected)} items {expected!r}, got {actual!r}")
        for i, (want, got) in enumerate(zip(expected, actual, strict=True)):
            matches(want, got, f"{path}[{i}]")
        return
    if expected != actual or isinstance(expected, bool) != isinstance(actual, bool):
        raise Mismatch(f"{path or '.'}: expected {expected!r}, got {actual!r}")
