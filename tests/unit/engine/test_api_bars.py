"""engine.backtest on the one bar container: no copies in, lazy pandas out, ensembles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import stratopt.engine as engine
from stratopt.data import Bars, generate_bars
from stratopt.engine.ensemble import combine
from stratopt.engine.metrics import (
    METRIC_NAMES,
    REPORT_METRIC_NAMES,
    compute_metrics,
    infer_periods_per_year,
    report_metrics,
)
from stratopt.strategies import registry
from stratopt.strategies.ensemble import Ensemble, EnsembleMember

PARAMS = {"fast": 10, "slow": 40}


@pytest.fixture(scope="module")
def bars() -> Bars:
    return generate_bars(5_000, seed=21)


def test_bars_go_in_without_a_copy(bars: Bars) -> None:
    assert engine.as_bars(bars) is bars
    result = engine.backtest(bars, "sma_crossover", PARAMS)
    assert result.bars is bars


def test_a_frame_becomes_bars_once_and_shares_its_columns(bars: Bars) -> None:
    frame = bars.to_frame()
    converted = engine.as_bars(frame)
    for name in ("open", "high", "low", "close", "volume"):
        assert np.shares_memory(getattr(converted, name), frame[name].to_numpy())
    assert np.array_equal(converted.ts, bars.ts)
    # A UTC frame's own index serves the results as is; naive frames mean UTC.
    result = engine.backtest(frame, "sma_crossover", PARAMS)
    assert result.equity.index is frame.index
    naive = frame.tz_localize(None)
    from_naive = engine.backtest(naive, "sma_crossover", PARAMS)
    pd.testing.assert_series_equal(from_naive.equity, result.equity)
    assert str(from_naive.equity.index.tz) == "UTC" and from_naive.equity.index.name == "ts"


def test_columns_that_are_not_float64_are_converted(bars: Bars) -> None:
    frame = bars.to_frame().astype({"volume": np.float32})
    converted = engine.as_bars(frame)
    assert converted.volume.dtype == np.float64
    assert np.array_equal(converted.volume, bars.volume.astype(np.float32))
    with pytest.raises(ValueError, match="bars are empty"):
        engine.backtest(frame.iloc[:0], "sma_crossover", PARAMS)
    with pytest.raises(TypeError, match="Bars object or a DataFrame"):
        engine.backtest(object(), "sma_crossover", PARAMS)


def test_pandas_views_are_built_on_first_access_and_match_the_arrays(bars: Bars) -> None:
    options = engine.ExecutionOptions(commission=0.001, stop_loss=0.02, direction="both")
    result = engine.backtest(bars, "sma_crossover", PARAMS, options)
    assert not {"trades", "equity", "position", "index"} & set(vars(result))
    assert result.num_trades == result.metrics["num_trades"] > 0
    trades = result.trades
    assert result.trades is trades, "built once"
    assert list(trades.columns) == [
        "entry_time",
        "exit_time",
        *(engine.TRADE_DTYPE.names or ()),
    ]
    assert len(trades) == result.num_trades
    assert np.array_equal(trades["pnl"].to_numpy(), result.trade_pnl)
    assert (trades["entry_time"] == bars.index[trades["entry_idx"]]).all()
    assert result.equity.index is bars.index and result.position.index is bars.index
    assert np.shares_memory(result.equity.to_numpy(), result.equity_values)
    assert result.equity.name == "equity" and result.position.name == "position"
    assert set(trades["exit_reason"].astype(str)) <= {"signal", "stop", "end"}


def test_metrics_are_those_of_the_simulated_run(bars: Bars) -> None:
    options = engine.ExecutionOptions(commission=0.0005, take_profit=0.03)
    result = engine.backtest(bars, "sma_crossover", PARAMS, options)
    st = registry.get("sma_crossover")
    targets = st.signal(
        bars.open, bars.high, bars.low, bars.close, bars.volume, st.to_vector(PARAMS)
    )
    run = engine.simulate(bars.open, bars.high, bars.low, bars.close, targets, options)
    want = compute_metrics(
        run.equity,
        run.trades,
        bars.ts,
        None,
        close=bars.close,
        position=run.position,
        initial_cash=options.initial_cash,
    )
    want |= report_metrics(
        run.equity,
        bars.close,
        initial_cash=options.initial_cash,
        periods_per_year=infer_periods_per_year(bars.ts),
    )
    assert result.metrics == want
    assert list(result.metrics) == [*METRIC_NAMES, *REPORT_METRIC_NAMES]
    assert np.array_equal(result.equity_values, run.equity)
    assert np.array_equal(result.position_values, run.position)
    assert np.array_equal(result.trade_records, run.trades)


def _members() -> tuple[EnsembleMember, ...]:
    return (
        EnsembleMember(registry.get("sma_crossover"), {"fast": 8, "slow": 30}, 1.0),
        EnsembleMember(registry.get("ema_crossover"), {}, 0.75),
        EnsembleMember(registry.get("macd_signal"), {}, 0.5),
    )


@pytest.mark.parametrize("method", ["weighted_vote", "majority", "unanimous"])
def test_an_ensemble_is_a_strategy_for_the_engine(bars: Bars, method: str) -> None:
    members = _members()
    ensemble = Ensemble(members, method)
    options = engine.ExecutionOptions(direction="both", commission=0.001)
    result = engine.backtest(bars, ensemble, None, options)
    prices = (bars.open, bars.high, bars.low, bars.close, bars.volume)
    targets = [m.strategy.signal(*prices, m.strategy.to_vector(m.params)) for m in members]
    combined = combine(targets, [m.weight for m in members], method)
    single = engine.backtest(bars, _Fixed(combined), None, options)
    assert result.metrics == single.metrics
    assert np.array_equal(result.equity_values, single.equity_values)
    assert np.array_equal(result.trade_rows, single.trade_rows)
    assert result.params == {}


def test_an_ensemble_checks_itself() -> None:
    with pytest.raises(ValueError, match="at least one member"):
        Ensemble(())
    with pytest.raises(ValueError, match="unknown ensemble method"):
        Ensemble(_members(), "loudest")
    with pytest.raises(ValueError, match="fast"):
        Ensemble((EnsembleMember(registry.get("sma_crossover"), {"fast": 90, "slow": 20}),))
    ensemble = Ensemble(_members())
    assert ensemble.name == "ensemble" and ensemble.to_vector().shape == (0,)
    with pytest.raises(ValueError, match="no parameters"):
        engine.backtest(generate_bars(500, seed=1), ensemble, {"fast": 3})


class _Fixed:
    """A strategy whose signal is a precomputed target array."""

    def __init__(self, targets: np.ndarray) -> None:
        self.targets = targets

    def signal(self, *arrays: np.ndarray) -> np.ndarray:
        return self.targets

    def to_vector(self, params: object = None) -> np.ndarray:
        return np.empty(0)
