"""Scoring parameter sets: a batch of backtests in one call to the engine's parallel sweep.

The sweep kernel runs the whole batch in numba threads without the GIL, so a batch costs
about one backtest per core instead of one Python round trip per trial.

Parameter sets that break the strategy's own rules (fast >= slow) are not simulated: they
become infeasible trials whose constraint violation says by how much, and whose objective
values are a large penalty, so samplers that understand constraints steer away from them
and samplers that do not still never report them as best.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from stratopt.data.bars import Bars
from stratopt.engine import METRIC_NAMES, ExecutionOptions, as_bars, infer_periods_per_year
from stratopt.engine.grid_sweep import sweep_grid
from stratopt.optimize.space import SearchSpace
from stratopt.optimize.spec import MetricBound, Objective
from stratopt.strategies.base import StrategyType

PENALTY = 1e12
"""Objective value of a parameter set the strategy rejects (worse than any real metric)."""


@dataclass(frozen=True)
class Evaluation:
    values: tuple[float, ...]
    metrics: dict[str, float]
    # One entry per constraint slot (strategy rules first, then metric bounds); <= 0 holds.
    violations: tuple[float, ...]
    invalid: str = ""

    @property
    def feasible(self) -> bool:
        return all(v <= 0 for v in self.violations)


class Problem:
    """Everything needed to score parameter sets of one strategy on one period of bars."""

    def __init__(
        self,
        space: SearchSpace,
        bars: Any,
        config: ExecutionOptions,
        objectives: Sequence[Objective],
        bounds: Sequence[MetricBound] = (),
    ) -> None:
        self.space = space
        self.bars: Bars = as_bars(bars)
        self.config = config
        self.objectives = tuple(objectives)
        self.bounds = tuple(bounds)
        self.periods_per_year = config.periods_per_year or infer_periods_per_year(self.bars.ts)

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objectives]

    @property
    def constraint_names(self) -> list[str]:
        """Names of the violation slots, as Optuna stores them (`constraints:<name>`)."""
        rules = ["strategy_rules"] if self.space.strategy.constraints else []
        return rules + [f"{i}:{b.metric}" for i, b in enumerate(self.bounds)]

    def evaluate(self, sampled: Sequence[Mapping[str, Any]]) -> list[Evaluation]:
        full = [self.space.full_params(s) for s in sampled]
        rule_violations = [self._rule_violation(p) for p in full]
        valid = [i for i, (amount, _) in enumerate(rule_violations) if amount <= 0]
        rows = self.metrics([full[i] for i in valid])
        by_index = dict(zip(valid, rows, strict=True))
        return [self._score(by_index.get(i), rule_violations[i]) for i in range(len(full))]

    def metrics(self, params: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
        """Metrics of valid full parameter sets, one engine call for the whole batch."""
        return score(self.bars, self.space.strategy, params, self.config, self.periods_per_year)

    def _rule_violation(self, params: Mapping[str, Any]) -> tuple[float, str]:
        amount = 0.0
        reasons = []
        for c in self.space.strategy.constraints:
            left, right = float(params[c.left]), float(params[c.right])
            if not c.holds(left, right):
                amount += abs(left - right) + 1.0
                reasons.append(f"{c.left}: {c.describe_failure(left, right)}")
        return amount, "; ".join(reasons)

    def _score(self, metrics: dict[str, float] | None, rule: tuple[float, str]) -> Evaluation:
        amount, reason = rule
        rules = (amount,) if self.space.strategy.constraints else ()
        if metrics is None:
            values = tuple(
                -PENALTY if o.direction == "maximize" else PENALTY for o in self.objectives
            )
            bound_slots = tuple(1.0 for _ in self.bounds)
            return Evaluation(values, {}, rules + bound_slots, reason)
        values = tuple(metrics[o.metric] for o in self.objectives)
        return Evaluation(
            values, metrics, rules + tuple(_bound_violation(b, metrics) for b in self.bounds)
        )


def score(
    bars: Bars,
    strategy: StrategyType,
    params: Sequence[Mapping[str, Any]],
    config: ExecutionOptions,
    periods_per_year: float,
) -> list[dict[str, float]]:
    """Metrics (plus final_equity) of valid full parameter sets on `bars`, in one sweep."""
    if not params:
        return []
    matrix = np.vstack([strategy.to_vector(p) for p in params])
    values = sweep_grid(
        bars.open,
        bars.high,
        bars.low,
        bars.close,
        bars.volume,
        strategy.signal,
        matrix,
        config.to_vector(),
        periods_per_year,
    )
    return [_metrics_row(row, config.initial_cash) for row in values]


def _metrics_row(row: npt.NDArray[np.float64], initial_cash: float) -> dict[str, float]:
    out = {name: float(x) for name, x in zip(METRIC_NAMES, row, strict=True)}
    out["final_equity"] = initial_cash * (1.0 + out["total_return"])
    return out


def _bound_violation(bound: MetricBound, metrics: Mapping[str, float]) -> float:
    x = metrics[bound.metric]
    worst = 0.0
    if bound.min is not None:
        worst = max(worst, bound.min - x)
    if bound.max is not None:
        worst = max(worst, x - bound.max)
    return worst
