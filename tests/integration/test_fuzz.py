"""Fuzzing every RPC's request, generated from the descriptors (issue 14, "What to build" 6).

Each RPC gets requests built by hypothesis from its input message: huge and hostile strings
(SQL, paths, format strings, NUL, long Unicode), NaN and infinities, extreme integers and
timestamps, unknown enum numbers, long lists. Whatever the request, the server must answer
with a deliberate status: never INTERNAL or UNKNOWN, never a status whose metadata a default
client refuses, and its memory must stay bounded.

`make test` runs a few examples per RPC; `make fuzz` runs many (STRATOPT_FUZZ_EXAMPLES).
The server of this module is its own: the calls are made as the demo admin, who can reach
every RPC, and may change that server's data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from stratopt.api.authz import contract_methods, method_path
from tests.conftest import LiveServer, start_server, stop_server

EXAMPLES = int(os.environ.get("STRATOPT_FUZZ_EXAMPLES", "6"))
METADATA_BUDGET = 16 * 1024  # a default client's hard limit; the server stays far below
MEMORY_BUDGET_MB = 1_500
REQUEST_BUDGET_BYTES = 60 * 1024 * 1024
"""Largest request built: under the server's 64 MiB message limit (larger ones are gRPC's own
refusal). Long lists of long lists of long strings would otherwise run to hundreds of GB and
take the test process, not the server, out of memory."""
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
TIMEOUT_S = 20.0

F = FieldDescriptor
HOSTILE = [
    "",
    " ",
    "' OR 1=1 --",
    "'; DROP TABLE users; --",
    '" OR ""="',
    "%",
    "_",
    "\\",
    "../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "/dev/zero",
    "%s%s%s%n",
    "{0}{1}",
    "${jndi:ldap://x}",
    "<script>alert(1)</script>",
    "\x00",
    "a\x00b",
    "\u202e\u0000\ufeff",
    "NaN",
    "-1",
    "9" * 40,
    "sma_crossover",
    "create_time desc",
    "x" * 70_000,
    "é" * 30_000,
    "🚀" * 10_000,
]
INT_EDGES = {
    F.TYPE_INT32: (-(2**31), 2**31 - 1),
    F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    F.TYPE_INT64: (-(2**63), 2**63 - 1),
    F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    F.TYPE_UINT32: (0, 2**32 - 1),
    F.TYPE_FIXED32: (0, 2**32 - 1),
    F.TYPE_UINT64: (0, 2**64 - 1),
    F.TYPE_FIXED64: (0, 2**64 - 1),
}
TS_SECONDS = [
    -(2**63),
    -62_135_596_801,
    -62_135_596_800,
    -1,
    0,
    1_600_000_000,
    9_223_372_036,
    253_402_300_799,
    253_402_300_800,
    2**63 - 1,
]


REAL_IDS: list[str] = []
"""Ids of things that exist on the fuzzed server (a dataset, a strategy, a backtest, a
job), so hostile values also reach the code behind a successful lookup."""


def strings() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40))


def ids() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(REAL_IDS), strings()) if REAL_IDS else strings()


def integers(kind: int) -> st.SearchStrategy[int]:
    lo, hi = INT_EDGES[kind]
    edges = [lo, hi, 0, 1, -1, 5_000_000, 100_001] if lo < 0 else [lo, hi, 0, 1, 5_000_000]
    return st.one_of(st.sampled_from([e for e in edges if lo <= e <= hi]), st.integers(lo, hi))


def doubles() -> st.SearchStrategy[float]:
    edges = [float("nan"), float("inf"), -float("inf"), 5e-324, -0.0, 1e308, -1e308, 0.5]
    return st.one_of(st.sampled_from(edges), st.floats(allow_nan=True, allow_infinity=True))


def scalar(f: FieldDescriptor) -> st.SearchStrategy[Any]:
    if f.type == F.TYPE_STRING and (f.name == "id" or f.name.endswith(("_id", "_ids"))):
        return ids()
    if f.type == F.TYPE_STRING:
        return strings()
    if f.type == F.TYPE_BYTES:
        return st.one_of(st.binary(max_size=64), st.just(b"\x00" * 100_000), st.just(b"PAR1"))
    if f.type == F.TYPE_BOOL:
        return st.booleans()
    if f.type in (F.TYPE_DOUBLE, F.TYPE_FLOAT):
        return doubles() if f.type == F.TYPE_DOUBLE else st.floats(width=32)
    if f.type == F.TYPE_ENUM:
        numbers = [v.number for v in f.enum_type.values]
        return st.sampled_from([*numbers, 999, -1])
    return integers(f.type)


def well_known(d: Descriptor) -> st.SearchStrategy[dict[str, Any]] | None:
    if d.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        return st.fixed_dictionaries(
            {
                "seconds": st.sampled_from(TS_SECONDS),
                "nanos": st.sampled_from([0, 1, 999_999_999, -1, 2**31 - 1, -(2**31)]),
            }
        )
    if d.full_name == "google.protobuf.FieldMask":
        return st.fixed_dictionaries({"paths": st.lists(strings(), max_size=3)})
    return None


def message(d: Descriptor, depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Field values for a message of type `d` as a dict (set fields only)."""
    special = well_known(d)
    if special is not None:
        return special
    if depth > 3:
        return st.just({})
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for f in d.fields:
        value = field_values(f, depth)
        if value is not None:
            fields[f.name] = value
    return st.fixed_dictionaries({}, optional=fields)


