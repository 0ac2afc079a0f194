"""What a report shows, gathered with the caller's rights: a backtest (its row, every trade,
the full equity file, the dataset's prices for buy-and-hold) or an optimization job (its
result and every completed trial). export.reports / export.job_reports then render it.

Every read goes through the owning catalog, so another user's backtest, strategy, dataset
or job is NOT_FOUND here exactly as it is through their own RPCs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from stratopt.engine.options import ExecutionOptions
from stratopt.errors import StratoptError
from stratopt.export.job_reports import JobReport, Trial
from stratopt.export.pine import period_text
from stratopt.export.reports import BacktestReport
from stratopt.jobs.views import TrialView
from stratopt.optimize.spec import StudySpec
from stratopt.security.principal import Principal
from stratopt.services.access import Access, load_strategy
from stratopt.services.backtests import BacktestCatalog
from stratopt.services.optimization_jobs import OptimizationJobs
from stratopt.services.user_definitions import may_read
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.strategies import registry
from stratopt.strategies.user_types import definition_id, is_user_type

TRIAL_PAGE = 1_000
# Reports render one at a time anyway (export.report_doc holds a lock around matplotlib);
# their own thread keeps a queue of them from occupying the default executor's few threads,
# which backtests and file I/O share.
_RENDER_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stratopt-report")


async def rendered(render: Callable[[], bytes]) -> bytes:
    """Runs a CPU-bound render off the event loop, in the report thread."""
    return await asyncio.get_running_loop().run_in_executor(_RENDER_POOL, render)


async def backtest_report(
    backtests: BacktestCatalog, principal: Principal, backtest_id: str
) -> BacktestReport:
    bt = await backtests.get(principal, backtest_id)
    trades = await backtests.all_trades(bt)
    ts, equity = await asyncio.to_thread(_equity, backtests.equity_path(bt.id), bt)
    close, missing = await _close(backtests, principal, bt, ts)
    execution = ExecutionOptions.from_dict(bt.execution).resolved().to_dict()
    name = await _strategy_name(backtests, principal, bt)
    info = {
        "Backtest": bt.id,
        "Dataset": f"datasets/{bt.dataset_id}" + (f" ({bt.timeframe})" if bt.timeframe else ""),
        "Period": f"{period_text(bt.start_ts, bt.end_ts)}, {bt.bar_count:,} bars",
    }
    if bt.strategy_id:
        info["Strategy"] = f"strategies/{bt.strategy_id}"
    return BacktestReport(
        strategy_name=name,
        strategy_type=bt.strategy_type,
        parameters=dict(bt.parameters),
        metrics=dict(bt.metrics),
        ts=ts,
        equity=equity,
        trades=trades,
        initial_cash=float(execution.get("initial_cash") or (equity[0] if len(equity) else 0)),
        close=close,
        execution=execution,
        info=info,
        extra={
            "backtest_id": bt.id,
            "strategy_id": bt.strategy_id,
            "dataset_id": bt.dataset_id,
            "timeframe": bt.timeframe,
            "start_ts": bt.start_ts,
            "end_ts": bt.end_ts,
            "bar_count": bt.bar_count,
            "created_at": bt.created_at.isoformat() if bt.created_at else "",
            "monte_carlo": bt.monte_carlo,
            "walk_forward": bt.walk_forward,
        },
        missing_prices=missing,
    )


def _equity(
    path: Path, bt: models.Backtest
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """The full curve from the backtest's file, else the row's downsampled copy."""
    if path.exists():
        with np.load(path) as f:
            return np.asarray(f["ts"], dtype=np.int64), np.asarray(f["equity"], dtype=np.float64)
    curve = np.asarray(bt.equity_curve or np.zeros((0, 3)), dtype=np.float64)
    if not len(curve):
        return np.zeros(0, np.int64), np.zeros(0)
    return curve[:, 0].astype(np.int64), curve[:, 1].copy()


async def _close(
    backtests: BacktestCatalog,
    principal: Principal,
    bt: models.Backtest,
    ts: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.float64] | None, str]:
    """The dataset's close at each equity time, or None and why (deleted dataset, ...)."""
    if not len(ts):
        return None, "the backtest has no equity curve"
    try:
        _, bars = await backtests.datasets.load(
            principal, bt.dataset_id, bt.start_ts, bt.end_ts + 1, bt.timeframe
        )
    except StratoptError as e:
        return None, f"datasets/{bt.dataset_id} cannot be read ({e})"
    pos = np.searchsorted(bars.ts, ts)
    if len(bars.ts) == 0 or pos.max() >= len(bars.ts) or not np.array_equal(bars.ts[pos], ts):
        return None, f"datasets/{bt.dataset_id} no longer has the backtest's bars"
    return np.asarray(bars.close[pos], dtype=np.float64), ""


