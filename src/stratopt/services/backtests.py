"""Backtests as a service: resolve the strategy and bars, run the engine off the event loop,
store a summary row plus the full trades and equity as files beside the datasets."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stratopt import engine
from stratopt.data.bars import Bars
from stratopt.engine.options import ExecutionOptions
from stratopt.errors import FailedPrecondition, FieldViolation, InvalidArgument
from stratopt.optimize.space import build_space
from stratopt.security.principal import Principal
from stratopt.services.access import Access, load_strategy, owner_scope, require_owner
from stratopt.services.datasets import DatasetCatalog
from stratopt.services.type_resolution import resolve, resolve_in
from stratopt.services.validation import ENSEMBLE_TYPE
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.models import new_id
from stratopt.store.paging import (
    Cursor,
    Keyset,
    decode_token,
    encode_token,
    page_size,
    query_hash,
    token_int,
)
from stratopt.strategies.base import StrategyType
from stratopt.strategies.ensemble import Ensemble, EnsembleMember

MAX_EQUITY_POINTS = 20_000
MAX_TRADE_LIMIT = 1_000
MAX_MC_SIMS = 100_000
MAX_WF_COMBOS = 5_000


@dataclass
class BacktestSpec:
    strategy_id: str = ""
    strategy_type: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    dataset_id: str = ""
    start_ns: int = 0
    end_ns: int = 0
    timeframe: str = ""
    # The request's options; merged over a stored strategy's (explicit fields win).
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)
    mc_sims: int = 0
    mc_method: str = "shuffle"
    mc_block: int = 20
    mc_seed: int = 0
    wf_windows: int = 0
    wf_anchored: bool = False
    wf_in_sample: float = 0.7
    wf_metric: str = "sharpe"
    wf_grid_points: int = 5
    max_equity_points: int = 1_000
    trade_limit: int = 100
    dry_run: bool = False


@dataclass
class Outcome:
    row: models.Backtest
    trades: pd.DataFrame
    walk_forward_windows: pd.DataFrame | None = None
    walk_forward_equity: list[list[float]] = field(default_factory=list)
    # The full curve, one value per bar (the row keeps a downsampled copy), and its times.
    ts: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    equity: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))


def downsample(
    ts: npt.NDArray[np.int64], equity: npt.NDArray[np.float64], points: int
) -> list[list[float]]:
    """At most `points` points keeping each bucket's first, minimum and maximum, so peaks and
    troughs (and therefore the drawdown a user sees) survive the reduction."""
    n = len(equity)
    peak = np.maximum.accumulate(equity)
    dd = np.where(peak > 0, 1.0 - equity / peak, 0.0)
    if n <= points:
        idx = np.arange(n)
    else:
        buckets = max(points // 3, 1)
        edges = np.linspace(0, n, buckets + 1).astype(np.int64)
        keep = [0, n - 1]
        for a, b in itertools.pairwise(edges):
            if b <= a:
                continue
            seg = equity[a:b]
            keep += [int(a), int(a + np.argmin(seg)), int(a + np.argmax(seg))]
        idx = np.unique(np.asarray(keep, dtype=np.int64))
    return [[float(ts[i]), float(equity[i]), float(dd[i])] for i in idx]


class BacktestCatalog:
    def __init__(self, db: Database, datasets: DatasetCatalog, root: Path) -> None:
        self.db = db
        self.datasets = datasets
        self.root = root

    async def run(self, principal: Principal, spec: BacktestSpec) -> Outcome:
        _check_spec(spec)
        strategy, params, cfg = await self._resolve(principal, spec)
        _, bars = await self.datasets.load(
            principal, spec.dataset_id, spec.start_ns, spec.end_ns, spec.timeframe
        )
        if len(bars) < 2:
            raise FailedPrecondition("the selected period has fewer than 2 bars")
        if cfg.periods_per_year is None:
            # Echo the annualization the run used, not 0 ("inferred"): the same value the
            # engine would infer, so the metrics do not change.
            cfg = cfg.replace(periods_per_year=engine.infer_periods_per_year(bars.ts))
        started = time.perf_counter()
        result = await asyncio.to_thread(_simulate, bars, strategy, params, cfg)
        duration_ms = (time.perf_counter() - started) * 1000
        metrics, trades, equity = result
        row = models.Backtest(
            id=new_id(),
            owner_id=principal.user_id,
            strategy_id=spec.strategy_id,
            strategy_type=strategy.name,
            parameters=params,
            dataset_id=spec.dataset_id,
            start_ts=int(bars.ts[0]),
            end_ts=int(bars.ts[-1]),
            timeframe=spec.timeframe,
            execution=cfg.resolved().to_dict(),
            metrics={**metrics, "final_equity": float(equity[-1])},
            equity_curve=downsample(bars.ts, equity, spec.max_equity_points),
            trade_count=len(trades),
            bar_count=len(bars),
            duration_ms=duration_ms,
        )
        if spec.mc_sims:
            row.monte_carlo = await asyncio.to_thread(_monte_carlo, trades, equity, cfg, spec)
        outcome = Outcome(row=row, trades=trades, ts=bars.ts, equity=equity)
        if spec.wf_windows:
            if not isinstance(strategy, StrategyType):
                raise InvalidArgument.field("walk_forward", "not available for ensembles")
            await asyncio.to_thread(_walk_forward, outcome, bars, strategy, cfg, spec)
        if not spec.dry_run:
            await asyncio.to_thread(self._save_files, row.id, trades, bars.ts, equity)
            async with self.db.transaction() as s:
                s.add(row)
        return outcome

    async def get(self, principal: Principal, backtest_id: str) -> models.Backtest:
        row = await self.db.get(models.Backtest, backtest_id)
        return require_owner(principal, row, "backtest", backtest_id)

    async def list_page(
        self, principal: Principal, strategy_id: str, dataset_id: str, requested: int, token: str
    ) -> tuple[list[models.Backtest], str]:
        B = models.Backtest
        stmt = select(B)
        if (owner := owner_scope(principal)) is not None:
            stmt = stmt.where(B.owner_id == owner)
        if strategy_id:
            stmt = stmt.where(B.strategy_id == strategy_id)
        if dataset_id:
            stmt = stmt.where(B.dataset_id == dataset_id)
        qhash = query_hash(u=principal.user_id, s=strategy_id, d=dataset_id)
        return await Keyset(B.created_at, B.id, requested, token, qhash).scan(self.db, stmt)

    async def trades(
        self, principal: Principal, backtest_id: str, requested: int, token: str
    ) -> tuple[pd.DataFrame, str]:
        row = await self.get(principal, backtest_id)
        size = page_size(requested, default=100, maximum=MAX_TRADE_LIMIT)
        qhash = query_hash(b=backtest_id)
        cursor = decode_token(token, qhash)
        start = token_int(cursor.key) if cursor else 0
        frame = await self.all_trades(row)
        page = frame.iloc[start : start + size]
        nxt = start + size
        return page, encode_token(Cursor(nxt, row.id), qhash) if nxt < len(frame) else ""

    async def delete(self, principal: Principal, backtest_id: str) -> None:
        row = await self.get(principal, backtest_id)
        async with self.db.transaction() as s:
            live = await s.get(models.Backtest, row.id)
            if live is not None:
                await s.delete(live)
        folder = self.root / row.id
        for f in folder.glob("*"):
            f.unlink(missing_ok=True)
        if folder.exists():
            folder.rmdir()

    def equity_path(self, backtest_id: str) -> Path:
        return self.root / backtest_id / "equity.npz"

    def _save_files(
        self,
        bid: str,
        trades: pd.DataFrame,
        ts: npt.NDArray[np.int64],
        equity: npt.NDArray[np.float64],
    ) -> None:
        folder = self.root / bid
        folder.mkdir(parents=True, exist_ok=True)
        trades.to_parquet(folder / "trades.parquet", index=False)
        np.savez(folder / "equity.npz", ts=ts, equity=equity)

    async def all_trades(self, row: models.Backtest) -> pd.DataFrame:
        """Every trade of a backtest the caller has already been allowed to read."""
        return await asyncio.to_thread(self._load_trades, row.id)

    def _load_trades(self, bid: str) -> pd.DataFrame:
        path = self.root / bid / "trades.parquet"
        if not path.exists():
            return pd.DataFrame()
        return pd.read_parquet(path)

    async def _resolve(
        self, principal: Principal, spec: BacktestSpec
    ) -> tuple[StrategyType | Ensemble, dict[str, Any], ExecutionOptions]:
        if spec.strategy_id:
            async with self.db.session() as s:
                strat = await load_strategy(s, principal, spec.strategy_id, Access.READ)
                execution = spec.execution.over(ExecutionOptions.from_dict(strat.execution))
                if strat.strategy_type != ENSEMBLE_TYPE:
                    stype = await _stored_type(s, strat)
                    params = {**strat.parameters, **spec.parameters}
                    return stype, _valid_params(stype, params), execution
                members = []
                for m in strat.ensemble_members:
                    member = await load_strategy(s, principal, m["strategy_id"], Access.READ)
                    mt = await _stored_type(s, member)
                    members.append(
                        EnsembleMember(
                            mt, dict(mt.resolve(member.parameters)), float(m.get("weight", 1.0))
                        )
                    )
                method = strat.ensemble_method or "weighted_vote"
                return Ensemble(tuple(members), method, name=ENSEMBLE_TYPE), {}, execution
        if not spec.strategy_type:
            raise InvalidArgument.field("strategy_type", "give strategy_id or strategy_type")
        try:
            stype = (
                await resolve(
                    self.db,
                    spec.strategy_type,
                    user_id=principal.user_id,
                    is_admin=principal.is_admin,
                )
            ).stype
        except KeyError:
            raise InvalidArgument.field(
                "strategy_type", f"unknown strategy type {spec.strategy_type!r}"
            ) from None
        return stype, _valid_params(stype, spec.parameters), spec.execution


async def _stored_type(s: AsyncSession, strat: models.Strategy) -> StrategyType:
    """A stored strategy's type, user types as its owner sees them (services/type_resolution)."""
    try:
        return (await resolve_in(s, strat.strategy_type, user_id=strat.owner_id)).stype
    except KeyError:
        raise FailedPrecondition(
            f"strategy {strat.name!r} uses strategy type {strat.strategy_type!r}, "
            "which is no longer available to its owner"
        ) from None


