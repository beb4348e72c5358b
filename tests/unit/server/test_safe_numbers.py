"""Numbers in parameters and results: beyond ±(2^53 - 1) a double is not exact, so they are refused."""

from __future__ import annotations

from typing import Any

import pytest

from jobwarden_server.domain import limits
from jobwarden_server.domain.errors import InvalidArgument
from jobwarden_server.service.jobs import JobSpec, check_spec

MAX_SAFE = 9007199254740991


def test_the_limit_is_javascripts_max_safe_integer() -> None:
    assert limits.MAX_SAFE_INTEGER == MAX_SAFE == 2**53 - 1


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"big": 2.0**53}, "parameters.big"),
        ({"big": -(2.0**53)}, "parameters.big"),
        ({"big": 2**53}, "parameters.big"),  # a Python int, as another entry point might pass
        ({"huge": 1e300}, "parameters.huge"),
        ({"ids": [1, 2, MAX_SAFE, 2.0**53]}, "parameters.ids[3]"),
        ({"nested": {"rows": [{"n": 1}, {"n": -1e20}]}}, "parameters.nested.rows[1].n"),
        ({"a.b": 1e16}, 'parameters["a.b"]'),  # a key that would read as a path is quoted
        ({"": 1e16}, 'parameters[""]'),
        ({"k" * 100: 1e16}, f'parameters["{"k" * 40}"]'),  # cut as map keys are
    ],
)
def test_numbers_beyond_the_limit_are_refused_naming_their_path(value: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        limits.check_struct("parameters", value)
    assert caught.value.reason == "INVALID_ARGUMENT"
    assert caught.value.field == field
    assert caught.value.metadata == {"field": field}
    assert "9007199254740991" in str(caught.value) and "send such values as strings" in str(caught.value)


def test_the_first_number_beyond_the_limit_is_named() -> None:
    with pytest.raises(InvalidArgument) as caught:
        limits.check_struct("result", {"a": [0, 1e17], "b": 1e18})
    assert caught.value.field == "result.a[1]"


def test_a_deep_path_is_cut_to_its_end() -> None:
    value: dict[str, Any] = {"n": 2.0**53}
    for _ in range(60):
        value = {"level": value}
    with pytest.raises(InvalidArgument) as caught:
        limits.check_struct("result", value)
    field = caught.value.field
    assert field.startswith("result...") and field.endswith(".level.n")
    assert len(field) <= len("result...") + limits.MAX_LABEL_TEXT


def test_the_limit_itself_passes_and_its_neighbour_does_not() -> None:
    value = {
        "max": MAX_SAFE,
        "min": -MAX_SAFE,
        "as_double": float(MAX_SAFE),
        "ratio": 0.5,
        "tiny": -1e-300,
        "flags": [True, False],  # bool is an int subclass, but never a number here
        "text": "9007199254740993",  # big ids as strings are the way to send them
        "none": None,
        "nested": {"ids": [1, 2, MAX_SAFE]},
    }
    assert limits.check_struct("parameters", value) == value
    with pytest.raises(InvalidArgument):
        limits.check_struct("parameters", {**value, "max": MAX_SAFE + 1})


def test_create_refuses_them_whatever_the_entry_point() -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_spec(JobSpec(job_type="demo", parameters={"ids": [1, 2, 3, 2**53]}))
    assert caught.value.field == "parameters.ids[3]"
