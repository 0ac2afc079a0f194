"""Hostile values a client can send: each is a client error (INVALID_ARGUMENT naming the
field), never INTERNAL (issue 14, finding 2); and a job that fails says why in words a user
can act on, not with a numba or Python dump."""

from __future__ import annotations

import re
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import duration_pb2, timestamp_pb2
from stratopt.v1 import auth_pb2, auth_pb2_grpc
from stratopt.v1 import backtest_pb2 as bt_pb
from stratopt.v1 import backtest_pb2_grpc as bt_grpc
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc
from stratopt.v1 import optimization_pb2 as opt_pb
from stratopt.v1 import optimization_pb2_grpc as opt_grpc
from stratopt.v1 import strategy_pb2 as s_pb
from stratopt.v1 import strategy_pb2_grpc as s_grpc

from tests.conftest import LiveServer
from tests.integration.helpers import call_error, violations
from tests.integration.jobs.helpers import wait_done

YEAR_10000 = 253_402_300_800  # 10000-01-01T00:00:00Z, one second past the last valid time
NEAR_9999 = 253_370_764_800  # 9999-01-01


@pytest.fixture(scope="module")
def ch(live_server: LiveServer) -> Iterator[grpc.Channel]:
    with live_server.channel() as channel:
        yield channel


@pytest.fixture(scope="module")
def dataset_id(ch: grpc.Channel, live_server: LiveServer) -> str:
    req = md_pb.GenerateSyntheticDatasetRequest(name="hostile", bar_count=2_000, seed=5)
    stub = md_grpc.MarketDataServiceStub(ch)
    return str(stub.GenerateSyntheticDataset(req, metadata=live_server.md("trader")).dataset.id)


def invalid(err: grpc.RpcError, field: str) -> None:
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert field in violations(err), violations(err)


@pytest.mark.parametrize(
    "stamp",
    [
        timestamp_pb2.Timestamp(seconds=YEAR_10000),
        timestamp_pb2.Timestamp(seconds=1_800_000_000, nanos=-1),
        timestamp_pb2.Timestamp(seconds=-62_135_596_801),  # before year 1
    ],
)
def test_out_of_range_timestamps_are_invalid_arguments(
    ch: grpc.Channel, live_server: LiveServer, stamp: timestamp_pb2.Timestamp
) -> None:
    auth = auth_pb2_grpc.AuthServiceStub(ch)
    err = call_error(
        auth.CreateApiKey,
        auth_pb2.CreateApiKeyRequest(display_name="far", expire_time=stamp),
        metadata=live_server.md("trader"),
    )
    invalid(err, "expire_time")
    err = call_error(
        auth.ListAuditEvents,
        auth_pb2.ListAuditEventsRequest(time_range=c.TimeRange(start_time=stamp)),
        metadata=live_server.md("admin"),
    )
    invalid(err, "time_range.start_time")
    err = call_error(
        auth.ListAuditEvents,
        auth_pb2.ListAuditEventsRequest(time_range=c.TimeRange(end_time=stamp)),
        metadata=live_server.md("admin"),
    )
    invalid(err, "time_range.end_time")


def test_a_huge_grace_period_is_an_invalid_argument(
    ch: grpc.Channel, live_server: LiveServer
) -> None:
    auth = auth_pb2_grpc.AuthServiceStub(ch)
    md = live_server.md("trader")
    key = auth.CreateApiKey(auth_pb2.CreateApiKeyRequest(display_name="grace"), metadata=md)
    for grace in (
        duration_pb2.Duration(seconds=2**63 - 1),
        duration_pb2.Duration(seconds=-(2**63)),
        duration_pb2.Duration(seconds=10, nanos=-5),
    ):
        err = call_error(
            auth.RotateApiKey,
            auth_pb2.RotateApiKeyRequest(key_id=key.api_key.id, grace_period=grace),
            metadata=md,
        )
        invalid(err, "grace_period")


def test_synthetic_data_with_a_negative_seed_or_far_start_is_invalid(
    ch: grpc.Channel, live_server: LiveServer
) -> None:
    stub = md_grpc.MarketDataServiceStub(ch)
    md = live_server.md("trader")
    err = call_error(
        stub.GenerateSyntheticDataset,
        md_pb.GenerateSyntheticDatasetRequest(name="neg", bar_count=200, seed=-1),
        metadata=md,
    )
    invalid(err, "seed")
    for seconds in (NEAR_9999, 9_200_000_000):  # past int64 nanoseconds; ends past it
        err = call_error(
            stub.GenerateSyntheticDataset,
            md_pb.GenerateSyntheticDatasetRequest(
                name="far",
                bar_count=5_000_000 if seconds < NEAR_9999 else 200,
                start_time=timestamp_pb2.Timestamp(seconds=seconds),
            ),
            metadata=md,
        )
        invalid(err, "start_time")


