"""Comparing strategies and stored backtests side by side (StrategyService.CompareStrategies).

What a comparison is:

- 2..10 entries in all: stored strategies (the caller needs READ access; ensembles too),
  each backtested here on one dataset and period, and stored backtests the caller owns,
  taken as they were stored (their metrics and full equity curve; nothing is re-run).
- The dataset is the request's; with stored backtests it defaults to theirs, and they must
  all share one dataset and one timeframe. Strategies then run on that timeframe over the
  period the backtests share (the intersection of their periods, narrowed further by the
  request's time range), so every row covers the same bars.
- Execution options of the request are merged over each strategy's own (fields given in
  the request win); without them each strategy runs with its own. They do not apply to
  stored backtests, which keep the options they ran with.
- Rows are ranked by one metric (`engine.metrics.METRICS`, default "sharpe") in the
  metric's natural direction (`MetricSpec.direction`: lower is better for drawdowns,
  volatility, ulcer index...). Rank 1 is the best; ties keep the order given, strategies
  (in `strategy_ids` order) before backtests (in `backtest_ids` order). Rows come back best
  first.
- Correlations: Pearson correlation of the per-bar returns (``equity[t] / equity[t-1] - 1``,
  0 after the account is dead, as in the metrics) over the bars every curve has, matched on
  timestamps; row-major over the rows as returned, symmetric, 1 on the diagonal. A curve
  that never moves (no trades) has no defined correlation: it gets 0 with every other row,
  never NaN; so does everything when fewer than two common returns exist.

Strategies run one after another, each off the event loop through `BacktestCatalog.run`
(a dry run: nothing is stored), so their metrics are exactly those RunBacktest reports.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from stratopt.engine.metrics import METRIC_NAMES, METRICS, ZERO_VOLATILITY
from stratopt.engine.options import ExecutionOptions
from stratopt.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from stratopt.security.principal import Principal
from stratopt.services.access import Access, load_strategy
from stratopt.services.backtests import BacktestCatalog, BacktestSpec
from stratopt.store import models
from stratopt.store.db import Database

MIN_ENTRIES = 2
MAX_ENTRIES = 10
DEFAULT_RANK_BY = "sharpe"
MAX_ID_LENGTH = 64


@dataclass(frozen=True)
class ComparisonSpec:
    strategy_ids: tuple[str, ...] = ()
    backtest_ids: tuple[str, ...] = ()
    dataset_id: str = ""
    # Epoch ns, [start, end) as everywhere; 0 = open.
    start_ns: int = 0
    end_ns: int = 0
    # Merged over each strategy's own options (explicit fields win).
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)
    rank_by: str = ""


@dataclass(frozen=True)
class ComparedRow:
    strategy_id: str
    strategy_name: str
    metrics: dict[str, float]
    rank: int
    backtest_id: str = ""
    """Set when the row is a stored backtest; empty for a strategy backtested here."""
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)
    """The options the row ran with, every field resolved."""


@dataclass(frozen=True)
class Comparison:
    rows: list[ComparedRow]
    """Best first."""
    correlations: list[float]
    """Row-major, len(rows) ** 2 entries, in the order of `rows`."""
    dataset_id: str
    start_ns: int
    end_ns: int
    """First and last bar every row covers (both inclusive, like a backtest's time range)."""
    rank_by: str
    common_bars: int


@dataclass
class _Entry:
    strategy_id: str
    strategy_name: str
    metrics: dict[str, float]
    ts: npt.NDArray[np.int64]
    equity: npt.NDArray[np.float64]
    execution: ExecutionOptions
    backtest_id: str = ""


class StrategyComparison:
    def __init__(self, db: Database, backtests: BacktestCatalog) -> None:
        self.db = db
        self.backtests = backtests

    async def compare(self, principal: Principal, spec: ComparisonSpec) -> Comparison:
        rank_by = spec.rank_by or DEFAULT_RANK_BY
        _check(spec, rank_by)
        stored = [await self.backtests.get(principal, b) for b in spec.backtest_ids]
        names = await self._strategy_names(principal, spec.strategy_ids, stored)
        dataset_id, timeframe, start_ns, end_ns = await self._scope(principal, spec, stored)

        entries: list[_Entry] = []
        for sid in spec.strategy_ids:
            out = await self.backtests.run(
                principal,
                BacktestSpec(
                    strategy_id=sid,
                    dataset_id=dataset_id,
                    start_ns=start_ns,
                    end_ns=end_ns,
                    timeframe=timeframe,
                    execution=spec.execution,
                    max_equity_points=2,
                    trade_limit=0,
                    dry_run=True,
                ),
            )
            metrics = dict(out.row.metrics)
            used = _used(out.row.execution)
            entries.append(_Entry(sid, names[sid], metrics, out.ts, out.equity, used))
        for row in stored:
            ts, equity = await asyncio.to_thread(_load_equity, self.backtests, row.id)
            entries.append(
                _Entry(
                    row.strategy_id,
                    names.get(row.strategy_id) or row.strategy_type,
                    dict(row.metrics),
                    ts,
                    equity,
                    _used(row.execution),
                    backtest_id=row.id,
                )
            )

        order = rank_order([e.metrics.get(rank_by, 0.0) for e in entries], rank_by)
        ranked = [entries[i] for i in order]
        matrix, common = await asyncio.to_thread(
            return_correlations, [(e.ts, e.equity) for e in ranked]
        )
        first = max(int(e.ts[0]) for e in ranked)
        last = min(int(e.ts[-1]) for e in ranked)
        return Comparison(
            rows=[
                ComparedRow(
                    e.strategy_id, e.strategy_name, e.metrics, rank, e.backtest_id, e.execution
                )
                for rank, e in enumerate(ranked, start=1)
            ],
            correlations=[float(x) for x in matrix.ravel()],
            dataset_id=dataset_id,
            start_ns=first,
            end_ns=last,
            rank_by=rank_by,
            common_bars=len(common),
        )

    async def _strategy_names(
        self, principal: Principal, strategy_ids: Sequence[str], stored: Sequence[models.Backtest]
    ) -> dict[str, str]:
        """Names of the strategies to run (READ access, checked before anything runs) and
        of the stored backtests' strategies the caller may still read."""
        names: dict[str, str] = {}
        async with self.db.session() as s:
            for sid in strategy_ids:
                names[sid] = (await load_strategy(s, principal, sid, Access.READ)).name
            for row in stored:
                if row.strategy_id and row.strategy_id not in names:
                    try:
                        found = await load_strategy(s, principal, row.strategy_id, Access.READ)
                    except (NotFound, PermissionDenied):
                        continue  # deleted or no longer shared: the row shows the type
                    names[row.strategy_id] = found.name
        return names

    async def _scope(
        self, principal: Principal, spec: ComparisonSpec, stored: Sequence[models.Backtest]
    ) -> tuple[str, str, int, int]:
        """(dataset, timeframe, start, end) the strategies run on: the request's, or the
        stored backtests' shared dataset, timeframe and period."""
        if not stored:
            return spec.dataset_id, "", spec.start_ns, spec.end_ns
        datasets = sorted({b.dataset_id for b in stored})
        if len(datasets) > 1:
            raise InvalidArgument.field(
                "backtest_ids",
                f"the backtests are on different datasets ({', '.join(datasets)}); "
                "compare backtests of one dataset",
            )
        (dataset_id,) = datasets
        if spec.dataset_id and spec.dataset_id != dataset_id:
            raise InvalidArgument.field(
                "dataset_id",
                f"the backtests are on dataset {dataset_id!r}; leave dataset_id empty or give "
                "that one",
            )
        timeframes = {b.timeframe for b in stored}
        if len(timeframes) > 1:
            native = (await self.backtests.datasets.get(principal, dataset_id)).timeframe
            timeframes = {tf or native for tf in timeframes}
            if len(timeframes) > 1:
                raise InvalidArgument.field(
                    "backtest_ids",
                    f"the backtests use different timeframes ({', '.join(sorted(timeframes))})",
                )
        (timeframe,) = timeframes
        start = max(b.start_ts for b in stored)
        end = min(b.end_ts for b in stored) + 1  # the last shared bar, inclusive
        if spec.start_ns:
            start = max(start, spec.start_ns)
        if spec.end_ns:
            end = min(end, spec.end_ns)
        if end <= start:
            raise FailedPrecondition(
                "the backtests (and the requested time range) share no period to compare over"
            )
        return dataset_id, timeframe, start, end


def _check(spec: ComparisonSpec, rank_by: str) -> None:
    v: list[FieldViolation] = []
    n = len(spec.strategy_ids) + len(spec.backtest_ids)
    if not MIN_ENTRIES <= n <= MAX_ENTRIES:
        v.append(
            FieldViolation(
                "strategy_ids",
                f"give {MIN_ENTRIES} to {MAX_ENTRIES} strategies and backtests in all (got {n})",
            )
        )
    for name, ids in (("strategy_ids", spec.strategy_ids), ("backtest_ids", spec.backtest_ids)):
        seen: set[str] = set()
        for i, value in enumerate(ids):
            if not value:
                v.append(FieldViolation(f"{name}[{i}]", "empty id"))
            elif len(value) > MAX_ID_LENGTH:
                v.append(FieldViolation(f"{name}[{i}]", "too long"))
            elif value in seen:
                v.append(FieldViolation(f"{name}[{i}]", f"{value!r} is given twice"))
            seen.add(value)
    if rank_by not in METRICS:
        v.append(FieldViolation("rank_by", f"unknown metric; one of {', '.join(METRIC_NAMES)}"))
    if not spec.dataset_id and not spec.backtest_ids:
        v.append(FieldViolation("dataset_id", "required (or give backtest_ids to use theirs)"))
    if spec.start_ns and spec.end_ns and spec.end_ns <= spec.start_ns:
        v.append(FieldViolation("time_range.end_time", "must be after start_time"))
    if v:
        raise InvalidArgument.of(v)


def _used(stored: Mapping[str, Any]) -> ExecutionOptions:
    """A backtest row's stored options with every field explicit, for echoing."""
    return ExecutionOptions.from_dict(stored).resolved()


def rank_order(values: Sequence[float], metric: str) -> list[int]:
    """Indices of `values`, best first by `metric`'s direction; ties keep the given order."""
    sign = -1.0 if METRICS[metric].direction == "maximize" else 1.0
    return sorted(range(len(values)), key=lambda i: sign * float(values[i]))


def bar_returns(equity: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``equity[t] / equity[t-1] - 1`` for t >= 1; 0 once the previous value is <= 0."""
    prev, cur = equity[:-1], equity[1:]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(prev > 0.0, cur / np.where(prev > 0.0, prev, 1.0) - 1.0, 0.0)


def return_correlations(
    curves: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """(n x n Pearson correlations of bar returns, the common timestamps).

    Curves are matched on the timestamps they all have; returns are taken between
    consecutive common bars. Undefined correlations (a flat curve, fewer than two returns)
    are 0; the diagonal is 1. The matrix is exactly symmetric.
    """
    arrays = [
        (np.asarray(ts, dtype=np.int64), np.asarray(eq, dtype=np.float64)) for ts, eq in curves
    ]
    common: npt.NDArray[np.int64] = reduce(np.intersect1d, [ts for ts, _ in arrays])
    if len(common) < 3:
        return np.eye(len(arrays)), common
    # Each curve's timestamps are sorted and unique (bars), so searchsorted finds them.
    rets = np.vstack([bar_returns(eq[np.searchsorted(ts, common)]) for ts, eq in arrays])
    flat = rets.std(axis=1) < ZERO_VOLATILITY
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.corrcoef(rets)
    c = np.nan_to_num(np.atleast_2d(c), nan=0.0, posinf=0.0, neginf=0.0)
    c[flat, :] = 0.0
    c[:, flat] = 0.0
    c = np.clip((c + c.T) / 2.0, -1.0, 1.0)
    np.fill_diagonal(c, 1.0)
    return c, common


def _load_equity(
    backtests: BacktestCatalog, backtest_id: str
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    path: Path = backtests.equity_path(backtest_id)
    if not path.exists():
        raise FailedPrecondition(f"backtest {backtest_id!r} has no stored equity curve")
    with np.load(path) as f:
        ts = np.asarray(f["ts"], dtype=np.int64)
        equity = np.asarray(f["equity"], dtype=np.float64)
    if len(ts) == 0 or len(ts) != len(equity):
        raise FailedPrecondition(f"backtest {backtest_id!r} has no stored equity curve")
    return ts, equity
