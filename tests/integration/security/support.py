"""Shared helpers for the security tests: generic calls from descriptors, users, keys."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from stratopt.v1 import auth_pb2 as apb
from stratopt.v1 import auth_pb2_grpc as apbg
from stratopt.v1 import common_pb2 as c

from stratopt.api.authz import method_path
from tests.conftest import LiveServer

Metadata = list[tuple[str, str]]
STREAMING = "STREAMING"
"""A server stream that sent its headers and stayed open: the call was let through."""


def request_for(method: MethodDescriptor, **fields: Any) -> Message:
    cls = message_factory.GetMessageClass(method.input_type)
    return cls(**fields)


def invoke(
    channel: grpc.Channel,
    method: MethodDescriptor,
    request: Message,
    metadata: Metadata,
    timeout: float = 15.0,
) -> str:
    """Call any RPC generically; return the status code name (or STREAMING)."""
    path = method_path(method)
    ser = type(request).SerializeToString
    des = message_factory.GetMessageClass(method.output_type).FromString
    try:
        if method.client_streaming:
            channel.stream_unary(path, ser, des)(
                iter([request]), metadata=metadata, timeout=timeout
            )
        elif method.server_streaming:
            return _stream_status(channel.unary_stream(path, ser, des), request, metadata, timeout)
        else:
            channel.unary_unary(path, ser, des)(request, metadata=metadata, timeout=timeout)
    except grpc.RpcError as e:
        return str(e.code().name)
    return "OK"


def _stream_status(fn: Any, request: Message, metadata: Metadata, timeout: float) -> str:
    """Server streams may stay open forever once allowed (a notification feed with nothing
    to say). A refusal arrives within milliseconds, so a stream that neither produced a
    message nor ended within a second was let through."""
    call = fn(request, metadata=metadata, timeout=timeout)
    outcome: list[str] = []

    def first() -> None:
        try:
            next(call)
            outcome.append("OK")
        except StopIteration:
            outcome.append("OK")
        except grpc.RpcError as e:
            outcome.append(str(e.code().name))

    reader = threading.Thread(target=first, daemon=True)
    reader.start()
    reader.join(1.0)
    call.cancel()
    reader.join()
    return outcome[0] if outcome and outcome[0] != "CANCELLED" else STREAMING


def auth(srv: LiveServer) -> tuple[grpc.Channel, apbg.AuthServiceStub]:
    ch = srv.channel()
    return ch, apbg.AuthServiceStub(ch)


def bearer(token: str) -> Metadata:
    return [("authorization", f"Bearer {token}")]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_user(srv: LiveServer, role: int = c.ROLE_TRADER, prefix: str = "u") -> tuple[str, str, str]:
    """Create a user as the demo admin; returns (username, password, user_id)."""
    username = unique(prefix)
    password = "correct horse battery " + uuid.uuid4().hex[:6]
    with srv.channel() as ch:
        reply = apbg.AuthServiceStub(ch).CreateUser(
            apb.CreateUserRequest(user=apb.User(username=username, role=role), password=password),
            metadata=srv.md("admin"),
        )
    return username, password, reply.user.id


def login(srv: LiveServer, username: str, password: str) -> apb.LoginResponse:
    with srv.channel() as ch:
        reply: apb.LoginResponse = apbg.AuthServiceStub(ch).Login(
            apb.LoginRequest(username=username, password=password)
        )
        return reply


def retry_delay(err: grpc.RpcError) -> float:
    """Seconds from the google.rpc.RetryInfo detail; fails when absent."""
    st = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert st is not None, "no rich status"
    for d in st.details:
        if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            d.Unpack(info)
            return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    raise AssertionError("no RetryInfo detail")