def test_backtests_with_a_negative_seed_or_tiny_cash_do_not_crash(
    ch: grpc.Channel, live_server: LiveServer, dataset_id: str
) -> None:
    stub = bt_grpc.BacktestServiceStub(ch)
    md = live_server.md("trader")
    base = {"strategy_type": "sma_crossover", "dataset_id": dataset_id, "dry_run": True}
    err = call_error(
        stub.RunBacktest,
        bt_pb.RunBacktestRequest(
            **base,  # type: ignore[arg-type]
            monte_carlo=bt_pb.MonteCarloOptions(simulations=10, seed=-1),
        ),
        metadata=md,
    )
    invalid(err, "monte_carlo.seed")
    # The smallest positive double is valid cash: too little to buy anything, so no trades.
    for options in (
        c.ExecutionOptions(initial_cash=5e-324),
        c.ExecutionOptions(position_size=5e-324, initial_cash=1e-9),
    ):
        bt = stub.RunBacktest(
            bt_pb.RunBacktestRequest(**base, execution=options),  # type: ignore[arg-type]
            metadata=md,
        ).backtest
        assert bt.metrics.total_return == 0.0 or abs(bt.metrics.total_return) < 1e-6
    # A time range outside what nanoseconds since 1970 can hold.
    err = call_error(
        stub.RunBacktest,
        bt_pb.RunBacktestRequest(
            **base,  # type: ignore[arg-type]
            time_range=c.TimeRange(start_time=timestamp_pb2.Timestamp(seconds=NEAR_9999)),
        ),
        metadata=md,
    )
    invalid(err, "time_range.start_time")


def test_a_huge_search_text_or_tag_is_an_invalid_argument(
    ch: grpc.Channel, live_server: LiveServer
) -> None:
    stub = s_grpc.StrategyServiceStub(ch)
    md = live_server.md("trader")
    err = call_error(
        stub.ListStrategies, s_pb.ListStrategiesRequest(query="x" * 50_001), metadata=md
    )
    invalid(err, "query")
    err = call_error(
        stub.ListStrategies, s_pb.ListStrategiesRequest(tags=["y" * 50_001]), metadata=md
    )
    invalid(err, "tags[0]")
    err = call_error(
        stub.ListStrategies, s_pb.ListStrategiesRequest(tags=["t"] * 1_000), metadata=md
    )
    invalid(err, "tags")


def test_imported_rows_past_the_year_2262_are_invalid(
    ch: grpc.Channel, live_server: LiveServer
) -> None:
    stub = md_grpc.MarketDataServiceStub(ch)
    header = md_pb.ImportHeader(
        name="far", symbol="FAR", timeframe="1h", format=md_pb.IMPORT_FORMAT_ROWS
    )
    bars = [
        c.Bar(
            time=timestamp_pb2.Timestamp(seconds=NEAR_9999 + 3600 * i),
            open=1,
            high=1,
            low=1,
            close=1,
            volume=1,
        )
        for i in range(3)
    ]
    msgs = [
        md_pb.ImportBarsRequest(header=header),
        md_pb.ImportBarsRequest(rows=md_pb.BarRows(bars=bars)),
    ]
    err = call_error(stub.ImportBars, iter(msgs), metadata=live_server.md("trader"))
    invalid(err, "rows.bars[0].time")


MACHINE_TEXT = re.compile(r"0x[0-9a-f]{6,}|Traceback|SystemError|Error\(|<[a-z_.]+ object at")


def test_a_failed_optimization_says_why_in_user_terms(
    ch: grpc.Channel, live_server: LiveServer, dataset_id: str
) -> None:
    stub = opt_grpc.OptimizationServiceStub(ch)
    md = live_server.md("trader")
    spec = opt_pb.OptimizationSpec(
        strategy_type="sma_crossover",
        dataset_id=dataset_id,
        trials=20,
        execution=c.ExecutionOptions(initial_cash=5e-324),
    )
    job = stub.StartOptimization(opt_pb.StartOptimizationRequest(spec=spec), metadata=md).job
    done = wait_done(stub, md, job.id, timeout=120)
    assert not MACHINE_TEXT.search(done.error), done.error
    assert done.state in (opt_pb.JOB_STATE_SUCCEEDED, opt_pb.JOB_STATE_FAILED)
