"""High-level engine entry points: bars + strategy in, metrics (and pandas views) out.

This is the only engine module that touches pandas (results are meant for people and the
API layer); the kernels below it stay numpy-only. ``bars`` is a ``stratopt.data.bars.Bars``
(the one bar container, used as is: no copy), a DataFrame with open/high/low/close/volume
columns and a DatetimeIndex (naive means UTC), or any object with ``ts`` (int64 epoch ns)
and those five arrays; the last two become a Bars once, copying only columns that are not
already contiguous float64 (int64 for ``ts``). ``strategy`` is a StrategyType, an
``Ensemble``, anything with ``signal`` and ``to_vector()``, or a registry name.

A backtest computes its metrics eagerly (they are cheap and the main output) and keeps the
equity, position and trades as numpy arrays; the pandas objects over them (``equity``,
``position``, ``trades``) are built on first access, so a caller that only wants metrics
pays for no DataFrame and no million-entry DatetimeIndex.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from stratopt.data.bars import UTC_NS, Bars
from stratopt.engine.metrics import (
    METRIC_NAMES,
    infer_periods_per_year,
    metrics_of,
    report_metrics,
)
from stratopt.engine.montecarlo import Method, MonteCarloResult
from stratopt.engine.montecarlo import monte_carlo as _monte_carlo
from stratopt.engine.options import ExecutionOptions
from stratopt.engine.simulator import (
    COL_PNL,
    EXIT_REASONS,
    TRADE_COLUMNS,
    as_targets,
    simulate_into,
    trades_from_buffer,
)

if TYPE_CHECKING:
    from stratopt.engine.walkforward import WalkForwardResult

PRICE_FIELDS = ("open", "high", "low", "close", "volume")


class StrategyLike(Protocol):
    """What the engine needs from a strategy (StrategyType and Ensemble satisfy it)."""

    @property
    def signal(self) -> Callable[..., np.ndarray]: ...

    def to_vector(self, params: dict[str, Any]) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """One backtest: metrics, then equity, position and trades as numpy arrays and pandas.

    ``equity_values`` and ``position_values`` (one value per bar, marked at the close) and
    ``trade_records`` (a ``TRADE_DTYPE`` structured array) are the raw outputs; ``equity``,
    ``position`` (Series on the bars' UTC DatetimeIndex) and ``trades`` (a DataFrame with
    UTC entry/exit times and exit reasons spelled out) are built from them on first access.
    """

    metrics: dict[str, float]
    params: dict[str, Any]
    config: ExecutionOptions
    bars: Bars = field(repr=False)
    equity_values: np.ndarray = field(repr=False)
    position_values: np.ndarray = field(repr=False)
    trade_rows: np.ndarray = field(repr=False)
    """The kernel's float64 trade rows (columns ``simulator.COL_*``)."""
    given_index: pd.DatetimeIndex | None = field(default=None, repr=False)
    """The caller's UTC index when the bars came as a DataFrame (reused, not rebuilt)."""

    @property
    def num_trades(self) -> int:
        return int(self.trade_rows.shape[0])

    @property
    def trade_pnl(self) -> np.ndarray:
        """Net P&L of each trade, in order (what Monte Carlo resamples)."""
        return self.trade_rows[:, COL_PNL]

    @cached_property
    def index(self) -> pd.DatetimeIndex:
        """The bars' times as a UTC DatetimeIndex named ``ts``."""
        return self.given_index if self.given_index is not None else self.bars.index

    @cached_property
    def trade_records(self) -> np.ndarray:
        return trades_from_buffer(self.trade_rows)

    @cached_property
    def trades(self) -> pd.DataFrame:
        return trades_frame(self.trade_records, self.bars.ts)

    @cached_property
    def equity(self) -> pd.Series:
        return pd.Series(self.equity_values, index=self.index, name="equity", copy=False)

    @cached_property
    def position(self) -> pd.Series:
        return pd.Series(self.position_values, index=self.index, name="position", copy=False)


@dataclass(frozen=True)
class WalkForwardReport:
    """Walk-forward outcome: one row per window, stitched out-of-sample account."""

    windows: pd.DataFrame
    equity: pd.Series
    trades: pd.DataFrame
    metrics: dict[str, float]
    efficiency: float


def as_bars(bars: Any) -> Bars:
    """The bars input as a Bars: itself when it is one, otherwise converted once.

    Only the structure is checked (equal lengths, 1-D, not empty), as for any Bars built
    without ``Bars.from_arrays``; contiguous float64/int64 columns are used without a copy.
    """
    return _read_bars(bars)[0]


