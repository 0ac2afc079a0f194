"""The pandas-facing engine API: inputs, strategy resolution, result shapes."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import stratopt.engine as engine
import stratopt.strategies
from stratopt.engine.metrics import METRIC_NAMES, REPORT_METRIC_NAMES

from ._signals import SmaCross, random_walk_bars


@pytest.fixture(scope="module")
def raw() -> dict[str, np.ndarray]:
    return random_walk_bars(3000, seed=8)


@pytest.fixture(scope="module")
def frame(raw: dict[str, np.ndarray]) -> pd.DataFrame:
    cols = {k: raw[k] for k in ("open", "high", "low", "close", "volume")}
    return pd.DataFrame(cols, index=pd.to_datetime(raw["ts"], unit="ns"))


def test_backtest_result_shapes(frame: pd.DataFrame) -> None:
    options = engine.ExecutionOptions(commission=0.001, stop_loss=0.03)
    res = engine.backtest(frame, SmaCross(), {"fast": 5, "slow": 25}, options)
    assert set(res.metrics) == set(METRIC_NAMES) | set(REPORT_METRIC_NAMES)
    assert all(isinstance(v, float) for v in res.metrics.values())
    assert isinstance(res.equity.index, pd.DatetimeIndex)
    assert str(res.equity.index.tz) == "UTC"
    assert len(res.equity) == len(frame)
    assert res.params == {"fast": 5, "slow": 25}
    trades = res.trades
    assert len(trades) == res.metrics["num_trades"] > 0
    assert (trades["entry_time"] == res.equity.index[trades["entry_idx"]]).all()
    assert (trades["exit_time"] == res.equity.index[trades["exit_idx"]]).all()
    assert set(trades["exit_reason"].astype(str)) <= {"signal", "stop", "end"}
    assert res.config.commission == 0.001


def test_bars_object_and_frame_agree(raw: dict[str, np.ndarray], frame: pd.DataFrame) -> None:
    bars_like = SimpleNamespace(**raw)
    a = engine.backtest(bars_like, SmaCross(), {"fast": 4, "slow": 30})
    b = engine.backtest(frame, SmaCross(), {"fast": 4, "slow": 30})
    pd.testing.assert_series_equal(a.equity, b.equity)
    assert a.metrics == b.metrics


def test_backtest_rejects_bad_input(frame: pd.DataFrame) -> None:
    with pytest.raises(TypeError):
        engine.backtest(frame, SmaCross(), leverage=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="fast must be < slow"):
        engine.backtest(frame, SmaCross(), {"fast": 40, "slow": 20})
    with pytest.raises(ValueError, match="lacks columns"):
        engine.backtest(frame.drop(columns="volume"), SmaCross())
    with pytest.raises(TypeError, match="signal"):
        engine.backtest(frame, object())  # type: ignore[arg-type]


def test_strategy_name_resolved_through_registry(
    frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = types.ModuleType("stratopt.strategies.registry")
    fake.get = lambda name: {"sma_test": SmaCross()}[name]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "stratopt.strategies.registry", fake)
    monkeypatch.setattr(stratopt.strategies, "registry", fake, raising=False)
    by_name = engine.backtest(frame, "sma_test", {"fast": 6, "slow": 18})
    direct = engine.backtest(frame, SmaCross(), {"fast": 6, "slow": 18})
    assert by_name.metrics == direct.metrics
    with pytest.raises(KeyError):
        engine.backtest(frame, "nope")
    monkeypatch.delitem(sys.modules, "stratopt.strategies.registry")
    with pytest.raises(LookupError, match=r"import stratopt\.strategies"):
        engine.backtest(frame, "sma_test")


def test_sweep_drops_constraint_violations(frame: pd.DataFrame) -> None:
    costs = engine.ExecutionOptions(commission=0.001)
    table = engine.sweep(frame, SmaCross(), {"fast": [5, 10, 30], "slow": [10, 20, 40]}, costs)
    pairs = list(zip(table["fast"], table["slow"], strict=True))
    assert pairs == [(5, 10), (5, 20), (5, 40), (10, 20), (10, 40), (30, 40)]
    assert list(table.columns) == ["fast", "slow", *METRIC_NAMES]
    single = engine.backtest(frame, SmaCross(), {"fast": 10, "slow": 40}, costs)
    row = table[(table.fast == 10) & (table.slow == 40)].iloc[0]
    for name in METRIC_NAMES:
        assert row[name] == pytest.approx(single.metrics[name], rel=1e-12, abs=1e-15), name


def test_sweep_with_no_valid_combination(frame: pd.DataFrame) -> None:
    table = engine.sweep(frame, SmaCross(), {"fast": [50], "slow": [10]})
    assert table.empty
    assert list(table.columns) == ["fast", "slow", *METRIC_NAMES]


def test_monte_carlo_from_result(frame: pd.DataFrame) -> None:
    res = engine.backtest(frame, SmaCross(), {"fast": 5, "slow": 25})
    mc = engine.monte_carlo(res, method="shuffle", n_sims=200, seed=1)
    assert mc.final_return[50] == pytest.approx(res.metrics["total_return"], rel=1e-9)
    blocks = engine.monte_carlo(res, method="block_bootstrap", n_sims=100, seed=1)
    assert blocks.n_sims == 100


def test_walk_forward_report(frame: pd.DataFrame) -> None:
    report = engine.walk_forward(
        frame,
        SmaCross(),
        {"fast": [3, 8], "slow": [20, 40]},
        n_windows=3,
        train_ratio=0.6,
        metric="sortino",
    )
    assert len(report.windows) == 3
    assert {"fast", "slow", "is_sortino", "oos_sortino"} <= set(report.windows.columns)
    assert report.equity.index[0] == report.windows["test_start"].iloc[0]
    assert report.equity.index[-1] == frame.index[-1].tz_localize("UTC")
    assert report.metrics["total_return"] == pytest.approx(report.equity.iloc[-1] / 10_000.0 - 1)
    assert np.isfinite(report.efficiency)
