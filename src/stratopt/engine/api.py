"""High-level engine entry points: bars + strategy in, pandas results out.

This is the only engine module that touches pandas (results are meant for people and the
API layer); the kernels below it stay numpy-only. ``bars`` is duck-typed: anything with
``ts`` (int64 epoch ns) and open/high/low/close/volume arrays (``stratopt.data.bars.Bars``)
or a DataFrame with those columns and a DatetimeIndex (naive means UTC). ``strategy`` is a
StrategyType, anything with ``signal`` and ``to_vector()``, or a registry name.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from stratopt.engine.metrics import METRIC_NAMES, compute_metrics, infer_periods_per_year
from stratopt.engine.montecarlo import Method, MonteCarloResult
from stratopt.engine.montecarlo import monte_carlo as _monte_carlo
from stratopt.engine.simulator import EXIT_REASONS, SimConfig, simulate

if TYPE_CHECKING:
    from stratopt.engine.walkforward import WalkForwardResult

PRICE_FIELDS = ("open", "high", "low", "close", "volume")
_OPTION_NAMES = frozenset(f.name for f in fields(SimConfig))


class StrategyLike(Protocol):
    """What the engine needs from a strategy (StrategyType satisfies it)."""

    @property
    def signal(self) -> Callable[..., np.ndarray]: ...

    def to_vector(self, params: dict[str, Any]) -> np.ndarray: ...


@dataclass(frozen=True)
class BarArrays:
    """Contiguous float64 price arrays and int64 ns timestamps pulled out of any bars input."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def prices(self) -> tuple[np.ndarray, ...]:
        return (self.open, self.high, self.low, self.close, self.volume)

    def as_dict(self) -> dict[str, np.ndarray]:
        return dict(zip(PRICE_FIELDS, self.prices(), strict=True))

    def index(self) -> pd.DatetimeIndex:
        return utc_index(self.ts, name="ts")


@dataclass(frozen=True)
class BacktestResult:
    """One backtest: metrics, trades with entry/exit times, equity marked at each close."""

    metrics: dict[str, float]
    trades: pd.DataFrame
    equity: pd.Series
    position: pd.Series
    params: dict[str, Any]
    config: SimConfig


@dataclass(frozen=True)
class WalkForwardReport:
    """Walk-forward outcome: one row per window, stitched out-of-sample account."""

    windows: pd.DataFrame
    equity: pd.Series
    trades: pd.DataFrame
    metrics: dict[str, float]
    efficiency: float


def bar_arrays(bars: Any) -> BarArrays:
    """Pull contiguous arrays out of a Bars-like object or an OHLCV DataFrame."""
    if isinstance(bars, pd.DataFrame):
        missing = [c for c in PRICE_FIELDS if c not in bars.columns]
        if missing:
            raise ValueError(f"bars frame lacks columns: {', '.join(missing)}")
        if not isinstance(bars.index, pd.DatetimeIndex):
            raise ValueError("bars frame needs a DatetimeIndex")
        index = bars.index
        index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
        ts = np.ascontiguousarray(index.as_unit("ns").asi8)
        columns = {c: bars[c].to_numpy(dtype=np.float64) for c in PRICE_FIELDS}
    elif all(hasattr(bars, name) for name in ("ts", *PRICE_FIELDS)):
        ts = np.ascontiguousarray(bars.ts, dtype=np.int64)
        columns = {c: getattr(bars, c) for c in PRICE_FIELDS}
    else:
        raise TypeError("bars must be a Bars object or a DataFrame with OHLCV columns")
    arrays = {c: np.ascontiguousarray(v, dtype=np.float64) for c, v in columns.items()}
    if any(a.shape != ts.shape for a in arrays.values()):
        raise ValueError("bars arrays must all have the same length")
    if ts.shape[0] == 0:
        raise ValueError("bars are empty")
    return BarArrays(ts=ts, **arrays)


def resolve_strategy(strategy: str | StrategyLike) -> StrategyLike:
    """A strategy object, looking names up in the registry (imported lazily: layering)."""
    if isinstance(strategy, str):
        from stratopt.strategies import registry

        found: StrategyLike = registry.get(strategy)
        return found
    if not hasattr(strategy, "signal") or not hasattr(strategy, "to_vector"):
        raise TypeError("strategy needs a .signal function and a .to_vector() method")
    return strategy


