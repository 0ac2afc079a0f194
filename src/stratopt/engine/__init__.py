"""Backtesting engine: numba kernels plus a small pandas-facing API on top.

The compiled sweep and walk-forward kernels are imported lazily by ``sweep`` and
``walk_forward`` so that importing the engine (and a first backtest) stays fast.
"""

from stratopt.engine.api import (
    BacktestResult,
    WalkForwardReport,
    as_bars,
    backtest,
    monte_carlo,
    parameter_grid,
    resolve_strategy,
    sweep,
    walk_forward,
)
from stratopt.engine.metrics import (
    METRIC_NAMES,
    METRICS,
    REPORT_METRIC_NAMES,
    MetricSpec,
    compute_metrics,
    infer_periods_per_year,
    report_metrics,
)
from stratopt.engine.montecarlo import MonteCarloResult
from stratopt.engine.options import ExecutionOptions, InvalidExecutionOptions
from stratopt.engine.simulator import (
    EXIT_REASONS,
    TRADE_DTYPE,
    SimResult,
    simulate,
)

__all__ = [
    "EXIT_REASONS",
    "METRICS",
    "METRIC_NAMES",
    "REPORT_METRIC_NAMES",
    "TRADE_DTYPE",
    "BacktestResult",
    "ExecutionOptions",
    "InvalidExecutionOptions",
    "MetricSpec",
    "MonteCarloResult",
    "SimResult",
    "WalkForwardReport",
    "as_bars",
    "backtest",
    "compute_metrics",
    "infer_periods_per_year",
    "monte_carlo",
    "parameter_grid",
    "report_metrics",
    "resolve_strategy",
    "simulate",
    "sweep",
    "walk_forward",
]
