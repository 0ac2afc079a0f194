"""gRPC-Web through Envoy's grpc_web filter, framed by hand as a browser client would."""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Iterator

import pytest
from google.rpc import error_details_pb2, status_pb2
from stratopt.v1 import strategy_pb2 as pb

from stratopt.server.gateway import Gateway
from tests.conftest import LiveServer
from tests.e2e.rest_client import Response, Rest

pytestmark = pytest.mark.e2e
TRAILER_FLAG = 0x80


def frame(payload: bytes, flag: int = 0) -> bytes:
    return struct.pack(">BI", flag, len(payload)) + payload


def frames(body: bytes) -> Iterator[tuple[int, bytes]]:
    i = 0
    while i < len(body):
        flag, n = struct.unpack(">BI", body[i : i + 5])
        yield flag, body[i + 5 : i + 5 + n]
        i += 5 + n


def grpc_web_call(
    rest: Rest, method: str, request: bytes, token: str, *, text: bool = False
) -> Response:
    body = frame(request)
    kind = "application/grpc-web-text" if text else "application/grpc-web+proto"
    return rest.call(
        "POST",
        f"/stratopt.v1.StrategyService/{method}",
        raw=base64.b64encode(body) if text else body,
        token=token,
        headers={
            "content-type": kind,
            "accept": kind,
            "x-grpc-web": "1",
            "x-user-agent": "grpc-web-python-test/1.0",
            "origin": "http://localhost:5173",
        },
    )


def messages_and_status(resp: Response) -> tuple[list[bytes], dict[str, str]]:
    """Data frames, and the grpc-* status from the headers (trailers-only) or trailer frame."""
    status = {k: v for k, v in resp.headers.items() if k.startswith("grpc-")}
    messages: list[bytes] = []
    for flag, payload in frames(resp.body):
        if flag & TRAILER_FLAG:
            for line in payload.decode().split("\r\n"):
                if line:
                    key, _, value = line.partition(":")
                    status[key.strip().lower()] = value.strip()
        else:
            messages.append(payload)
    return messages, status


def test_unary_call_over_grpc_web(gateway: Gateway, live_server: LiveServer) -> None:
    rest = Rest(gateway.url)
    req = pb.GetStrategyTypeRequest(name="sma_crossover").SerializeToString()
    r = grpc_web_call(rest, "GetStrategyType", req, live_server.token("viewer"))
    assert r.status == 200
    assert r.header("content-type") == "application/grpc-web+proto"
    assert r.header("access-control-allow-origin") == "http://localhost:5173"
    messages, status = messages_and_status(r)
    assert status["grpc-status"] == "0"
    assert len(messages) == 1
    reply = pb.GetStrategyTypeResponse.FromString(messages[0])
    assert reply.strategy_type.name == "sma_crossover"
    assert {"fast", "slow"} <= {p.name for p in reply.strategy_type.parameters}


def test_grpc_web_text_mode(gateway: Gateway, live_server: LiveServer) -> None:
    """The base64 variant that browsers without binary streaming use."""
    req = pb.ListStrategyTypesRequest().SerializeToString()
    token = live_server.token("viewer")
    r = grpc_web_call(Rest(gateway.url), "ListStrategyTypes", req, token, text=True)
    assert r.status == 200 and r.header("content-type").startswith("application/grpc-web-text")
    # Each flushed chunk is base64 on its own, padding included.
    chunks = re.findall(rb"[^=]*=*", r.body)
    decoded = Response(r.status, r.headers, b"".join(base64.b64decode(c) for c in chunks if c))
    messages, status = messages_and_status(decoded)
    assert status["grpc-status"] == "0"
    types = pb.ListStrategyTypesResponse.FromString(messages[0]).strategy_types
    assert "sma_crossover" in {t.name for t in types}


def test_grpc_web_errors_carry_rich_details(gateway: Gateway, live_server: LiveServer) -> None:
    req = pb.GetStrategyTypeRequest(name="no_such_type").SerializeToString()
    r = grpc_web_call(Rest(gateway.url), "GetStrategyType", req, live_server.token("viewer"))
    messages, status = messages_and_status(r)
    assert messages == []
    assert status["grpc-status"] == "5"  # NOT_FOUND, as a gRPC code, not an HTTP one
    bin64 = status["grpc-status-details-bin"]
    st = status_pb2.Status.FromString(base64.b64decode(bin64 + "=" * (-len(bin64) % 4)))
    info = error_details_pb2.ErrorInfo()
    assert any(d.Unpack(info) for d in st.details)
    assert info.reason == "NOT_FOUND"


def test_grpc_web_without_credentials(gateway: Gateway) -> None:
    req = pb.ListStrategyTypesRequest().SerializeToString()
    _, status = messages_and_status(grpc_web_call(Rest(gateway.url), "ListStrategyTypes", req, ""))
    assert status["grpc-status"] == "16"
