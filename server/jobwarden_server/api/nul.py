"""Finds a NUL character (U+0000) anywhere in a request's strings.

A NUL is valid protobuf and valid UTF-8, but PostgreSQL can store it neither in text nor in jsonb, and
C-based clients truncate at it. So the guard refuses it in every string of every request, map keys,
Struct keys and values included, before any handler runs: one rule, the same answer on every store.
A batch call (CreateJobs) is checked item by item by its servicer instead, so that only the item
holding the NUL is refused.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import message, struct_pb2
from google.protobuf.descriptor import FieldDescriptor

from jobwarden_server.domain.errors import InvalidArgument

_NUL = "\x00"
_STRING = FieldDescriptor.TYPE_STRING
_MESSAGE = FieldDescriptor.TYPE_MESSAGE


MAX_KEY = 40
MAX_PATH = 256
"""The path travels back in response headers (ErrorInfo, BadRequest, the message), which HTTP/2 bounds:
map and Struct keys in it are cut to MAX_KEY characters and the whole path to its last MAX_PATH."""


def refuse_nul(request: message.Message) -> None:
    """InvalidArgument naming the first string of `request` that holds U+0000, if one does."""
    field = nul_field(request)
    if field is not None:
        raise InvalidArgument(field, "must not contain the NUL character (U+0000)")


def nul_field(request: message.Message) -> str | None:
    """The path of the first string holding U+0000 (`labels[k]`, `parameters.size.unit`), or None."""
    path = _in_message(request, "")
    if path is not None and len(path) > MAX_PATH:
        return "..." + path[-MAX_PATH:]
    return path


def _join(path: str, name: str) -> str:
    return f"{path}.{name[:MAX_KEY]}" if path else name


def _in_message(msg: message.Message, path: str) -> str | None:
    if isinstance(msg, struct_pb2.Struct):
        return _in_struct(msg, path)
    if isinstance(msg, struct_pb2.ListValue):
        return _in_list(msg, path)
    if isinstance(msg, struct_pb2.Value):
        return _in_value(msg, path)
    for field, value in msg.ListFields():
        found = _in_field(field, value, _join(path, field.name))
        if found is not None:
            return found
    return None


def _in_field(field: FieldDescriptor, value: Any, path: str) -> str | None:
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        return _in_map(entry.fields_by_name["value"], value, path)
    if field.is_repeated:
        for i, item in enumerate(value):
            found = _in_single(field, item, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    return _in_single(field, value, path)


def _in_single(field: FieldDescriptor, value: Any, path: str) -> str | None:
    if field.type == _STRING:
        return path if _NUL in value else None
    if field.type == _MESSAGE:
        return _in_message(value, path)
    return None


def _in_map(value_field: FieldDescriptor, value: Any, path: str) -> str | None:
    for key, item in value.items():
        if isinstance(key, str) and _NUL in key:
            return path  # a key cannot name itself readably; the map's field says where
        found = _in_single(value_field, item, f"{path}[{str(key)[:MAX_KEY]}]")
        if found is not None:
            return found
    return None


def _in_struct(struct: struct_pb2.Struct, path: str) -> str | None:
    for key, item in struct.fields.items():
        if _NUL in key:
            return path
        found = _in_value(item, _join(path, key))
        if found is not None:
            return found
    return None


def _in_list(values: struct_pb2.ListValue, path: str) -> str | None:
    for i, item in enumerate(values.values):
        found = _in_value(item, f"{path}[{i}]")
        if found is not None:
            return found
    return None


def _in_value(value: struct_pb2.Value, path: str) -> str | None:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return path if _NUL in value.string_value else None
    if kind == "struct_value":
        return _in_struct(value.struct_value, path)
    if kind == "list_value":
        return _in_list(value.list_value, path)
    return None