def _read_bars(bars: Any) -> tuple[Bars, pd.DatetimeIndex | None]:
    """(bars, the caller's index when it can serve as the results' UTC index as is)."""
    index: pd.DatetimeIndex | None = None
    if isinstance(bars, Bars):
        out = bars
    elif isinstance(bars, pd.DataFrame):
        missing = [c for c in PRICE_FIELDS if c not in bars.columns]
        if missing:
            raise ValueError(f"bars frame lacks columns: {', '.join(missing)}")
        if not isinstance(bars.index, pd.DatetimeIndex):
            raise ValueError("bars frame needs a DatetimeIndex")
        # asi8 is UTC epoch ns for an aware index and the wall time (= UTC) for a naive one,
        # so no time-zone conversion (a copy of the whole index) is needed.
        given = bars.index if bars.index.unit == "ns" else bars.index.as_unit("ns")
        columns = (bars[c].to_numpy(dtype=np.float64) for c in PRICE_FIELDS)
        try:
            out = Bars(given.asi8, *columns)
        except ValueError as e:
            raise ValueError(f"bars: {e}") from None
        if given.dtype == UTC_NS:
            index = given if given.name == "ts" else given.rename("ts")
    elif all(hasattr(bars, name) for name in ("ts", *PRICE_FIELDS)):
        try:
            out = Bars(bars.ts, *(getattr(bars, c) for c in PRICE_FIELDS))
        except ValueError as e:
            raise ValueError(f"bars: {e}") from None
    else:
        raise TypeError("bars must be a Bars object or a DataFrame with OHLCV columns")
    if len(out) == 0:
        raise ValueError("bars are empty")
    return out, index


def _prices(bars: Bars) -> tuple[np.ndarray, ...]:
    return (bars.open, bars.high, bars.low, bars.close, bars.volume)


def resolve_strategy(strategy: str | StrategyLike) -> StrategyLike:
    """A strategy object; a name is looked up in the strategy registry if it is loaded.

    The engine sits below the strategy library and never imports it: names work once
    `stratopt.strategies` has been imported (by the caller, or by anything that uses it).
    """
    if isinstance(strategy, str):
        registry = sys.modules.get("stratopt.strategies.registry")
        if registry is None:
            raise LookupError(
                f"cannot look up {strategy!r}: import stratopt.strategies first, "
                "or pass a StrategyType"
            )
        found: StrategyLike = registry.get(strategy)
        return found
    if not hasattr(strategy, "signal") or not hasattr(strategy, "to_vector"):
        raise TypeError("strategy needs a .signal function and a .to_vector() method")
    return strategy


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
    """UTC DatetimeIndex over epoch-ns stamps (a datetime64 view given the UTC dtype: 4x
    faster than ``tz="UTC"``, which converts from local time)."""
    return pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("M8[ns]"), dtype=UTC_NS, name=name)


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
    options: ExecutionOptions | None = None,
) -> BacktestResult:
    """Run one strategy with one parameter set (default options when None).

    Signal, simulation and metrics run on the bars' own arrays; the pandas views of the
    result are built when first read (see BacktestResult).
    """
    cfg = ExecutionOptions() if options is None else options
    strat = resolve_strategy(strategy)
    full = _full_params(strat, params)
    problems = _violations(strat, full)
    if problems:
        raise ValueError("invalid parameters: " + "; ".join(problems))
    data, index = _read_bars(bars)
    targets = as_targets(strat.signal(*_prices(data), np.ascontiguousarray(strat.to_vector(full))))
    n = len(data)
    if targets.shape != (n,):
        raise ValueError(f"the strategy's signal returned {targets.shape} targets for {n} bars")
    equity = np.empty(n, dtype=np.float64)
    position = np.empty(n, dtype=np.float64)
    buffer = np.empty((n, TRADE_COLUMNS), dtype=np.float64)  # at most one trade per bar
    vector = cfg.to_vector()
    count = simulate_into(
        data.open, data.high, data.low, data.close, targets, vector, equity, position, buffer
    )
    rows = buffer[:count]
    ppy = cfg.periods_per_year or infer_periods_per_year(data.ts)
    values = metrics_of(equity, cfg.initial_cash, rows, position, data.close, float(ppy))
    metrics = dict(zip(METRIC_NAMES, values.tolist(), strict=True))
    metrics.update(
        report_metrics(
            equity, data.close, initial_cash=cfg.initial_cash, periods_per_year=float(ppy)
        )
    )
    return BacktestResult(
        metrics=metrics,
        params=full,
        config=cfg,
        bars=data,
        equity_values=equity,
        position_values=position,
        trade_rows=rows.copy(),  # not a view: the buffer has a row for every bar
        given_index=index,
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
    options: ExecutionOptions | None = None,
) -> pd.DataFrame:
    """Metrics of every valid grid combination: swept parameters then METRIC_NAMES columns."""
    from stratopt.engine.grid_sweep import sweep_grid  # compiled kernel: load only when needed

    cfg = ExecutionOptions() if options is None else options
    strat = resolve_strategy(strategy)
    data = as_bars(bars)
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
        trade_pnl=np.ascontiguousarray(result.trade_pnl),
        equity=result.equity_values,
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
    options: ExecutionOptions | None = None,
) -> WalkForwardReport:
    """Walk-forward optimization over ``grid`` (see engine.walkforward for the scheme)."""
    from stratopt.engine import walkforward as wf  # pulls in the compiled sweep kernel

    cfg = ExecutionOptions() if options is None else options
    strat = resolve_strategy(strategy)
    data, given = _read_bars(bars)
    combos, matrix = parameter_grid(strat, grid)
    if not combos:
        raise ValueError("the grid has no combination that satisfies the strategy constraints")
    windows = wf.make_windows(len(data.ts), n_windows, train_ratio, anchored)
    ppy = cfg.periods_per_year or infer_periods_per_year(data.ts)
    prices = dict(zip(PRICE_FIELDS, _prices(data), strict=True))
    vector = cfg.to_vector()
    run = wf.walk_forward(prices, data.ts, strat.signal, matrix, windows, vector, ppy, metric)
    index = given if given is not None else data.index
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
