"""Spec validation: every problem reported at once, on the API's field paths."""

from __future__ import annotations

import pytest

from stratopt.optimize import checks
from stratopt.optimize.checks import check_spec
from stratopt.optimize.spec import MetricBound, Objective, StudySpec, ValidationPlan
from stratopt.strategies.base import StrategyType


def problems(spec: StudySpec, strategy: StrategyType) -> dict[str, str]:
    return {v.field: v.description for v in check_spec(spec, strategy)}


def base(**kw: object) -> StudySpec:
    return StudySpec(strategy_type="sma_crossover", dataset_id="d", trials=10, **kw)  # type: ignore[arg-type]


def test_a_sound_spec_passes(sma: StrategyType) -> None:
    spec = base(
        objectives=(Objective("sharpe", "maximize"), Objective("max_drawdown", "minimize")),
        sampler="nsga2",
        bounds=(MetricBound("num_trades", min=5),),
        patience=20,
        validation=ValidationPlan(0.2, 3, True),
    )
    assert problems(spec, sma) == {}


def test_trials_must_be_positive_unless_a_timeout_bounds_the_run(sma: StrategyType) -> None:
    assert "or 0 with a timeout" in problems(base().with_(trials=0), sma)["spec.trials"]
    assert "spec.trials" in problems(base().with_(trials=-3), sma)
    assert "spec.trials" in problems(base().with_(trials=100_001), sma)
    assert problems(base().with_(trials=0, timeout_s=60.0), sma) == {}


def test_unknown_metrics_in_objectives_and_constraints(sma: StrategyType) -> None:
    p = problems(
        base(
            objectives=(Objective("shrape", "maximize"),),
            bounds=(MetricBound("profit", max=1.0), MetricBound("sharpe")),
        ),
        sma,
    )
    assert "unknown metric 'shrape'" in p["spec.objectives[0].metric"]
    assert "unknown metric 'profit'" in p["spec.constraints[0].metric"]
    assert "give min, max or both" in p["spec.constraints[1]"]


def test_inverted_bounds_sampler_mismatch_and_validation_limits(sma: StrategyType) -> None:
    p = problems(
        base(
            bounds=(MetricBound("sharpe", min=2, max=1),),
            sampler="cmaes",
            objectives=(Objective("sharpe", "maximize"), Objective("cagr", "maximize")),
            validation=ValidationPlan(0.8, 1),
        ),
        sma,
    )
    assert "greater than max" in p["spec.constraints[0].min"]
    assert "single objective" in p["spec.sampler"]
    assert "spec.validation.holdout_fraction" in p
    assert "spec.validation.walk_forward_windows" in p


def test_grids_beyond_the_limit_are_refused(
    sma: StrategyType, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert problems(base(sampler="grid"), sma) == {}
    monkeypatch.setattr(checks, "MAX_GRID", 100)
    assert "380 points" in problems(base(sampler="grid"), sma)["spec.sampler"]


def test_samplers_whose_package_is_missing_are_refused(
    sma: StrategyType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stratopt.optimize import samplers

    monkeypatch.setitem(samplers._EXTRAS, "qmc", "no_such_package_for_stratopt")
    assert (
        "lacks the 'no_such_package_for_stratopt'"
        in problems(base(sampler="qmc"), sma)["spec.sampler"]
    )
    assert problems(base(sampler="tpe"), sma) == {}
