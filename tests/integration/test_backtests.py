"""BacktestService on a real server: engine results, storage, paging, MC, walk-forward."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from stratopt.v1 import backtest_pb2 as pb
from stratopt.v1 import backtest_pb2_grpc as pbg
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc
from stratopt.v1 import strategy_pb2 as s_pb
from stratopt.v1 import strategy_pb2_grpc as s_grpc

from stratopt import engine
from tests.conftest import LiveServer
from tests.integration.helpers import call_error, violations


@pytest.fixture(scope="module")
def env(live_server: LiveServer) -> Iterator[tuple[pbg.BacktestServiceStub, str, LiveServer]]:
    with live_server.channel() as ch:
        ds = (
            md_grpc.MarketDataServiceStub(ch)
            .GenerateSyntheticDataset(
                md_pb.GenerateSyntheticDatasetRequest(
                    name="bt", symbol="BT", bar_count=20_000, seed=3
                ),
                metadata=live_server.md("trader"),
            )
            .dataset
        )
        yield pbg.BacktestServiceStub(ch), ds.id, live_server


def iv(x: int) -> c.ParameterValue:
    return c.ParameterValue(int_value=x)


def test_backtest_matches_the_engine_and_is_stored(
    env: tuple[pbg.BacktestServiceStub, str, LiveServer],
) -> None:
    stub, ds_id, srv = env
    md = srv.md("trader")
    req = pb.RunBacktestRequest(
        strategy_type="sma_crossover",
        parameters={"fast": iv(10), "slow": iv(50)},
        dataset_id=ds_id,
        execution=c.ExecutionOptions(commission=0.001, direction=c.TRADE_DIRECTION_BOTH),
        max_equity_points=300,
        trade_limit=5,
    )
    bt = stub.RunBacktest(req, metadata=md).backtest
    assert bt.id and bt.bar_count == 20_000 and bt.trade_count > 10
    assert len(bt.trades) == 5 and len(bt.equity_curve) <= 300

    # The same computation in-process through the Python API gives the same figures.
    from stratopt.data.storage import DatasetStore

    bars = DatasetStore(srv.data_dir / "datasets").load(ds_id)
    local = engine.backtest(
        bars, "sma_crossover", {"fast": 10, "slow": 50}, commission=0.001, direction="both"
    )
    assert bt.metrics.total_return == pytest.approx(local.metrics["total_return"], rel=1e-12)
    assert bt.metrics.num_trades == len(local.trades)
    assert bt.metrics.final_equity == pytest.approx(float(local.equity.iloc[-1]))
    assert min(p.equity for p in bt.equity_curve) == pytest.approx(float(local.equity.min()))
    assert max(p.equity for p in bt.equity_curve) == pytest.approx(float(local.equity.max()))

    got = stub.GetBacktest(pb.GetBacktestRequest(backtest_id=bt.id), metadata=md).backtest
    assert got.metrics == bt.metrics
    trades: list[c.Trade] = []
    token = ""
    while True:
        page = stub.ListBacktestTrades(
            pb.ListBacktestTradesRequest(backtest_id=bt.id, page_size=37, page_token=token),
            metadata=md,
        )
        trades += page.trades
        token = page.next_page_token
        if not token:
            break
    assert len(trades) == bt.trade_count
    assert trades[0] == bt.trades[0]
    listed = stub.ListBacktests(pb.ListBacktestsRequest(dataset_id=ds_id), metadata=md).backtests
    assert bt.id in {b.id for b in listed}
    hidden = call_error(
        stub.GetBacktest, pb.GetBacktestRequest(backtest_id=bt.id), metadata=srv.md("analyst")
    )
    assert hidden.code() == grpc.StatusCode.NOT_FOUND
    stub.DeleteBacktest(pb.DeleteBacktestRequest(backtest_id=bt.id), metadata=md)
    gone = call_error(stub.GetBacktest, pb.GetBacktestRequest(backtest_id=bt.id), metadata=md)
    assert gone.code() == grpc.StatusCode.NOT_FOUND


def test_stored_strategy_monte_carlo_and_walk_forward(
    env: tuple[pbg.BacktestServiceStub, str, LiveServer],
) -> None:
    stub, ds_id, srv = env
    md = srv.md("trader")
    with srv.channel() as ch:
        strat = (
            s_grpc.StrategyServiceStub(ch)
            .CreateStrategy(
                s_pb.CreateStrategyRequest(
                    strategy=s_pb.Strategy(
                        name="bt-ema",
                        strategy_type="ema_crossover",
                        execution=c.ExecutionOptions(stop_loss=0.05),
                    )
                ),
                metadata=md,
            )
            .strategy
        )
    bt = stub.RunBacktest(
        pb.RunBacktestRequest(
            strategy_id=strat.id,
            dataset_id=ds_id,
            dry_run=True,
            monte_carlo=pb.MonteCarloOptions(simulations=500, seed=1),
            walk_forward=pb.WalkForwardOptions(windows=3, grid_points=3),
        ),
        metadata=md,
    ).backtest
    assert bt.id == "" and bt.strategy_type == "ema_crossover"
    assert bt.execution.stop_loss == pytest.approx(0.05)
    mc = bt.monte_carlo
    assert (
        mc.simulations == 500 and mc.final_return.p5 <= mc.final_return.p50 <= mc.final_return.p95
    )
    assert 0 <= mc.probability_of_loss <= 1
    assert len(bt.walk_forward.windows) == 3 and len(bt.walk_forward.out_of_sample_equity) > 10
    again = stub.RunBacktest(
        pb.RunBacktestRequest(
            strategy_id=strat.id,
            dataset_id=ds_id,
            dry_run=True,
            monte_carlo=pb.MonteCarloOptions(simulations=500, seed=1),
        ),
        metadata=md,
    ).backtest
    assert again.monte_carlo == mc, "seeded Monte Carlo is reproducible"


def test_bad_backtest_requests(env: tuple[pbg.BacktestServiceStub, str, LiveServer]) -> None:
    stub, ds_id, srv = env
    md = srv.md("trader")
    e = call_error(
        stub.RunBacktest, pb.RunBacktestRequest(strategy_type="sma_crossover"), metadata=md
    )
    assert "dataset_id" in violations(e)
    e = call_error(
        stub.RunBacktest, pb.RunBacktestRequest(strategy_type="nope", dataset_id=ds_id), metadata=md
    )
    assert "strategy_type" in violations(e)
    e = call_error(
        stub.RunBacktest,
        pb.RunBacktestRequest(
            strategy_type="sma_crossover",
            dataset_id=ds_id,
            parameters={"fast": iv(60), "slow": iv(50)},
        ),
        metadata=md,
    )
    assert "parameters.fast" in violations(e)
    e = call_error(
        stub.RunBacktest,
        pb.RunBacktestRequest(
            strategy_type="sma_crossover",
            dataset_id=ds_id,
            execution=c.ExecutionOptions(position_size=3),
        ),
        metadata=md,
    )
    assert "execution.position_size" in violations(e)
    e = call_error(
        stub.RunBacktest,
        pb.RunBacktestRequest(strategy_type="sma_crossover", dataset_id="missing"),
        metadata=md,
    )
    assert e.code() == grpc.StatusCode.NOT_FOUND
    e = call_error(
        stub.RunBacktest,
        pb.RunBacktestRequest(
            strategy_type="sma_crossover",
            dataset_id=ds_id,
            walk_forward=pb.WalkForwardOptions(windows=3, metric="luck"),
        ),
        metadata=md,
    )
    assert "walk_forward.metric" in violations(e)
    e = call_error(
        stub.ListBacktestTrades, pb.ListBacktestTradesRequest(backtest_id="missing"), metadata=md
    )
    assert e.code() == grpc.StatusCode.NOT_FOUND


def test_backtest_listing_pages_by_token(
    env: tuple[pbg.BacktestServiceStub, str, LiveServer],
) -> None:
    stub, ds_id, srv = env
    md = srv.md("trader")
    made = {
        stub.RunBacktest(
            pb.RunBacktestRequest(strategy_type="sma_crossover", dataset_id=ds_id), metadata=md
        ).backtest.id
        for _ in range(5)
    }
    seen: list[str] = []
    token = ""
    while True:
        page = stub.ListBacktests(
            pb.ListBacktestsRequest(dataset_id=ds_id, page_size=2, page_token=token), metadata=md
        )
        seen += [b.id for b in page.backtests]
        token = page.next_page_token
        if not token:
            break
    assert made <= set(seen) and len(seen) == len(set(seen))


def test_ensemble_backtest_uses_its_combination_method(
    env: tuple[pbg.BacktestServiceStub, str, LiveServer],
) -> None:
    stub, ds_id, srv = env
    md = srv.md("trader")
    with srv.channel() as ch:
        strategies = s_grpc.StrategyServiceStub(ch)
        ids = [
            strategies.CreateStrategy(
                s_pb.CreateStrategyRequest(
                    strategy=s_pb.Strategy(name=f"ens-member-{t}", strategy_type=t)
                ),
                metadata=md,
            ).strategy.id
            for t in ("sma_crossover", "ema_crossover", "macd_signal")
        ]
        members = [s_pb.EnsembleMember(strategy_id=i, weight=1.0) for i in ids]
        runs = {}
        for method in (s_pb.ENSEMBLE_METHOD_MAJORITY, s_pb.ENSEMBLE_METHOD_UNANIMOUS):
            ens = strategies.CreateStrategy(
                s_pb.CreateStrategyRequest(
                    strategy=s_pb.Strategy(
                        name=f"ens-{method}",
                        strategy_type="ensemble",
                        ensemble_members=members,
                        ensemble_method=method,
                    )
                ),
                metadata=md,
            ).strategy
            runs[method] = stub.RunBacktest(
                pb.RunBacktestRequest(strategy_id=ens.id, dataset_id=ds_id, dry_run=True),
                metadata=md,
            ).backtest
    majority, unanimous = runs[s_pb.ENSEMBLE_METHOD_MAJORITY], runs[s_pb.ENSEMBLE_METHOD_UNANIMOUS]
    assert majority.strategy_type == "ensemble" and majority.trade_count > 0
    # Unanimity is stricter than a majority, so it is in the market less often.
    assert unanimous.metrics.exposure < majority.metrics.exposure
