"""Request size limits per field, checked before a servicer sees the request.

gRPC itself only bounds a whole message (64 MB here), so without this a 20 KB id or a
million-character metric reached the services, the database and the error messages. Every
string and repeated field of every request has a deliberate bound, from the table below by
name, with one default for the rest; the services still apply their own, usually tighter,
rules (a strategy name is 1..100 characters, a strategy has at most 20 tags, ...).

Requests are walked through their set fields only (`ListFields`), so a small request costs
microseconds. Client-streaming requests (uploads, pushed bars) are bounded by the message
size and checked by their servicers, message by message.

Before any of that, a unary request is bounded as a whole, in bytes, before it is parsed
(`REQUEST_BYTES_DEFAULT`, 4 MiB; the server-wide gRPC limit of 64 MiB is for the uploads'
messages). Parsing is what costs: a 50 MB request of two thousand parameters with two
thousand choices each took about 200 MB and half a second to parse, only to be refused for
its field bounds. An oversized request is handed on as an empty message of its type, so
authentication, authorization, rate limits and audit treat it like any other call, and is
refused here with INVALID_ARGUMENT naming its size.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

import grpc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from grpc_interceptor import AsyncServerInterceptor

from stratopt.api.memory_trim import trim_soon
from stratopt.errors import FieldViolation, InvalidArgument

MESSAGE_BYTES_MAX = 64 * 1024 * 1024
"""gRPC's own limit on any one message, both ways (server/app.py): an upload's chunks and
batches of bars, a page of bars read."""
REQUEST_BYTES_DEFAULT = 4 * 1024 * 1024
"""Largest unary request, in bytes: the largest legitimate ones (a rule-language definition
of 20,000 characters, a search space of 200 parameters) take a few hundred kilobytes."""
REQUEST_BYTES_LIMITS: Mapping[str, int] = {}
"""Exceptions to the default by method path (`/stratopt.v1.Service/Method`); none needed yet."""

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


def request_bytes_limit(method_name: str) -> int:
    return REQUEST_BYTES_LIMITS.get(method_name, REQUEST_BYTES_DEFAULT)


_oversized: ContextVar[int | None] = ContextVar("stratopt_oversized_request", default=None)
"""Size of this call's unary request when it was over its bound (and so not parsed). Each call
runs in its own asyncio task, which is where the request is deserialized too."""


def bounded(deserialize: Callable[[bytes], Any], limit: int) -> Callable[[bytes], Any]:
    """`deserialize`, except that a request over `limit` bytes is not parsed: the call gets an
    empty message of its type and is refused by `RequestLimitsInterceptor`."""

    def parse(raw: bytes) -> Any:
        if len(raw) > limit:
            _oversized.set(len(raw))
            return deserialize(b"")
        return deserialize(raw)

    return parse


def _with_deserializer(
    handler: grpc.RpcMethodHandler, deserialize: Callable[[bytes], Any]
) -> grpc.RpcMethodHandler:
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            handler.unary_unary,
            request_deserializer=deserialize,
            response_serializer=handler.response_serializer,
        )
    return grpc.unary_stream_rpc_method_handler(
        handler.unary_stream,
        request_deserializer=deserialize,
        response_serializer=handler.response_serializer,
    )


class RequestLimitsInterceptor(AsyncServerInterceptor):
    """The innermost step: a request that passed authentication, authorization and rate
    limits is checked against its size and field bounds before its servicer runs."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """The size bound goes into the request's deserializer, which every interceptor
        outside this one passes on unchanged."""
        handler = await super().intercept_service(continuation, handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        limit = request_bytes_limit(handler_call_details.method)
        return _with_deserializer(handler, bounded(handler.request_deserializer, limit))

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext,
        method_name: str,
    ) -> Any:
        if isinstance(request_or_iterator, Message):
            if (size := _oversized.get()) is not None:
                limit = request_bytes_limit(method_name)
                trim_soon()  # gRPC's buffers of the request, freed but kept by malloc
                raise InvalidArgument(
                    f"request of {size:,} bytes is over the {limit:,} bytes this method takes"
                )
            check(request_or_iterator)
        result = method(request_or_iterator, context)
        if hasattr(result, "__aiter__"):
            return result
        return await result
