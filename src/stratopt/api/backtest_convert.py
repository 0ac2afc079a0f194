"""BacktestService messages <-> backtest records."""

from __future__ import annotations

from typing import Any

import pandas as pd

from stratopt.api.convert import (
    execution_to_pb,
    fill_params,
    finite,
    ns_to_pb,
    ts_to_pb,
)
from stratopt.engine.options import ExecutionOptions
from stratopt.services.records import Backtest
from stratopt.v1 import backtest_pb2 as pb
from stratopt.v1 import common_pb2 as c

EXIT_TO_PB = {
    "signal": c.EXIT_REASON_SIGNAL,
    "stop": c.EXIT_REASON_STOP_LOSS,
    "target": c.EXIT_REASON_TAKE_PROFIT,
    "trail": c.EXIT_REASON_TRAILING_STOP,
    "end": c.EXIT_REASON_END_OF_DATA,
}
MC_TO_PB = {
    "shuffle": pb.MONTE_CARLO_METHOD_TRADE_SHUFFLE,
    "block_bootstrap": pb.MONTE_CARLO_METHOD_BLOCK_BOOTSTRAP,
}
MC_FROM_PB = {v: k for k, v in MC_TO_PB.items()}
METRIC_FIELDS = [f.name for f in c.Metrics.DESCRIPTOR.fields]
INT_METRIC_FIELDS = frozenset({"num_trades", "winning_trades", "losing_trades"})


def metrics_to_pb(m: dict[str, Any]) -> c.Metrics:
    out = c.Metrics()
    for name in METRIC_FIELDS:
        if name in m:
            if name in INT_METRIC_FIELDS:
                setattr(out, name, int(finite(m[name])))
            else:
                setattr(out, name, finite(m[name]))
    return out


def trades_to_pb(frame: pd.DataFrame) -> list[c.Trade]:
    out = []
    for r in frame.itertuples(index=False):
        t = c.Trade(
            entry_index=int(r.entry_idx),
            exit_index=int(r.exit_idx),
            side=c.TRADE_SIDE_LONG if int(r.side) > 0 else c.TRADE_SIDE_SHORT,
            entry_price=float(r.entry_price),
            exit_price=float(r.exit_price),
            size=float(r.size),
            pnl=finite(r.pnl),
            trade_return=finite(r.ret),
            bars_held=int(r.bars_held),
            exit_reason=EXIT_TO_PB.get(str(r.exit_reason), 0),  # type: ignore[arg-type]
        )
        t.entry_time.CopyFrom(ns_to_pb(pd.Timestamp(r.entry_time).value))
        t.exit_time.CopyFrom(ns_to_pb(pd.Timestamp(r.exit_time).value))
        out.append(t)
    return out


def equity_to_pb(points: list[list[float]]) -> list[c.EquityPoint]:
    return [
        c.EquityPoint(time=ns_to_pb(int(ts)), equity=float(eq), drawdown=float(dd))
        for ts, eq, dd in points
    ]


def backtest_to_pb(row: Backtest, *, summary: bool = False) -> pb.Backtest:
    b = pb.Backtest(
        id=row.id,
        strategy_id=row.strategy_id,
        strategy_type=row.strategy_type,
        dataset_id=row.dataset_id,
        execution=execution_to_pb(ExecutionOptions.from_dict(row.execution).resolved()),
        metrics=metrics_to_pb(row.metrics),
        trade_count=row.trade_count,
        bar_count=row.bar_count,
        owner_id=row.owner_id,
        duration_ms=row.duration_ms,
    )
    fill_params(b.parameters, row.parameters)
    b.time_range.start_time.CopyFrom(ns_to_pb(row.start_ts))
    b.time_range.end_time.CopyFrom(ns_to_pb(row.end_ts))
    if row.created_at is not None:
        b.create_time.CopyFrom(ts_to_pb(row.created_at))
    if not summary:
        b.equity_curve.extend(equity_to_pb(row.equity_curve))
        _monte_carlo(b, row.monte_carlo)
        _walk_forward(b, row.walk_forward)
    return b


def _monte_carlo(b: pb.Backtest, mc: dict[str, Any]) -> None:
    if not mc:
        return
    b.monte_carlo.simulations = int(mc["simulations"])
    b.monte_carlo.method = MC_TO_PB.get(mc["method"], pb.MONTE_CARLO_METHOD_UNSPECIFIED)
    b.monte_carlo.probability_of_loss = finite(mc["probability_of_loss"])
    for target, key in (
        (b.monte_carlo.final_return, "final_return"),
        (b.monte_carlo.max_drawdown, "max_drawdown"),
    ):
        for p in (5, 25, 50, 75, 95):
            setattr(target, f"p{p}", finite(mc[key].get(str(p), 0.0)))


def _walk_forward(b: pb.Backtest, wf: dict[str, Any]) -> None:
    if not wf:
        return
    b.walk_forward.efficiency_ratio = finite(wf["efficiency_ratio"])
    b.walk_forward.out_of_sample_metrics.CopyFrom(metrics_to_pb(wf["metrics"]))
    b.walk_forward.out_of_sample_equity.extend(equity_to_pb(wf["equity"]))
    names = wf.get("parameters", [])
    for w in wf["windows"]:
        win = b.walk_forward.windows.add()
        for target, a, z in (
            (win.in_sample, "train_start", "train_end"),
            (win.out_of_sample, "test_start", "test_end"),
        ):
            target.start_time.CopyFrom(ns_to_pb(pd.Timestamp(w[a]).value))
            target.end_time.CopyFrom(ns_to_pb(pd.Timestamp(w[z]).value))
        fill_params(win.parameters, {n: w[n] for n in names if n in w})
        metric_keys = {k[3:]: v for k, v in w.items() if k.startswith("is_")}
        oos_keys = {k[4:]: v for k, v in w.items() if k.startswith("oos_")}
        win.in_sample_metrics.CopyFrom(metrics_to_pb(metric_keys))
        win.out_of_sample_metrics.CopyFrom(metrics_to_pb(oos_keys))
