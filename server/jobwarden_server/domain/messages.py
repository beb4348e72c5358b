"""Job messages: what a worker attaches to its running job (log lines, warnings, intermediate outputs),
their bounds, and how one is recorded as a LOG event's data.

A message is an event of its job, not a row of its own: it is ordered with everything else that
happened to the job, streamed to watchers and listed like any event, and deleted with the job.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping, Sequence
from typing import Any

from jobwarden_server.domain import limits
from jobwarden_server.domain.errors import InvalidArgument

MAX_MESSAGES_PER_CALL = 100
"""Messages one AddMessages call (or step) may carry: bounds one compare-and-set and its events."""
MAX_MESSAGE_BYTES = 64 * 1024
"""One message's text (UTF-8) and data (compact JSON) together: a log line or a small output, not a
file (attach those as assets)."""


class MessageLevel(enum.StrEnum):
    """What kind of record a message is (the proto's MessageLevel without its prefix)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    OUTPUT = "OUTPUT"  # an intermediate output of the job, not a diagnostic


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class JobMessage:
    """One message as the worker sent it. `data` is any JSON value; None means none."""

    text: str = ""
    level: MessageLevel = MessageLevel.INFO
    data: Any = None


def check_messages(field: str, messages: Sequence[JobMessage]) -> tuple[JobMessage, ...]:
    """1..MAX_MESSAGES_PER_CALL messages, each with text or data, each within MAX_MESSAGE_BYTES, data
    with finite numbers no larger than MAX_SAFE_INTEGER; InvalidArgument naming the message otherwise
    (`messages[3]`, `messages[3].data.total`)."""
    limits.check_count(field, len(messages), MAX_MESSAGES_PER_CALL)
    for index, message in enumerate(messages):
        check_message(f"{field}[{index}]", message)
    return tuple(messages)


def check_message(field: str, message: JobMessage) -> JobMessage:
    """See check_messages."""
    if not message.text and message.data is None:
        raise InvalidArgument(field, "needs a message or data")
    size = len(message.text.encode("utf-8", "surrogatepass"))
    if message.data is not None:
        try:
            encoded = json.dumps(message.data, separators=(",", ":"), allow_nan=False)
        except ValueError as err:
            raise InvalidArgument(f"{field}.data", "numbers must be finite") from err
        size += len(encoded.encode("utf-8", "surrogatepass"))
    if size > MAX_MESSAGE_BYTES:
        raise limits.too_large(field, f"is {size} bytes; a message may hold at most {MAX_MESSAGE_BYTES}")
    if message.data is not None:
        limits.check_safe_numbers(f"{field}.data", message.data)
    return message


def event_data(message: JobMessage) -> dict[str, Any]:
    """A message as its LOG event records it (`data` only when there is some)."""
    data: dict[str, Any] = {"message": message.text, "level": message.level.value}
    if message.data is not None:
        data["data"] = message.data
    return data


def from_event_data(data: Mapping[str, Any]) -> JobMessage:
    """The message a LOG event recorded (the inverse of event_data)."""
    return JobMessage(
        text=str(data.get("message", "")),
        level=MessageLevel(data.get("level") or MessageLevel.INFO.value),
        data=data.get("data"),
    )