def sim_config(options: Mapping[str, Any]) -> SimConfig:
    """SimConfig from keyword options, rejecting names it does not know."""
    unknown = sorted(set(options) - _OPTION_NAMES)
    if unknown:
        raise ValueError(f"unknown backtest option(s): {', '.join(unknown)}")
    return SimConfig(**options)


def _describe(violation: Any) -> str:
    """'field: description' from a Violation named tuple, dataclass or plain pair."""
    if hasattr(violation, "field") and hasattr(violation, "description"):
        return f"{violation.field}: {violation.description}"
    if isinstance(violation, tuple) and len(violation) == 2:
        return f"{violation[0]}: {violation[1]}"
    return str(violation)


def _violations(strategy: StrategyLike, params: dict[str, Any]) -> list[str]:
    validate = getattr(strategy, "validate", None)
    if validate is None:
        return []
    return [_describe(v) for v in validate(params)]


def _full_params(strategy: StrategyLike, params: Mapping[str, Any] | None) -> dict[str, Any]:
    defaults = getattr(strategy, "defaults", None)
    base: dict[str, Any] = dict(defaults()) if defaults is not None else {}
    base.update(params or {})
    return base


def utc_index(ns: np.ndarray, name: str | None = None) -> pd.DatetimeIndex:
    """UTC DatetimeIndex over epoch-ns stamps via a datetime64 view (2x to_datetime's speed)."""
    return pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("M8[ns]"), tz="UTC", name=name)


def trades_frame(trades: np.ndarray, ts: np.ndarray) -> pd.DataFrame:
    """Trades with UTC entry/exit times and exit reasons spelled out."""
    columns: dict[str, Any] = {
        "entry_time": utc_index(ts[trades["entry_idx"]]),
        "exit_time": utc_index(ts[trades["exit_idx"]]),
    }
    columns.update({name: trades[name] for name in trades.dtype.names or ()})
    columns["exit_reason"] = pd.Categorical.from_codes(
        trades["exit_reason"].astype(np.int64), categories=list(EXIT_REASONS)
    )
    return pd.DataFrame(columns)


def backtest(
    bars: Any,
    strategy: str | StrategyLike,
    params: Mapping[str, Any] | None = None,
    **options: Any,
) -> BacktestResult:
    """Run one strategy with one parameter set; options are SimConfig fields."""
    cfg = sim_config(options)
    strat = resolve_strategy(strategy)
    full = _full_params(strat, params)
    problems = _violations(strat, full)
    if problems:
        raise ValueError("invalid parameters: " + "; ".join(problems))
    data = bar_arrays(bars)
    targets = strat.signal(*data.prices(), np.ascontiguousarray(strat.to_vector(full)))
    run = simulate(data.open, data.high, data.low, data.close, targets, cfg)
    metrics = compute_metrics(
        run.equity,
        run.trades,
        data.ts,
        cfg.periods_per_year,
        close=data.close,
        position=run.position,
        initial_cash=cfg.initial_cash,
    )
    index = data.index()
    return BacktestResult(
        metrics=metrics,
        trades=trades_frame(run.trades, data.ts),
        equity=pd.Series(run.equity, index=index, name="equity", copy=False),
        position=pd.Series(run.position, index=index, name="position", copy=False),
        params=full,
        config=cfg,
    )


