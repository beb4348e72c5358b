"""Which W3C trace contexts a job keeps (domain/trace.py) and how the server reads them from a call's
metadata (tracing.carried): a malformed value is ignored, never an error."""

from __future__ import annotations

import pytest

from jobwarden_server import tracing
from jobwarden_server.domain import trace

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{SPAN_ID}-01"


def test_a_valid_traceparent_is_kept_with_its_ids() -> None:
    context = trace.parse(VALID)
    assert context == trace.TraceContext(VALID, "")
    assert context is not None and (context.trace_id, context.span_id) == (TRACE_ID, SPAN_ID)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        VALID.upper(),  # hex is lowercase only
        f"ff-{TRACE_ID}-{SPAN_ID}-01",  # version ff is forbidden
        f"00-{'0' * 32}-{SPAN_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"00-{TRACE_ID}-{SPAN_ID}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE_ID}-{SPAN_ID}-1",
        f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01",
        f"00-{TRACE_ID}-{SPAN_ID}-01x",
        f"01-{TRACE_ID}-{SPAN_ID}-01-" + "x" * trace.MAX_TRACEPARENT,  # beyond the size limit
    ],
)
def test_a_malformed_traceparent_is_ignored(value: str) -> None:
    assert trace.parse(value, ["vendor=1"]) is None


def test_a_later_version_is_read_as_version_00() -> None:
    assert trace.parse(f"cc-{TRACE_ID}-{SPAN_ID}-03-what-comes-next") == trace.TraceContext(
        f"00-{TRACE_ID}-{SPAN_ID}-03"
    )
    assert trace.parse(f" {VALID}\t") == trace.TraceContext(VALID)


def test_tracestate_members_are_joined_and_empty_ones_dropped() -> None:
    context = trace.parse(VALID, ["congo=t61rcWkgMzE, rojo=00f067aa0ba902b7", ",,tenant@vendor=x y"])
    assert context is not None
    assert context.tracestate == "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,tenant@vendor=x y"


@pytest.mark.parametrize(
    "states",
    [
        ["Upper=1"],  # keys are lowercase
        ["novalue"],
        ["k=a=b"],  # "=" is not allowed in a value
        ["k=a,b"],  # "b" is not a member
        [",".join(f"k{i}=v" for i in range(trace.MAX_TRACESTATE_MEMBERS + 1))],
        ["k=" + "v" * 250, "j=" + "v" * 250, "l=" + "v" * 20],  # members fine, the whole too long
    ],
)
def test_a_tracestate_that_breaks_the_rules_is_dropped_and_the_traceparent_kept(states: list[str]) -> None:
    assert trace.parse(VALID, states) == trace.TraceContext(VALID, "")


def test_metadata_carries_one_traceparent_and_any_tracestates() -> None:
    metadata = [
        ("authorization", "Bearer x"),
        ("Traceparent", VALID),
        ("tracestate", "a=1"),
        ("tracestate", "b=2"),
    ]
    assert tracing.carried(metadata) == trace.TraceContext(VALID, "a=1,b=2")
    assert tracing.carried(None) is None
    assert tracing.carried([("tracestate", "a=1")]) is None
    # Two traceparents contradict each other: neither is trusted.
    assert tracing.carried([("traceparent", VALID), ("traceparent", VALID)]) is None
    assert tracing.carried([("traceparent-bin", b"\x00")]) is None


def test_logs_can_name_the_trace_of_the_rpc_being_served() -> None:
    assert tracing.current_trace_id() is None
    with tracing.rpc_span("/jobwarden.v1.JobService/GetJob", [("traceparent", VALID)]):
        assert tracing.current_trace_id() == TRACE_ID
        assert tracing.incoming() == trace.TraceContext(VALID)
    assert (tracing.current_trace_id(), tracing.incoming()) == (None, None)
