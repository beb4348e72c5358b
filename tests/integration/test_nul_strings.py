"""A NUL character (U+0000) in any string of any request is INVALID_ARGUMENT naming the field, and
changes nothing, the same on every store (PostgreSQL can store NUL neither in text nor in jsonb). In a
batch (CreateJobs) it is the item holding it that is refused, with that status as its result.

Every RPC and every string slot of its request (fields, repeated items, map keys and values, Struct
keys and values) comes from the proto descriptors, so a string added to the protos is covered too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from google.protobuf import descriptor, message
from google.protobuf.descriptor import FieldDescriptor
from support import anyrpc, flows, rpc

from jobwarden.v1 import job_service_pb2
from jobwarden.v1 import worker_service_pb2 as pb

NUL = "a\x00b"
ITEMIZED = {"CreateJobs"}
"""Batch calls: each item is refused on its own, in its result, while the call itself succeeds."""
Mutate = Callable[[message.Message], None]
Getter = Callable[[message.Message], message.Message]


def _slots(desc: descriptor.Descriptor, path: str, get: Getter) -> Iterator[tuple[str, Mutate]]:
    """(the field path the server must name, a change putting a NUL there) for each string slot."""
    for field in desc.fields:
        name = f"{path}.{field.name}" if path else field.name
        yield from _field_slots(field, name, get)


def _field_slots(field: FieldDescriptor, name: str, get: Getter) -> Iterator[tuple[str, Mutate]]:
    sub = field.message_type
    attr = field.name
    if sub is not None and sub.GetOptions().map_entry:
        assert sub.fields_by_name["value"].type == FieldDescriptor.TYPE_STRING, f"extend the test: {name}"
        yield name, lambda m: getattr(get(m), attr).update({NUL: "v"})
        yield f"{name}[k]", lambda m: getattr(get(m), attr).update({"k": NUL})
    elif field.type == FieldDescriptor.TYPE_STRING:
        if field.is_repeated:
            yield f"{name}[1]", lambda m: getattr(get(m), attr).extend(["ok", NUL])
        else:
            yield name, lambda m: setattr(get(m), attr, NUL)
    elif sub is not None and sub.full_name == "google.protobuf.Struct":
        yield name, lambda m: getattr(get(m), attr).update({NUL: 1})
        yield f"{name}.k", lambda m: getattr(get(m), attr).update({"k": NUL})
        yield f"{name}.k.deep[1]", lambda m: getattr(get(m), attr).update({"k": {"deep": [1, NUL]}})
    elif sub is not None and sub.full_name == "google.protobuf.Value":  # any JSON value
        yield name, lambda m: setattr(getattr(get(m), attr), "string_value", NUL)
        yield f"{name}.k", lambda m: getattr(get(m), attr).struct_value.update({"k": NUL})
        yield f"{name}[1]", lambda m: getattr(get(m), attr).list_value.extend(["ok", NUL])
    elif sub is not None and field.is_repeated:
        yield from _slots(sub, f"{name}[0]", lambda m: getattr(get(m), attr).add())
    elif sub is not None:
        yield from _slots(sub, name, lambda m: getattr(get(m), attr))


def _cases(rpc_: anyrpc.Rpc) -> list[tuple[str, Mutate]]:
    return list(_slots(rpc_.method.input_type, "", lambda m: m))


def test_every_request_has_string_slots_to_try() -> None:
    for rpc_ in anyrpc.RPCS:
        assert _cases(rpc_), f"{rpc_} has no string field: nothing to refuse there"


@pytest.mark.parametrize("rpc_", anyrpc.RPCS, ids=str)
async def test_a_nul_in_any_string_is_refused_and_changes_nothing(
    srv: object, stubs: rpc.Stubs, rpc_: anyrpc.Rpc
) -> None:
    job = await flows.create(stubs, labels={"k": "v"})
    claim = await flows.claim_one(stubs)
    before = (await flows.get(stubs, job.id), await flows.events(stubs, job.id))
    for path, mutate in _cases(rpc_):
        if rpc_.name == "Work":
            await _in_a_session(stubs, path, mutate)
            continue
        # The job's real id and lease where the request has them: a refusal must still change nothing.
        known = {"job_id": job.id, "lease_token": claim.lease_token}
        fields = rpc_.method.input_type.fields_by_name
        request = rpc_.request_type(**{k: v for k, v in known.items() if k in fields})
        mutate(request)
        answer = await anyrpc.call(stubs.channel, rpc_, request)
        if rpc_.name in ITEMIZED:
            answer = _first_item(answer)
        assert (answer.code, answer.reason, answer.fields) == (
            "INVALID_ARGUMENT",
            "INVALID_ARGUMENT",
            (path,),
        ), (
            path,
            answer,
        )
        assert "U+0000" in answer.message
    assert (await flows.get(stubs, job.id), await flows.events(stubs, job.id)) == before


async def _in_a_session(stubs: rpc.Stubs, path: str, mutate: Mutate) -> None:
    """A NUL in a Work session's start or holding ends the session; one in a step is that step's
    refusal (named as the unary call would name it), and the session goes on."""
    request = pb.WorkRequest(start=pb.WorkStart(worker_id="w"))
    if not path.startswith("start."):
        request.start.job_types.append("nothing.here")
    mutate(request)
    answer = await anyrpc.call(stubs.channel, anyrpc.BY_NAME["Work"], request)
    if not path.startswith("steps[0]."):
        assert (answer.code, answer.fields) == ("INVALID_ARGUMENT", (path,)), (path, answer)
        return
    assert answer.code == "OK", (path, answer)
    [ack] = [anyrpc.ack_answer(ack) for reply in answer.replies for ack in reply.acks]
    within_step = path.removeprefix("steps[0].")
    expected = within_step if within_step == "step_id" else within_step.split(".", 1)[1]
    assert (ack.code, ack.reason, ack.fields) == ("INVALID_ARGUMENT", "INVALID_ARGUMENT", (expected,)), path
    assert "U+0000" in ack.message


def _first_item(answer: anyrpc.Answer) -> anyrpc.Answer:
    """The refusal of a batch's first (and only) item, as if it were the call's."""
    assert answer.ok, answer
    return anyrpc.status_answer(answer.replies[0].results[0].error)


async def test_a_nul_under_a_huge_key_is_named_within_header_limits(stubs: rpc.Stubs) -> None:
    # The field path travels back in response headers: keys are cut, so the refusal itself fits.
    key = "z" * 20_000
    request = job_service_pb2.CreateJobRequest(job_type="demo", labels={key: NUL})
    answer = await anyrpc.call(stubs.channel, anyrpc.BY_NAME["CreateJob"], request)
    assert (answer.code, answer.fields) == ("INVALID_ARGUMENT", (f"labels[{'z' * 40}]",))
    nested = job_service_pb2.CreateJobRequest(job_type="demo")
    nested.parameters.update({key: {key: NUL}})
    answer = await anyrpc.call(stubs.channel, anyrpc.BY_NAME["CreateJob"], nested)
    assert (answer.code, answer.fields) == ("INVALID_ARGUMENT", (f"parameters.{'z' * 40}.{'z' * 40}",))