def _valid_params(stype: StrategyType, params: Mapping[str, Any]) -> dict[str, Any]:
    v = stype.validate(params)
    if v:
        raise InvalidArgument.of(FieldViolation(x.field, x.description) for x in v)
    return dict(stype.resolve(params))


def _check_spec(spec: BacktestSpec) -> None:
    v: list[FieldViolation] = []
    if not spec.dataset_id:
        v.append(FieldViolation("dataset_id", "required"))
    if spec.strategy_id and spec.strategy_type:
        v.append(FieldViolation("strategy_type", "give strategy_id or strategy_type, not both"))
    if spec.start_ns and spec.end_ns and spec.end_ns <= spec.start_ns:
        v.append(FieldViolation("time_range.end_time", "must be after start_time"))
    if not 0 <= spec.max_equity_points <= MAX_EQUITY_POINTS:
        v.append(FieldViolation("max_equity_points", f"0..{MAX_EQUITY_POINTS}"))
    if not 0 <= spec.trade_limit <= MAX_TRADE_LIMIT:
        v.append(FieldViolation("trade_limit", f"0..{MAX_TRADE_LIMIT}"))
    if not 0 <= spec.mc_sims <= MAX_MC_SIMS:
        v.append(FieldViolation("monte_carlo.simulations", f"0..{MAX_MC_SIMS}"))
    if spec.mc_sims and not 1 <= spec.mc_block <= 10_000:
        v.append(FieldViolation("monte_carlo.block_size", "1..10000"))
    if spec.mc_seed < 0:
        v.append(FieldViolation("monte_carlo.seed", "must not be negative"))
    if spec.wf_windows and not 2 <= spec.wf_windows <= 50:
        v.append(FieldViolation("walk_forward.windows", "2..50"))
    if spec.wf_windows and not 0.1 <= spec.wf_in_sample <= 0.95:
        v.append(FieldViolation("walk_forward.in_sample_fraction", "0.1..0.95"))
    if spec.wf_windows and spec.wf_metric not in engine.METRICS:
        v.append(
            FieldViolation(
                "walk_forward.metric", f"unknown metric; one of {', '.join(engine.METRIC_NAMES)}"
            )
        )
    if spec.wf_windows and not 2 <= spec.wf_grid_points <= 20:
        v.append(FieldViolation("walk_forward.grid_points", "2..20"))
    if v:
        raise InvalidArgument.of(v)


