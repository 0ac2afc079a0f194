"""How much of the winner's Sharpe ratio the search itself explains: the deflated Sharpe ratio.

An optimizer that tries 10,000 parameter sets and reports the best raw Sharpe ratio flatters
its user: among that many trials of a strategy with no edge, some score well by chance. The
deflated Sharpe ratio (Bailey & Lopez de Prado, 2014) is the probability that the winner's
true Sharpe ratio is above zero, given how many trials were run, how widely their Sharpe
ratios spread, and the skewness and fat tails of the winner's returns. It is computed once,
when a job finishes, on the in-sample bars the optimizer saw.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from stratopt.data.bars import Bars
from stratopt.engine import ExecutionOptions, backtest
from stratopt.engine.metrics import deflated_sharpe_ratio, expected_max_sharpe
from stratopt.strategies.base import StrategyType


@dataclass(frozen=True)
class SelectionBias:
    """Sharpe ratios here are annualized, like every reported Sharpe ratio."""

    deflated_sharpe_ratio: float
    """Probability (0..1) that the best trial's true Sharpe ratio is above zero."""
    best_sharpe: float
    expected_max_sharpe: float
    """The best Sharpe ratio expected by chance alone from this many trials."""
    trials: int
    observations: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SelectionBias:
        return cls(**dict(d))


def selection_bias(
    bars: Bars,
    strategy: StrategyType,
    params: Mapping[str, Any],
    config: ExecutionOptions,
    periods_per_year: float,
    trial_sharpes: Sequence[float],
) -> SelectionBias:
    """The deflated Sharpe ratio of `params` on `bars`, among the study's `trial_sharpes`.

    `trial_sharpes` are the annualized Sharpe ratios of every completed trial (the best
    included), measured on the same bars.
    """
    result = backtest(bars, strategy, params, config)
    equity = result.equity_values
    returns = np.diff(equity) / equity[:-1] if equity.shape[0] > 1 else np.empty(0)
    returns = returns[np.isfinite(returns)]
    scale = float(np.sqrt(periods_per_year)) if periods_per_year > 0 else 1.0
    per_bar = np.asarray(trial_sharpes, dtype=np.float64) / scale
    sharpe, skew, kurt = _moments(returns)
    dsr = deflated_sharpe_ratio(sharpe, per_bar, int(returns.shape[0]), skew, kurt)
    return SelectionBias(
        deflated_sharpe_ratio=dsr,
        best_sharpe=sharpe * scale,
        expected_max_sharpe=expected_max_sharpe(per_bar) * scale,
        trials=int(np.isfinite(per_bar).sum()),
        observations=int(returns.shape[0]),
    )


def _moments(returns: np.ndarray) -> tuple[float, float, float]:
    """Per-bar Sharpe ratio, skewness and (non-excess) kurtosis; a flat series is normal."""
    std = float(returns.std()) if returns.shape[0] > 1 else 0.0
    if std == 0.0:
        return 0.0, 0.0, 3.0
    z = (returns - returns.mean()) / std
    return float(returns.mean() / std), float((z**3).mean()), float((z**4).mean())
