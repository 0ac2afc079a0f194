"""Out-of-sample checks of the best parameters: a held-out tail and walk-forward windows.

The optimizer only ever sees the in-sample part (the period minus the held-out tail), so the
out-of-sample metrics are an honest estimate of what the parameters do on unseen data.

Walk-forward here re-evaluates the chosen parameters (it does not re-optimize) on windows
covering the whole period: consecutive equal windows, or with `anchored` windows that all
start at the first bar and grow. The efficiency is the mean of the first objective's metric
over the windows divided by its in-sample value: 1.0 means the parameters did as well across
time as on the data they were fitted to, 0.3 that most of the in-sample edge was luck. (For
re-optimizing walk-forward analysis, BacktestService's walk_forward option exists.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from stratopt.data.bars import Bars
from stratopt.engine import ExecutionOptions
from stratopt.optimize.evaluate import score
from stratopt.optimize.spec import ValidationPlan
from stratopt.strategies.base import StrategyType

MIN_SEGMENT_BARS = 10


@dataclass(frozen=True)
class ValidationReport:
    in_sample: dict[str, float]
    out_of_sample: dict[str, float] = field(default_factory=dict)
    walk_forward_efficiency: float = 0.0
    walk_forward_windows: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ValidationReport:
        return cls(**dict(d))


def in_sample_bars(n: int, plan: ValidationPlan) -> int:
    """How many leading bars the optimizer sees (the rest is held out)."""
    return n - round(n * plan.holdout_fraction) if plan.holdout_fraction > 0 else n


def plan_problem(n: int, plan: ValidationPlan) -> str | None:
    """Why `n` bars are too few for the plan, or None."""
    held = n - in_sample_bars(n, plan)
    if plan.holdout_fraction > 0 and held < MIN_SEGMENT_BARS:
        return f"the held-out part would have {held} bars (at least {MIN_SEGMENT_BARS})"
    if in_sample_bars(n, plan) < 2 * MIN_SEGMENT_BARS:
        return f"the in-sample part would have fewer than {2 * MIN_SEGMENT_BARS} bars"
    w = plan.walk_forward_windows
    if w and n // w < MIN_SEGMENT_BARS:
        return f"{w} walk-forward windows of {n} bars are shorter than {MIN_SEGMENT_BARS} bars"
    return None


def validate(
    bars: Bars,
    strategy: StrategyType,
    params: Mapping[str, Any],
    config: ExecutionOptions,
    plan: ValidationPlan,
    metric: str,
    periods_per_year: float,
) -> ValidationReport:
    """Metrics of `params` in-sample, on the held-out tail and on walk-forward windows."""
    n = len(bars.ts)
    cut = in_sample_bars(n, plan)
    in_sample = _segment(bars, 0, cut, strategy, params, config, periods_per_year)
    oos = _segment(bars, cut, n, strategy, params, config, periods_per_year) if cut < n else {}
    windows = [
        _segment(bars, a, b, strategy, params, config, periods_per_year)
        for a, b in _windows(n, plan.walk_forward_windows, plan.anchored)
    ]
    base = in_sample.get(metric, 0.0)
    mean = sum(w[metric] for w in windows) / len(windows) if windows else 0.0
    efficiency = mean / base if windows and base != 0 else 0.0
    return ValidationReport(in_sample, oos, efficiency, windows)


def _windows(n: int, count: int, anchored: bool) -> list[tuple[int, int]]:
    if count <= 0:
        return []
    edges = [round(i * n / count) for i in range(count + 1)]
    return [(0 if anchored else edges[i], edges[i + 1]) for i in range(count)]


def _segment(
    bars: Bars,
    start: int,
    stop: int,
    strategy: StrategyType,
    params: Mapping[str, Any],
    config: ExecutionOptions,
    periods_per_year: float,
) -> dict[str, float]:
    return score(bars.slice(start, stop), strategy, [params], config, periods_per_year)[0]