def field_values(f: FieldDescriptor, depth: int) -> st.SearchStrategy[Any] | None:
    mt = f.message_type
    if mt is not None and mt.GetOptions().map_entry:
        key, value = mt.fields_by_name["key"], mt.fields_by_name["value"]
        values = message(value.message_type, depth + 1) if value.message_type else scalar(value)
        return st.dictionaries(scalar(key), values, max_size=3)
    one = message(mt, depth + 1) if mt is not None else scalar(f)
    if f.is_repeated:
        return st.one_of(
            st.lists(one, max_size=3),
            st.builds(lambda item: [item] * 2_000, one),  # a long list of one element
        )
    return one


def approx_bytes(value: Any, seen: dict[int, int] | None = None) -> int:
    """About `value`'s encoded size, at most; the items of a long list (one item repeated) are
    sized once."""
    seen = {} if seen is None else seen
    if id(value) in seen:
        return seen[id(value)]
    if isinstance(value, str):
        size = len(value) if value.isascii() else 4 * len(value)
    elif isinstance(value, bytes):
        size = len(value)
    elif isinstance(value, dict):
        size = sum(approx_bytes(k, seen) + approx_bytes(v, seen) + 8 for k, v in value.items())
    elif isinstance(value, list):
        size = sum(approx_bytes(item, seen) + 8 for item in value)
    else:
        size = 12
    seen[id(value)] = size
    return size


def build(cls: type[Message], values: dict[str, Any]) -> Message:
    msg = cls()
    fill(msg, values)
    return msg


def fill(msg: Message, values: dict[str, Any]) -> None:
    for name, value in values.items():
        f = msg.DESCRIPTOR.fields_by_name[name]
        target = getattr(msg, name) if (f.message_type or f.is_repeated) else None
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            value_field = f.message_type.fields_by_name["value"]
            for k, v in value.items():
                if value_field.message_type is not None:
                    fill(target[k], v)  # type: ignore[index]
                else:
                    target[k] = v  # type: ignore[index]
        elif f.is_repeated:
            for item in value:
                if f.message_type is not None:
                    fill(target.add(), item)  # type: ignore[union-attr]
                else:
                    target.append(item)  # type: ignore[union-attr]
        elif f.message_type is not None:
            fill(target, value)  # type: ignore[arg-type]
        else:
            try:
                setattr(msg, name, value)
            except ValueError:  # e.g. an unpaired surrogate in a string
                continue
        if f.containing_oneof is not None:
            break  # one member of a oneof is enough