def _simulate(
    bars: Bars,
    strategy: StrategyType | Ensemble,
    params: dict[str, Any],
    cfg: ExecutionOptions,
) -> tuple[dict[str, float], pd.DataFrame, npt.NDArray[np.float64]]:
    """One engine backtest (an ensemble is a strategy like any other): metrics, the trades
    (stored as a file, so the frame is built here) and the equity curve."""
    r = engine.backtest(bars, strategy, params, cfg)
    return r.metrics, r.trades, r.equity_values


def _monte_carlo(
    trades: pd.DataFrame, equity: npt.NDArray[np.float64], cfg: ExecutionOptions, spec: BacktestSpec
) -> dict[str, Any]:
    from stratopt.engine.montecarlo import monte_carlo

    method = spec.mc_method
    if method == "shuffle" and len(trades) < 2:
        raise FailedPrecondition("trade-shuffle Monte Carlo needs at least 2 trades")
    r = monte_carlo(
        method=method,  # type: ignore[arg-type]  # checked by the API enum
        n_sims=spec.mc_sims,
        seed=spec.mc_seed,
        trade_pnl=trades["pnl"].to_numpy(dtype=np.float64) if len(trades) else np.zeros(0),
        equity=equity,
        initial_cash=cfg.initial_cash,
        block_size=spec.mc_block if method == "block_bootstrap" else None,
    )
    return {
        "method": method,
        "simulations": r.n_sims,
        "final_return": {str(k): float(v) for k, v in r.final_return.items()},
        "max_drawdown": {str(k): float(v) for k, v in r.max_drawdown.items()},
        "probability_of_loss": float(r.prob_loss),
    }


