"""Turns domain errors into rich gRPC statuses (google.rpc.Status with details)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from stratopt.errors import InvalidArgument, ResourceExhausted, StratoptError

DOMAIN = "stratopt.dev"


def to_rpc_status(err: StratoptError) -> status_pb2.Status:
    code = getattr(code_pb2, err.code_name)
    st = status_pb2.Status(code=code, message=err.message)
    if isinstance(err, InvalidArgument) and err.violations:
        br = error_details_pb2.BadRequest()
        for v in err.violations:
            br.field_violations.add(field=v.field, description=v.description)
        st.details.add().Pack(br)
    if isinstance(err, ResourceExhausted):
        secs = max(err.retry_after_seconds, 0.001)
        ri = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(secs), nanos=int((secs % 1) * 1e9))
        )
        st.details.add().Pack(ri)
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN)
    st.details.add().Pack(info)
    return st


class _Status(grpc.Status):  # type: ignore[misc]
    """A status whose trailers also carry metadata set earlier in the call."""

    def __init__(
        self, code: grpc.StatusCode, details: str, trailing_metadata: tuple[Any, ...]
    ) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def to_grpc_status(
    err: StratoptError, extra_trailers: Sequence[tuple[str, Any]] = ()
) -> grpc.Status:
    """The rich status; `extra_trailers` (e.g. x-ratelimit-*) ride along, because aborting
    replaces whatever trailing metadata the call had set."""
    st = rpc_status.to_status(to_rpc_status(err))
    if not extra_trailers:
        return st
    keep = tuple((k, v) for k, v in extra_trailers if k != "grpc-status-details-bin")
    return _Status(st.code, st.details, tuple(st.trailing_metadata) + keep)


def internal_status() -> grpc.Status:
    """What a client sees for a bug: no stack trace, no detail, just a reference to the logs."""
    st = status_pb2.Status(
        code=code_pb2.INTERNAL, message="internal error; the server logged the details"
    )
    return rpc_status.to_status(st)