def memory_mb(srv: LiveServer) -> float:
    for line in Path(f"/proc/{srv.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def call(channel: grpc.Channel, method: MethodDescriptor, request: Message, md: Any) -> None:
    """Calls any RPC; asserts the answer is deliberate (raises AssertionError if not)."""
    path = method_path(method)
    ser = type(request).SerializeToString
    des = message_factory.GetMessageClass(method.output_type).FromString
    try:
        if method.client_streaming:
            channel.stream_unary(path, ser, des)(
                iter([request, request]), metadata=md, timeout=TIMEOUT_S
            )
        elif method.server_streaming:
            stream = channel.unary_stream(path, ser, des)(request, metadata=md, timeout=2.0)
            for i, _ in enumerate(stream):
                if i >= 3:
                    stream.cancel()
                    break
        else:
            channel.unary_unary(path, ser, des)(request, metadata=md, timeout=TIMEOUT_S)
    except grpc.RpcError as e:
        code = e.code()  # type: ignore[attr-defined]
        details = e.details() or ""  # type: ignore[attr-defined]
        if method.server_streaming and code in (
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.CANCELLED,
        ):
            return  # a stream that stayed open: it was let through
        assert code not in NEVER, f"{path}: {code.name} {details[:300]}"
        assert "metadata size exceeds" not in details, f"{path}: {details[:300]}"
        size = sum(len(k) + len(v) for k, v in (e.trailing_metadata() or ()))  # type: ignore[attr-defined]
        assert size <= METADATA_BUDGET, f"{path}: {size} bytes of trailing metadata"
        assert code != grpc.StatusCode.DEADLINE_EXCEEDED, f"{path}: no answer in {TIMEOUT_S}s"


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = start_server(tmp_path_factory.mktemp("fuzz"))
    REAL_IDS[:] = seed(srv)
    yield srv
    REAL_IDS.clear()
    assert memory_mb(srv) < MEMORY_BUDGET_MB, f"the server peaked at {memory_mb(srv):.0f} MB"
    stop_server(srv)


def seed(srv: LiveServer) -> list[str]:
    """A dataset, a strategy, a backtest and an optimization job owned by the admin."""
    from stratopt.v1 import (
        backtest_pb2,
        backtest_pb2_grpc,
        market_data_pb2,
        market_data_pb2_grpc,
        optimization_pb2,
        optimization_pb2_grpc,
        strategy_pb2,
        strategy_pb2_grpc,
    )

    md = srv.md("admin")
    with srv.channel() as ch:
        ds = market_data_pb2_grpc.MarketDataServiceStub(ch).GenerateSyntheticDataset(
            market_data_pb2.GenerateSyntheticDatasetRequest(name="fuzz", bar_count=2_000, seed=4),
            metadata=md,
        )
        strategy = strategy_pb2_grpc.StrategyServiceStub(ch).CreateStrategy(
            strategy_pb2.CreateStrategyRequest(
                strategy=strategy_pb2.Strategy(name="fuzz", strategy_type="sma_crossover")
            ),
            metadata=md,
        )
        bt = backtest_pb2_grpc.BacktestServiceStub(ch).RunBacktest(
            backtest_pb2.RunBacktestRequest(
                strategy_id=strategy.strategy.id, dataset_id=ds.dataset.id
            ),
            metadata=md,
        )
        job = optimization_pb2_grpc.OptimizationServiceStub(ch).StartOptimization(
            optimization_pb2.StartOptimizationRequest(
                spec=optimization_pb2.OptimizationSpec(
                    strategy_type="sma_crossover", dataset_id=ds.dataset.id, trials=20
                )
            ),
            metadata=md,
        )
    return [ds.dataset.id, strategy.strategy.id, bt.backtest.id, job.job.id]


@pytest.fixture(scope="module")
def fuzz_channel(fuzz_server: LiveServer) -> Iterator[grpc.Channel]:
    with fuzz_server.channel() as ch:
        yield ch


@pytest.mark.parametrize("method", contract_methods(), ids=method_path)
def test_no_request_makes_the_server_fail(
    method: MethodDescriptor, fuzz_server: LiveServer, fuzz_channel: grpc.Channel
) -> None:
    cls = message_factory.GetMessageClass(method.input_type)
    md = fuzz_server.md("admin")

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=os.environ.get("STRATOPT_FUZZ_RANDOM") != "1",
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(values=message(method.input_type))
    def run(values: dict[str, Any]) -> None:
        assume(approx_bytes(values) <= REQUEST_BUDGET_BYTES)
        call(fuzz_channel, method, build(cls, values), md)

    run()
