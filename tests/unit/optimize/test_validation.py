"""Validation of the winner: held-out tail and walk-forward windows are honest re-runs."""

from __future__ import annotations

from stratopt import engine
from stratopt.data.bars import Bars
from stratopt.engine import ExecutionOptions, infer_periods_per_year
from stratopt.optimize.spec import ValidationPlan
from stratopt.optimize.validation import in_sample_bars, plan_problem, validate
from stratopt.strategies.base import StrategyType

PARAMS = {"fast": 8, "slow": 30}


def test_holdout_and_windows_match_backtests_of_those_bars(bars: Bars, sma: StrategyType) -> None:
    n = len(bars)
    plan = ValidationPlan(holdout_fraction=0.25, walk_forward_windows=3)
    ppy = infer_periods_per_year(bars.ts)
    report = validate(bars, sma, PARAMS, ExecutionOptions(), plan, "sharpe", ppy)
    cut = in_sample_bars(n, plan)
    assert cut == n - round(n * 0.25)
    opts = ExecutionOptions(periods_per_year=ppy)

    def sharpe(a: int, b: int) -> float:
        return engine.backtest(bars.slice(a, b), sma, PARAMS, opts).metrics["sharpe"]

    assert abs(report.in_sample["sharpe"] - sharpe(0, cut)) < 1e-9
    assert abs(report.out_of_sample["sharpe"] - sharpe(cut, n)) < 1e-9
    assert len(report.walk_forward_windows) == 3
    assert abs(report.walk_forward_windows[2]["sharpe"] - sharpe(2 * n // 3, n)) < 1e-9
    mean = sum(w["sharpe"] for w in report.walk_forward_windows) / 3
    assert abs(report.walk_forward_efficiency - mean / report.in_sample["sharpe"]) < 1e-12


def test_anchored_windows_all_start_at_the_first_bar(bars: Bars, sma: StrategyType) -> None:
    plan = ValidationPlan(walk_forward_windows=2, anchored=True)
    ppy = infer_periods_per_year(bars.ts)
    report = validate(bars, sma, PARAMS, ExecutionOptions(), plan, "sharpe", ppy)
    assert report.out_of_sample == {}
    assert abs(report.walk_forward_windows[1]["sharpe"] - report.in_sample["sharpe"]) < 1e-12


def test_too_few_bars_for_the_plan_is_explained() -> None:
    assert plan_problem(1000, ValidationPlan(0.2, 5)) is None
    assert "held-out" in (plan_problem(40, ValidationPlan(0.1)) or "")
    assert "walk-forward" in (plan_problem(100, ValidationPlan(walk_forward_windows=20)) or "")