def _walk_forward(
    outcome: Outcome,
    bars: Bars,
    stype: StrategyType,
    cfg: ExecutionOptions,
    spec: BacktestSpec,
) -> None:
    """Walk-forward over the strategy's whole space, ``grid_points`` values per parameter
    (the optimizer's grid: log-scaled parameters are spread geometrically)."""
    grid: dict[str, list[Any]] = dict(build_space(stype, ()).grid(spec.wf_grid_points))
    combos = math.prod(len(v) for v in grid.values())
    if combos > MAX_WF_COMBOS:
        raise InvalidArgument.field(
            "walk_forward.grid_points",
            f"grid has {combos} combinations (max {MAX_WF_COMBOS}); lower it",
        )
    try:
        rep = engine.walk_forward(
            bars,
            stype,
            grid,
            n_windows=spec.wf_windows,
            train_ratio=spec.wf_in_sample,
            anchored=spec.wf_anchored,
            metric=spec.wf_metric,
            options=cfg,
        )
    except ValueError as e:
        raise FailedPrecondition(f"walk-forward: {e}") from None
    outcome.walk_forward_windows = rep.windows
    eq = rep.equity
    ts = eq.index.as_unit("ns").asi8
    outcome.walk_forward_equity = downsample(
        ts, eq.to_numpy(), min(spec.max_equity_points or 1000, 2000)
    )
    outcome.row.walk_forward = {
        "efficiency_ratio": float(rep.efficiency) if np.isfinite(rep.efficiency) else 0.0,
        "metrics": {k: float(v) for k, v in rep.metrics.items()},
        "windows": windows_json(rep.windows),
        "equity": outcome.walk_forward_equity,
        "parameters": list(grid),
    }


def windows_json(windows: pd.DataFrame) -> list[dict[str, Any]]:
    """Walk-forward window rows in the JSON form stored with a backtest: window bounds as UTC
    epoch nanoseconds (ints), numbers as plain floats and ints, NaN as None."""
    frame = windows.copy()
    for name in frame.columns:
        if isinstance(frame[name].dtype, pd.DatetimeTZDtype | np.dtypes.DateTime64DType):
            frame[name] = pd.DatetimeIndex(frame[name]).as_unit("ns").asi8
    records: list[dict[str, Any]] = (
        frame.astype(object).where(frame.notna(), None).to_dict("records")
    )
    return records