def parameter_grid(
    strategy: StrategyLike, grid: Mapping[str, Sequence[Any]]
) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Cartesian product of ``grid`` minus combinations the strategy's constraints reject.

    Returns the kept combinations (only the swept names) and their full parameter vectors.
    """
    names = list(grid)
    kept: list[dict[str, Any]] = []
    vectors: list[np.ndarray] = []
    for values in itertools.product(*(list(grid[name]) for name in names)):
        combo = dict(zip(names, values, strict=True))
        full = _full_params(strategy, combo)
        if _violations(strategy, full):
            continue
        kept.append(combo)
        vectors.append(np.asarray(strategy.to_vector(full), dtype=np.float64))
    matrix = np.vstack(vectors) if vectors else np.empty((0, 0), dtype=np.float64)
    return kept, matrix


def sweep(
    bars: Any,
    strategy: str | StrategyLike,
    grid: Mapping[str, Sequence[Any]],
    **options: Any,
) -> pd.DataFrame:
    """Metrics of every valid grid combination: swept parameters then METRIC_NAMES columns."""
    from stratopt.engine.grid_sweep import sweep_grid  # compiled kernel: load only when needed

    cfg = sim_config(options)
    strat = resolve_strategy(strategy)
    data = bar_arrays(bars)
    combos, matrix = parameter_grid(strat, grid)
    ppy = cfg.periods_per_year or infer_periods_per_year(data.ts)
    values = (
        sweep_grid(
            data.open,
            data.high,
            data.low,
            data.close,
            data.volume,
            strat.signal,
            matrix,
            cfg.to_vector(),
            ppy,
        )
        if combos
        else np.empty((0, len(METRIC_NAMES)))
    )
    params = pd.DataFrame(combos, columns=list(grid))
    return pd.concat([params, pd.DataFrame(values, columns=list(METRIC_NAMES))], axis=1)


def monte_carlo(
    result: BacktestResult,
    method: Method = "shuffle",
    n_sims: int = 1000,
    seed: int = 0,
    block_size: int | None = None,
) -> MonteCarloResult:
    """Resample a backtest's trades (shuffle/bootstrap) or bar returns (block_bootstrap)."""
    return _monte_carlo(
        method=method,
        n_sims=n_sims,
        seed=seed,
        trade_pnl=result.trades["pnl"].to_numpy(dtype=np.float64),
        equity=result.equity.to_numpy(dtype=np.float64),
        initial_cash=result.config.initial_cash,
        block_size=block_size,
    )


def walk_forward(
    bars: Any,
    strategy: str | StrategyLike,
    grid: Mapping[str, Sequence[Any]],
    *,
    n_windows: int = 5,
    train_ratio: float = 0.7,
    anchored: bool = False,
    metric: str = "sharpe",
    **options: Any,
) -> WalkForwardReport:
    """Walk-forward optimization over ``grid`` (see engine.walkforward for the scheme)."""
    from stratopt.engine import walkforward as wf  # pulls in the compiled sweep kernel

    cfg = sim_config(options)
    strat = resolve_strategy(strategy)
    data = bar_arrays(bars)
    combos, matrix = parameter_grid(strat, grid)
    if not combos:
        raise ValueError("the grid has no combination that satisfies the strategy constraints")
    windows = wf.make_windows(len(data.ts), n_windows, train_ratio, anchored)
    ppy = cfg.periods_per_year or infer_periods_per_year(data.ts)
    run = wf.walk_forward(
        data.as_dict(), data.ts, strat.signal, matrix, windows, cfg.to_vector(), ppy, metric
    )
    index = data.index()
    oos = slice(run.oos_start, run.oos_start + run.oos_equity.shape[0])
    return WalkForwardReport(
        windows=_windows_frame(run, combos, index, metric),
        equity=pd.Series(run.oos_equity, index=index[oos], name="equity"),
        trades=trades_frame(run.oos_trades, data.ts),
        metrics=run.oos_metrics,
        efficiency=run.efficiency,
    )


def _windows_frame(
    run: WalkForwardResult, combos: list[dict[str, Any]], index: pd.DatetimeIndex, metric: str
) -> pd.DataFrame:
    column = METRIC_NAMES.index(metric)
    rows = []
    for w, win in enumerate(run.windows):
        rows.append(
            {
                "train_start": index[win.train_start],
                "train_end": index[win.train_stop - 1],
                "test_start": index[win.test_start],
                "test_end": index[win.test_stop - 1],
                **combos[int(run.best_index[w])],
                f"is_{metric}": float(run.in_sample[w, column]),
                f"oos_{metric}": float(run.out_of_sample[w, column]),
                "is_cagr": float(run.in_sample[w, METRIC_NAMES.index("cagr")]),
                "oos_cagr": float(run.out_of_sample[w, METRIC_NAMES.index("cagr")]),
                "oos_total_return": float(run.out_of_sample[w, 0]),
                "oos_num_trades": float(run.out_of_sample[w, METRIC_NAMES.index("num_trades")]),
            }
        )
    return pd.DataFrame(rows)
