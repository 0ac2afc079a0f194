"""BacktestService on a real server: engine results, storage, paging, MC, walk-forward."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import field_mask_pb2
from stratopt.v1 import backtest_pb2 as pb
from stratopt.v1 import backtest_pb2_grpc as pbg
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc
from stratopt.v1 import strategy_pb2 as s_pb
from stratopt.v1 import strategy_pb2_grpc as s_grpc

from stratopt import engine
from stratopt.api.convert import pb_to_ns
from stratopt.strategies import registry
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
    options = engine.ExecutionOptions(commission=0.001, direction="both")
    sma = registry.get("sma_crossover")
    local = engine.backtest(bars, sma, {"fast": 10, "slow": 50}, options)
    assert bt.metrics.total_return == pytest.approx(local.metrics["total_return"], rel=1e-12)
    assert bt.metrics.num_trades == len(local.trades)
    assert bt.metrics.final_equity == pytest.approx(float(local.equity.iloc[-1]))
    assert min(p.equity for p in bt.equity_curve) == pytest.approx(float(local.equity.min()))
    assert max(p.equity for p in bt.equity_curve) == pytest.approx(float(local.equity.max()))

    got = stub.GetBacktest(pb.GetBacktestRequest(backtest_id=bt.id), metadata=md).backtest
    assert got.metrics == bt.metrics
    # The resolved options are echoed, defaults filled in, and stored that way.
    assert bt.execution == got.execution
    assert bt.execution.initial_cash == 10_000.0 and bt.execution.position_size == 1.0
    assert bt.execution.direction == c.TRADE_DIRECTION_BOTH
    assert set(bt.execution.set_fields.paths) == set(engine.options.FIELDS)
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


def test_explicit_zeros_override_a_stored_strategy(
    env: tuple[pbg.BacktestServiceStub, str, LiveServer],
) -> None:
    stub, ds_id, srv = env
    md = srv.md("trader")
    params = {"fast": iv(10), "slow": iv(50)}
    with srv.channel() as ch:
        strat = (
            s_grpc.StrategyServiceStub(ch)
            .CreateStrategy(
                s_pb.CreateStrategyRequest(
                    strategy=s_pb.Strategy(
                        name="bt-zero-override",
                        strategy_type="sma_crossover",
                        parameters=params,
                        execution=c.ExecutionOptions(
                            commission=0.001, stop_loss=0.05, fill_on_close=True
                        ),
                    )
                ),
                metadata=md,
            )
            .strategy
        )

    def run(**kw: object) -> pb.Backtest:
        return stub.RunBacktest(
            pb.RunBacktestRequest(dataset_id=ds_id, **kw),  # type: ignore[arg-type]
            metadata=md,
        ).backtest

    cost_free = run(strategy_type="sma_crossover", parameters=params, dry_run=True)
    zeros = c.ExecutionOptions(
        commission=0.0,
        stop_loss=0.0,
        fill_on_close=False,
        set_fields=field_mask_pb2.FieldMask(paths=["commission", "stop_loss", "fill_on_close"]),
    )
    zeroed = run(strategy_id=strat.id, execution=zeros)
    assert zeroed.metrics.total_return == pytest.approx(cost_free.metrics.total_return, rel=1e-12)
    assert zeroed.metrics.num_trades == cost_free.metrics.num_trades
    for echoed in (
        zeroed.execution,
        stub.GetBacktest(
            pb.GetBacktestRequest(backtest_id=zeroed.id), metadata=md
        ).backtest.execution,
    ):
        assert (echoed.commission, echoed.stop_loss, echoed.fill_on_close) == (0.0, 0.0, False)
        assert {"commission", "stop_loss", "fill_on_close"} <= set(echoed.set_fields.paths)
        assert echoed.direction == c.TRADE_DIRECTION_LONG_ONLY

    # Without set_fields the zeros are "not given": the stored strategy's values apply.
    stored = run(
        strategy_id=strat.id,
        execution=c.ExecutionOptions(commission=0.0, stop_loss=0.0, fill_on_close=False),
        dry_run=True,
    )
    assert stored.execution.commission == pytest.approx(0.001)
    assert stored.execution.stop_loss == pytest.approx(0.05) and stored.execution.fill_on_close
    assert stored.metrics.total_return != pytest.approx(cost_free.metrics.total_return)


def test_out_of_range_execution_is_invalid_argument(
    env: tuple[pbg.BacktestServiceStub, str, LiveServer],
) -> None:
    stub, ds_id, srv = env
    e = call_error(
        stub.RunBacktest,
        pb.RunBacktestRequest(
            strategy_type="sma_crossover",
            dataset_id=ds_id,
            execution=c.ExecutionOptions(
                commission=0.2,
                trailing_stop=0.995,
                take_profit=150.0,
                direction=9,  # type: ignore[arg-type]
                set_fields=field_mask_pb2.FieldMask(paths=["leverage"]),
            ),
        ),
        metadata=srv.md("trader"),
    )
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    v = violations(e)
    assert v["execution.commission"] == "must be in [0, 0.1]"
    assert v["execution.trailing_stop"] == "must be in [0, 0.99]"
    assert v["execution.take_profit"] == "must be in [0, 100]"
    assert {"execution.direction", "execution.set_fields"} <= set(v)


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


def test_stored_walk_forward_backtest_is_read_back(
    env: tuple[pbg.BacktestServiceStub, str, LiveServer],
) -> None:
    """A stored (not dry-run) walk-forward backtest saves and reads back its windows."""
    stub, ds_id, srv = env
    md = srv.md("trader")
    bt = stub.RunBacktest(
        pb.RunBacktestRequest(
            strategy_type="sma_crossover",
            dataset_id=ds_id,
            walk_forward=pb.WalkForwardOptions(windows=3, grid_points=3),
        ),
        metadata=md,
    ).backtest
    assert bt.id, "the backtest was stored"
    got = stub.GetBacktest(pb.GetBacktestRequest(backtest_id=bt.id), metadata=md).backtest
    assert len(got.walk_forward.windows) == 3
    assert got.walk_forward == bt.walk_forward, "the stored result reads back as it was returned"

    from stratopt.data.storage import DatasetStore

    ts = DatasetStore(srv.data_dir / "datasets").load(ds_id).ts
    stamps = {int(t) for t in ts}
    first = got.walk_forward.windows[0]
    assert pb_to_ns(first.in_sample.start_time) == int(ts[0]), "rolling windows start at bar 0"
    assert pb_to_ns(got.walk_forward.windows[-1].out_of_sample.end_time) == int(ts[-1])
    for w in got.walk_forward.windows:
        times = [
            pb_to_ns(t)
            for t in (
                w.in_sample.start_time,
                w.in_sample.end_time,
                w.out_of_sample.start_time,
                w.out_of_sample.end_time,
            )
        ]
        assert set(times) <= stamps, "window bounds are bar times, to the nanosecond"
        assert times == sorted(times) and times[1] < times[2]
        assert set(w.parameters) == {"fast", "slow"}
    listed = stub.ListBacktests(pb.ListBacktestsRequest(dataset_id=ds_id), metadata=md).backtests
    assert bt.id in {b.id for b in listed}


def _reference_ensemble(
    bars: Any, members: list[tuple[str, float]], method: str, commission: float
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """What an ensemble backtest computed before ensembles ran through engine.backtest:
    members' signals at their default parameters, combined, simulated by the kernel (both
    directions), then every metric. Returns (metrics, equity, float64 trade rows)."""
    from stratopt.engine import simulator as sim
    from stratopt.engine.metrics import METRIC_NAMES, infer_periods_per_year, metrics_of
    from stratopt.strategies import registry

    prices = (bars.open, bars.high, bars.low, bars.close, bars.volume)
    targets = []
    for name, _ in members:
        st = registry.get(name)
        targets.append(st.signal(*prices, np.ascontiguousarray(st.to_vector({}))))
    stack = np.vstack([t.astype(np.float64) for t in targets])
    weights = np.asarray([w for _, w in members], dtype=np.float64)[:, None]
    if method == "weighted_vote":
        combined = np.sign((stack * weights).sum(axis=0)).astype(np.int8)
    else:
        need = len(members) if method == "unanimous" else len(members) // 2 + 1
        combined = np.zeros(stack.shape[1], dtype=np.int8)
        combined[(stack > 0).sum(axis=0) >= need] = 1
        combined[(stack < 0).sum(axis=0) >= need] = -1
    cfg = np.zeros(sim.CFG_LENGTH, dtype=np.float64)
    cfg[sim.CFG_CASH] = 10_000.0
    cfg[sim.CFG_COMMISSION] = commission
    cfg[sim.CFG_SIZE] = 1.0
    cfg[sim.CFG_DIRECTION] = sim.DIRECTIONS["both"]
    n = len(bars.close)
    equity = np.empty(n, dtype=np.float64)
    position = np.empty(n, dtype=np.float64)
    buffer = np.empty((n, sim.TRADE_COLUMNS), dtype=np.float64)
    o, h, lo, c = (np.ascontiguousarray(a) for a in prices[:4])
    k = sim.simulate_into(o, h, lo, c, combined, cfg, equity, position, buffer)
    values = metrics_of(equity, 10_000.0, buffer[:k], position, c, infer_periods_per_year(bars.ts))
    return dict(zip(METRIC_NAMES, values.tolist(), strict=True)), equity, buffer[:k]


@pytest.mark.parametrize(
    ("method", "pb_method"),
    [
        ("weighted_vote", s_pb.ENSEMBLE_METHOD_WEIGHTED_VOTE),
        ("majority", s_pb.ENSEMBLE_METHOD_MAJORITY),
        ("unanimous", s_pb.ENSEMBLE_METHOD_UNANIMOUS),
    ],
)
def test_ensemble_backtest_is_exactly_the_combined_members(
    env: tuple[pbg.BacktestServiceStub, str, LiveServer], method: str, pb_method: int
) -> None:
    """Ensemble results are bit-identical to combining the members' signals and simulating
    them (the computation ensembles have always done), stored and read back."""
    stub, ds_id, srv = env
    md = srv.md("trader")
    members = [("sma_crossover", 1.0), ("ema_crossover", 0.75), ("macd_signal", 0.5)]
    with srv.channel() as ch:
        strategies = s_grpc.StrategyServiceStub(ch)
        ids = [
            strategies.CreateStrategy(
                s_pb.CreateStrategyRequest(
                    strategy=s_pb.Strategy(name=f"exact-{method}-{t}", strategy_type=t)
                ),
                metadata=md,
            ).strategy.id
            for t, _ in members
        ]
        ens = strategies.CreateStrategy(
            s_pb.CreateStrategyRequest(
                strategy=s_pb.Strategy(
                    name=f"exact-ens-{method}",
                    strategy_type="ensemble",
                    ensemble_members=[
                        s_pb.EnsembleMember(strategy_id=i, weight=w)
                        for i, (_, w) in zip(ids, members, strict=True)
                    ],
                    ensemble_method=pb_method,  # type: ignore[arg-type]
                )
            ),
            metadata=md,
        ).strategy
    bt = stub.RunBacktest(
        pb.RunBacktestRequest(
            strategy_id=ens.id,
            dataset_id=ds_id,
            execution=c.ExecutionOptions(commission=0.001, direction=c.TRADE_DIRECTION_BOTH),
            max_equity_points=20_000,
        ),
        metadata=md,
    ).backtest
    assert bt.id and bt.strategy_type == "ensemble"

    from stratopt.data.storage import DatasetStore

    bars = DatasetStore(srv.data_dir / "datasets").load(ds_id)
    want, equity, rows = _reference_ensemble(bars, members, method, 0.001)
    assert rows.shape[0] > 0
    got = stub.GetBacktest(pb.GetBacktestRequest(backtest_id=bt.id), metadata=md).backtest
    for name, value in want.items():
        have = getattr(got.metrics, name)
        assert have == (int(value) if name == "num_trades" else value), name
    assert got.metrics.final_equity == equity[-1]
    assert got.trade_count == rows.shape[0]
    assert [p.equity for p in got.equity_curve] == equity.tolist()
    trades: list[c.Trade] = []
    token = ""
    while True:
        page = stub.ListBacktestTrades(
            pb.ListBacktestTradesRequest(backtest_id=bt.id, page_size=1000, page_token=token),
            metadata=md,
        )
        trades += page.trades
        token = page.next_page_token
        if not token:
            break
    assert [t.entry_index for t in trades] == rows[:, 0].astype(int).tolist()
    assert [t.exit_index for t in trades] == rows[:, 1].astype(int).tolist()
    assert [t.entry_price for t in trades] == rows[:, 3].tolist()
    assert [t.exit_price for t in trades] == rows[:, 4].tolist()
    assert [t.pnl for t in trades] == rows[:, 6].tolist()
