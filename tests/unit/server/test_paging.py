"""Page tokens are opaque, bound to their query, and refuse tampering."""

from __future__ import annotations

import pytest

from jobwarden_server.domain.errors import InvalidArgument
from jobwarden_server.service import paging


def test_round_trip_and_binding() -> None:
    key = paging.query_key("jobs", "owner", {"statuses": ["QUEUED"]})
    token = paging.encode(key, ["2026-01-01T00:00:00+00:00", "id-1"])
    assert paging.decode(token, key) == ["2026-01-01T00:00:00+00:00", "id-1"]
    assert paging.decode("", key) is None
    other = paging.query_key("jobs", "owner", {"statuses": ["RUNNING"]})
    with pytest.raises(InvalidArgument) as err:
        paging.decode(token, other)
    assert err.value.reason == "INVALID_PAGE_TOKEN"


@pytest.mark.parametrize("token", ["!!!", "e30", "bm90IGpzb24", "eyJxIjoxfQ"])
def test_garbage_is_refused(token: str) -> None:
    with pytest.raises(InvalidArgument):
        paging.decode(token, "k")


def test_page_size_default_cap_and_negative() -> None:
    assert paging.page_size("page_size", 0, 50, 500) == 50
    assert paging.page_size("page_size", 10_000, 50, 500) == 500
    with pytest.raises(InvalidArgument):
        paging.page_size("page_size", -1, 50, 500)
