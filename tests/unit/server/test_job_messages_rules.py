"""The bounds of job messages and how one is recorded (domain/messages.py), on plain values."""

from __future__ import annotations

from typing import Any

import pytest

from jobwarden_server.domain import errors
from jobwarden_server.domain.messages import (
    MAX_MESSAGE_BYTES,
    MAX_MESSAGES_PER_CALL,
    JobMessage,
    MessageLevel,
    check_messages,
    event_data,
    from_event_data,
)


def refused(messages: list[JobMessage]) -> tuple[str, str]:
    with pytest.raises(errors.InvalidArgument) as caught:
        check_messages("messages", messages)
    return caught.value.field, caught.value.reason


def test_a_call_carries_one_to_a_hundred_messages() -> None:
    one = JobMessage(text="x")
    assert refused([]) == ("messages", "INVALID_ARGUMENT")
    assert refused([one] * (MAX_MESSAGES_PER_CALL + 1)) == ("messages", "TOO_LARGE")
    assert len(check_messages("messages", [one] * MAX_MESSAGES_PER_CALL)) == MAX_MESSAGES_PER_CALL


def test_a_message_needs_text_or_data_and_its_size_counts_both_in_bytes() -> None:
    assert refused([JobMessage(text="ok"), JobMessage()]) == ("messages[1]", "INVALID_ARGUMENT")
    check_messages("messages", [JobMessage(data=0), JobMessage(data=""), JobMessage(data=[])])  # data, falsy
    text = "x" * (MAX_MESSAGE_BYTES - 7)
    check_messages("messages", [JobMessage(text=text, data={"a": 1})])  # {"a":1} is 7 bytes: exactly fits
    assert refused([JobMessage(text=text, data={"a": 10})]) == ("messages[0]", "TOO_LARGE")
    wide = "é" * (MAX_MESSAGE_BYTES // 2 + 1)  # fewer characters than the limit, more bytes
    assert refused([JobMessage(text=wide)]) == ("messages[0]", "TOO_LARGE")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"ids": [1, 2**53]}, "messages[0].data.ids[1]"),
        ([float("nan")], "messages[0].data"),
        (-(2**60), "messages[0].data"),
    ],
)
def test_data_numbers_follow_the_rule_of_parameters(data: Any, field: str) -> None:
    assert refused([JobMessage(data=data)])[0] == field


def test_a_message_round_trips_through_its_event_data() -> None:
    for message in (
        JobMessage(text="plain"),
        JobMessage(text="", level=MessageLevel.OUTPUT, data={"rows": [1, 2]}),
        JobMessage(text="t", level=MessageLevel.ERROR, data="s"),
    ):
        assert from_event_data(event_data(message)) == message
    assert "data" not in event_data(JobMessage(text="plain"))
    assert from_event_data({"message": "older event, no level"}) == JobMessage(text="older event, no level")