async def _strategy_name(
    backtests: BacktestCatalog, principal: Principal, bt: models.Backtest
) -> str:
    if bt.strategy_id:
        try:
            async with backtests.db.session() as s:
                return (await load_strategy(s, principal, bt.strategy_id, Access.READ)).name
        except StratoptError:
            pass  # deleted since: fall back to the type's name
    return await type_display_name(backtests.db, bt.strategy_type, bt.owner_id)


async def type_display_name(db: Database, name: str, owner_id: str) -> str:
    """What a report calls a strategy type: a built-in's display name, a user type's
    definition name (the "user_<id>" name means nothing to a reader), else `name` itself.

    A user type is named only if the work's owner may still read its definition (whoever
    may read the report saw the work's type; the definition's name is the owner's to show).
    """
    try:
        return registry.get(name).display_name
    except KeyError:
        pass
    if is_user_type(name):
        async with db.session() as s:
            row = await s.get(models.UserDefinition, definition_id(name))
            if row is not None and await may_read(s, row, owner_id, False):
                return row.name
    return name


async def job_report(jobs: OptimizationJobs, principal: Principal, job_id: str) -> JobReport:
    result = await jobs.result(principal, job_id)
    job = result.job
    views: list[TrialView] = []
    token = ""
    while True:
        page, token = await jobs.trials(principal, job_id, "number", TRIAL_PAGE, token)
        views += page
        if not token:
            break
    spec = job.spec
    v = result.validation
    periods: list[str] = []
    if v is not None and v.walk_forward_windows:
        periods = await _window_periods(jobs, principal, job.spec, len(v.walk_forward_windows))
    info = {
        "Dataset": f"datasets/{spec.dataset_id}"
        + (f" ({spec.timeframe})" if spec.timeframe else ""),
        "Period": period_text(spec.start_ns, spec.end_ns),
        "Sampler": spec.sampler,
        "Trials": f"{job.trials_completed:,} of {job.trials_total:,}",
    }
    if spec.strategy_id:
        info["Strategy"] = f"strategies/{spec.strategy_id}"
    display = str(spec.definition.get("display_name") or "") or await type_display_name(
        jobs.db, spec.strategy_type, job.owner_id
    )
    return JobReport(
        job_id=job.id,
        title=f"{display}: optimization report",
        state=job.state,
        strategy_type=spec.strategy_type,
        objectives=[(o.metric, o.direction) for o in spec.objectives],
        trials=[_trial(t) for t in views if t.state == "complete"],
        best=_trial(result.best) if result.best else None,
        pareto_front=[_trial(t) for t in result.pareto_front],
        importances=result.importances,
        info=info,
        in_sample=dict(v.in_sample) if v else {},
        out_of_sample=dict(v.out_of_sample) if v else {},
        walk_forward_windows=list(v.walk_forward_windows) if v else [],
        walk_forward_efficiency=v.walk_forward_efficiency if v else None,
        walk_forward_periods=periods,
        spec=spec.to_dict(),
        selection_bias=result.selection_bias.to_dict() if result.selection_bias else {},
    )


def _trial(t: TrialView) -> Trial:
    return Trial(
        number=t.number,
        params=t.params,
        values=list(t.values),
        metrics=t.metrics,
        feasible=t.feasible,
        complete_time=t.complete_time.isoformat() if t.complete_time else "",
        duration_ms=t.duration_ms,
    )


async def _window_periods(
    jobs: OptimizationJobs, principal: Principal, spec: StudySpec, count: int
) -> list[str]:
    """The dates of each walk-forward window (validation splits the job's bars into
    `count` equal runs of bars); empty if the dataset cannot be read any more."""
    try:
        _, bars = await jobs.datasets.load(
            principal, spec.dataset_id, spec.start_ns, spec.end_ns, spec.timeframe
        )
    except StratoptError:
        return []
    n = len(bars.ts)
    if n < count:
        return []
    edges = [round(i * n / count) for i in range(count + 1)]
    out = []
    for i in range(count):
        a = 0 if spec.validation.anchored else edges[i]
        b = max(edges[i + 1] - 1, a)
        out.append(f"{_day(int(bars.ts[a]))}..{_day(int(bars.ts[b]))}")
    return out


def _day(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).strftime("%Y-%m-%d")
