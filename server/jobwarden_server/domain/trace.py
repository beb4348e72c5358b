"""W3C Trace Context (https://www.w3.org/TR/trace-context/): which `traceparent` and `tracestate`
values a job keeps.

Tracing must never break a create: a value that is not valid is ignored (the job is stored without a
trace context), never refused. What is kept is bounded, so a caller cannot grow every job row with it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

MAX_TRACEPARENT = 512
"""Longest traceparent looked at (version 00 is 55 characters; later versions may append fields)."""
MAX_TRACESTATE = 512
"""Longest tracestate kept: the length the W3C asks every vendor to propagate at least."""
MAX_TRACESTATE_MEMBERS = 32

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_INVALID_TRACE_ID = "0" * 32
_INVALID_SPAN_ID = "0" * 16
_MEMBER_KEY = re.compile(
    r"^(?:[a-z][_0-9a-z*/-]{0,255}|[a-z0-9][_0-9a-z*/-]{0,240}@[a-z][_0-9a-z*/-]{0,13})$"
)
_MEMBER_VALUE = re.compile(r"^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$")
_OWS = " \t"


@dataclasses.dataclass(frozen=True, slots=True)
class TraceContext:
    """A valid trace context: `traceparent` in its canonical version-00 form, and the `tracestate`
    that came with it ("" for none)."""

    traceparent: str
    tracestate: str = ""

    @property
    def trace_id(self) -> str:
        """The 32 lowercase hex digits of the trace."""
        return self.traceparent[3:35]

    @property
    def span_id(self) -> str:
        """The 16 lowercase hex digits of the span the context names as parent."""
        return self.traceparent[36:52]


def parse(traceparent: str, tracestate: Iterable[str] = ()) -> TraceContext | None:
    """The trace context of these header values, or None if `traceparent` is missing or malformed.

    A later version's traceparent is read as version 00 (its first four fields), as the W3C asks; a
    tracestate that is malformed, has more than 32 members or is longer than 512 characters is dropped
    (the traceparent is still kept).
    """
    value = traceparent.strip(_OWS)
    if len(value) > MAX_TRACEPARENT:
        return None
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == _INVALID_TRACE_ID or span_id == _INVALID_SPAN_ID:
        return None
    return TraceContext(f"00-{trace_id}-{span_id}-{flags}", _tracestate(tracestate))


def _tracestate(values: Iterable[str]) -> str:
    """The list-members of every tracestate header, in order, joined; "" if any is malformed or the
    whole is beyond the limits. Empty members (",,") are allowed and dropped."""
    members: list[str] = []
    for value in values:
        if len(value) > MAX_TRACESTATE:
            return ""
        for member in value.split(","):
            member = member.strip(_OWS)
            if not member:
                continue
            key, eq, text = member.partition("=")
            if not eq or not _MEMBER_KEY.match(key) or not _MEMBER_VALUE.match(text):
                return ""
            members.append(member)
    joined = ",".join(members)
    if len(members) > MAX_TRACESTATE_MEMBERS or len(joined) > MAX_TRACESTATE:
        return ""
    return joined
