"""Suite-wide test configuration: kept generic; each tier's fixtures live in its own conftest."""

from __future__ import annotations

import os

import pytest

PG_URL_ENV = "JOBWARDEN_TEST_DATABASE_URL"
"""Names a PostgreSQL server (e.g. postgresql://postgres@127.0.0.1:5432/postgres) for `postgres` tests."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect, rather than skip, tests marked `postgres` when no PostgreSQL server is configured.

    A skip would look like a gap in the run; without a server these tests simply are not part of it.
    """
    if os.environ.get(PG_URL_ENV):
        return
    deselected = [item for item in items if item.get_closest_marker("postgres") is not None]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item.get_closest_marker("postgres") is None]
