"""Request size limits per field, checked before a servicer sees the request.

gRPC itself only bounds a whole message (64 MB here), so without this a 20 KB id or a
million-character metric reached the services, the database and the error messages. Every
string and repeated field of every request has a deliberate bound, from the table below by
name, with one default for the rest; the services still apply their own, usually tighter,
rules (a strategy name is 1..100 characters, a strategy has at most 20 tags, ...).

Requests are walked through their set fields only (`ListFields`), so a small request costs
microseconds. Client-streaming requests (uploads, pushed bars) are bounded by the message
size and checked by their servicers, message by message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from grpc_interceptor import AsyncServerInterceptor

from stratopt.errors import FieldViolation, InvalidArgument

ID_MAX = 64
"""Ids are 32 hex characters; names of built-in things (strategy types, templates) shorter."""

STRING_LIMITS: Mapping[str, int] = {
    "description": 4_000,
    "page_token": 4_096,
    # Far above the password policy's 1,024: a login that fails for any reason must look
    # like every other failed login (UNAUTHENTICATED), so the service judges passwords.
    "password": 65_536,
    "current_password": 65_536,
    "new_password": 65_536,
    "refresh_token": 256,
    "query": 200,
    "url": 2_048,
    "secret": 1_024,
    "etag": 64,
    "email": 254,
    # Rule-language text (rules.proto). Above the language's own 20,000-character limit, so
    # an over-long definition is refused by the parser with a line:column like any other.
    "source": 200_000,
}
STRING_DEFAULT = 1_000
"""Names, symbols, metrics, timeframes, titles, parameter values: all far shorter in use."""

REPEATED_LIMITS: Mapping[str, int] = {
    "bars": 1_000_000,
    "parameters": 200,
    "constraints": 100,
    "objectives": 20,
    "search_space": 200,
    "alert_rules": 100,
}
REPEATED_DEFAULT = 1_000

_STRING = FieldDescriptor.TYPE_STRING
_MESSAGE = FieldDescriptor.TYPE_MESSAGE
MAX_REPORTED = 20


def string_limit(name: str) -> int:
    if name == "id" or name.endswith(("_id", "_ids")):
        return ID_MAX
    return STRING_LIMITS.get(name, STRING_DEFAULT)


def _repeated(f: FieldDescriptor) -> bool:
    return bool(f.is_repeated)


def _is_map(f: FieldDescriptor) -> bool:
    return f.message_type is not None and bool(f.message_type.GetOptions().map_entry)


def violations(msg: Message, prefix: str = "") -> list[FieldViolation]:
    """Every field of `msg` over its bound, named by its path (`spec.constraints[3].metric`)."""
    out: list[FieldViolation] = []
    _walk(msg, prefix, out)
    return out


def _walk(msg: Message, prefix: str, out: list[FieldViolation]) -> None:
    for f, value in msg.ListFields():
        if len(out) >= MAX_REPORTED:
            return
        path = f"{prefix}{f.name}"
        if f.message_type is not None and f.message_type.full_name.startswith("google."):
            continue  # well-known types: timestamps, durations, field masks (checked elsewhere)
        if _is_map(f):
            _check_map(f, value, path, out)
        elif _repeated(f):
            limit = REPEATED_LIMITS.get(f.name, REPEATED_DEFAULT)
            if len(value) > limit:
                out.append(FieldViolation(path, f"at most {limit:,} items"))
                continue
            for i, item in enumerate(value):
                _one(f, item, f"{path}[{i}]", out)
        else:
            _one(f, value, path, out)


def _one(f: FieldDescriptor, value: Any, path: str, out: list[FieldViolation]) -> None:
    if f.type == _STRING:
        limit = string_limit(f.name)
        if len(value) > limit:
            out.append(FieldViolation(path, f"at most {limit:,} characters"))
    elif f.type == _MESSAGE:
        _walk(value, f"{path}.", out)


def _check_map(f: FieldDescriptor, value: Any, path: str, out: list[FieldViolation]) -> None:
    limit = REPEATED_LIMITS.get(f.name, REPEATED_DEFAULT)
    if len(value) > limit:
        out.append(FieldViolation(path, f"at most {limit:,} entries"))
        return
    assert f.message_type is not None  # a map field
    value_field = f.message_type.fields_by_name["value"]
    for key, item in value.items():
        if isinstance(key, str) and len(key) > STRING_DEFAULT:
            out.append(FieldViolation(path, f"keys of at most {STRING_DEFAULT:,} characters"))
            return
        _one(value_field, item, f"{path}[{str(key)[:40]!r}]", out)


def check(msg: Message) -> None:
    """Raises InvalidArgument naming the fields over their bounds."""
    found = violations(msg)
    if found:
        raise InvalidArgument.of(found)


class RequestLimitsInterceptor(AsyncServerInterceptor):
    """The innermost step: a request that passed authentication, authorization and rate
    limits is checked against the field bounds before its servicer runs."""

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext,
        method_name: str,
    ) -> Any:
        if isinstance(request_or_iterator, Message):
            check(request_or_iterator)
        result = method(request_or_iterator, context)
        if hasattr(result, "__aiter__"):
            return result
        return await result
