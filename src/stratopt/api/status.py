"""Turns domain errors into rich gRPC statuses (google.rpc.Status with details)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from stratopt.errors import (
    InvalidArgument,
    ResourceExhausted,
    StratoptError,
    Unavailable,
    clip,
)

DOMAIN = "stratopt.dev"

# What one status may carry, whatever the request held: a default client refuses trailing
# metadata over 16 KB (the message travels twice: grpc-message, percent-encoded, and inside
# grpc-status-details-bin, base64), so an error about a huge input must stay small.
MAX_MESSAGE = 500
MAX_VIOLATIONS = 20
MAX_FIELD = 120
MAX_DESCRIPTION = 300


MAX_MESSAGE_BYTES = 1_000
MAX_DETAILS_BYTES = 4_000
"""UTF-8 bytes: 500 characters of emoji would be 2 KB, and 6 KB once percent-encoded."""


def _bounded(text: str, chars: int, max_bytes: int) -> str:
    text = clip(text, chars)
    raw = text.encode()
    if len(raw) <= max_bytes:
        return text
    return raw[: max_bytes - 3].decode(errors="ignore") + "..."


def to_rpc_status(err: StratoptError) -> status_pb2.Status:
    code = getattr(code_pb2, err.code_name)
    st = status_pb2.Status(code=code, message=_bounded(err.message, MAX_MESSAGE, MAX_MESSAGE_BYTES))
    shown = 0
    if isinstance(err, InvalidArgument) and err.violations:
        br = error_details_pb2.BadRequest()
        for v in err.violations[:MAX_VIOLATIONS]:
            br.field_violations.add(
                field=_bounded(v.field, MAX_FIELD, 2 * MAX_FIELD),
                description=_bounded(v.description, MAX_DESCRIPTION, 2 * MAX_DESCRIPTION),
            )
        while br.ByteSize() > MAX_DETAILS_BYTES and len(br.field_violations) > 1:
            del br.field_violations[-1]
        shown = len(br.field_violations)
        st.details.add().Pack(br)
    if isinstance(err, ResourceExhausted | Unavailable):
        secs = max(err.retry_after_seconds, 0.001)
        ri = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(secs), nanos=int((secs % 1) * 1e9))
        )
        st.details.add().Pack(ri)
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN)
    if isinstance(err, InvalidArgument) and len(err.violations) > shown:
        # Only the first problems are listed; say how many there were in all.
        info.metadata["violations"] = str(len(err.violations))
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
