"""Assertions on rich gRPC errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


def call_error(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> grpc.RpcError:
    try:
        fn(*args, **kwargs)
    except grpc.RpcError as e:
        return e
    raise AssertionError("expected the call to fail")


def violations(err: grpc.RpcError) -> dict[str, str]:
    """Field -> description from the google.rpc.BadRequest detail."""
    st = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert st is not None, "no rich status details"
    out: dict[str, str] = {}
    for d in st.details:
        if d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            d.Unpack(br)
            out.update({v.field: v.description for v in br.field_violations})
    return out


def error_reason(err: grpc.RpcError) -> str:
    st = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert st is not None
    for d in st.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return str(info.reason)
    return ""
