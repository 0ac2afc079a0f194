"""`stratopt backtest`: one backtest, locally on a file or on a server's dataset.

Both paths print the same summary: the period, the execution options the run actually used
(every one, defaults included), the metrics in readable units, and optionally the trades
and an HTML report.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stratopt.client import output as o
from stratopt.client.args import (
    add_execution,
    add_json,
    execution_from_pb,
    execution_given,
    execution_to_pb,
    parse_params,
    subparser,
    utc_time,
)
from stratopt.client.output import CliError
from stratopt.client.remote import Remote, add_server, param_to_pb, params_from_pb

WIDE_TRADES = 100


def add_command(sub: Any) -> None:
    p = subparser(
        sub,
        "backtest",
        "backtest a strategy, locally on a CSV/Parquet file or on a server's dataset",
        description="Runs one backtest. Without --server, --data is a CSV or Parquet file "
        "and the run is local (the same engine the server runs). With --server, --data is a "
        "stored dataset id (see `stratopt datasets ls`) and the backtest is stored on the "
        "server, so `stratopt report` can export it later.",
    )
    p.add_argument("--data", required=True, help="CSV/Parquet file, or a dataset id with --server")
    add_server(p, optional=True)
    s = p.add_mutually_exclusive_group(required=True)
    s.add_argument("--strategy", help="strategy type, e.g. sma_crossover (see `stratopt types`)")
    s.add_argument(
        "--strategy-id", help="a stored strategy (server): its type, parameters, options"
    )
    p.add_argument("-p", "--param", action="append", default=[], help="NAME=VALUE (repeat)")
    p.add_argument(
        "--timeframe", default="", help="resample to this coarser timeframe first, e.g. 4h"
    )
    p.add_argument("--start", default="", help="first bar time, e.g. 2021-03-01 (UTC)")
    p.add_argument("--end", default="", help="end time, exclusive (UTC)")
    add_execution(p)
    p.add_argument(
        "--trades",
        nargs="?",
        type=int,
        const=0,
        default=None,
        metavar="N",
        help="list the trades (all, or the first N)",
    )
    p.add_argument("--html", metavar="FILE", help="write an HTML report (equity, drawdown, trades)")
    p.add_argument("--open", action="store_true", help="open the HTML report in a browser")
    add_json(p)
    p.set_defaults(func=cmd_backtest)


@dataclass
class Outcome:
    """A finished backtest, local or remote, in the units the summary prints."""

    title: str
    data: str
    start_ns: int
    end_ns: int
    bars: int
    bar_seconds: float | None
    execution: dict[str, Any]
    metrics: dict[str, float]
    backtest_id: str = ""


def cmd_backtest(args: argparse.Namespace) -> int:
    params = parse_params(args.param)
    if args.trades is not None and args.trades < 0:
        raise CliError("--trades N must be 0 (all) or more")
    if args.server:
        return _remote(args, params)
    if args.strategy_id:
        raise CliError("a stored strategy runs on a server: add --server")
    return _local(args, params)


# -- local ------------------------------------------------------------------------------------


def _local(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from stratopt import engine
    from stratopt.data.errors import DataError
    from stratopt.data.importers import import_bars
    from stratopt.data.resample import resample
    from stratopt.strategies import registry
    from stratopt.strategies.user_types import is_user_type

    if is_user_type(args.strategy or ""):
        raise CliError(
            f"{args.strategy} is a user strategy type stored on a server: add --server "
            "and give a dataset id as --data"
        )
    path = Path(args.data)
    if not path.is_file():
        raise CliError(
            f"--data {args.data}: no such file; to backtest a stored dataset add --server "
            "(`stratopt datasets ls` lists them)"
        )
    try:
        stype = registry.get(args.strategy)
    except KeyError:
        raise CliError(
            f"unknown strategy {args.strategy!r}; one of {', '.join(registry.names())}"
        ) from None
    try:
        bars = import_bars(path)
        if args.timeframe:
            bars = resample(bars, args.timeframe)
        if args.start or args.end:
            bars = bars.between(args.start or None, args.end or None)
    except (OSError, DataError, ValueError) as e:
        raise CliError(str(e)) from None
    if len(bars) < 2:
        raise CliError("the selected period has fewer than 2 bars")
    try:
        options = engine.ExecutionOptions.from_dict(execution_given(args))
        result = engine.backtest(bars, stype, params, options)
    except ValueError as e:
        raise CliError(str(e)) from None
    used = options.resolved().to_dict()
    used["periods_per_year"] = options.periods_per_year or engine.infer_periods_per_year(bars.ts)
    metrics = {**result.metrics, "final_equity": float(result.equity_values[-1])}
    outcome = Outcome(
        title=f"{stype.display_name} ({stype.name}) {o.params_text(result.params)}",
        data=str(path),
        start_ns=int(bars.ts[0]),
        end_ns=int(bars.ts[-1]),
        bars=len(bars),
        bar_seconds=float(bars.timeframe_seconds),
        execution=used,
        metrics=metrics,
    )
    trades = _local_trades(result.trades, args.trades)
    if args.json:
        out: dict[str, Any] = {
            "strategy": stype.name,
            "parameters": result.params,
            "data": str(path),
            "bars": len(bars),
            "start_time": o.when(outcome.start_ns),
            "end_time": o.when(outcome.end_ns),
            "timeframe": o.timeframe_text(outcome.bar_seconds),
            "execution": used,
            "metrics": _json_metrics(metrics),
            "final_equity": metrics["final_equity"],
        }
        if trades is not None:
            out["trades"] = trades
        o.print_json(out)
    else:
        print_summary(outcome, trades)
    html = _html_path(args)
    if html is not None:
        from stratopt.export.reports import BacktestReport, report_html

        when = o.period(outcome.start_ns, outcome.end_ns, len(bars), outcome.bar_seconds)
        report = BacktestReport(
            strategy_name=stype.display_name,
            strategy_type=stype.name,
            parameters=result.params,
            metrics=metrics,
            ts=bars.ts,
            equity=result.equity_values,
            trades=result.trades,
            initial_cash=float(used["initial_cash"]),
            close=bars.close,
            execution=used,
            info={"Data": path.name, "Period": when},
        )
        html.write_bytes(report_html(report, charts=True))
        _report_written(html, args)
    return 0


def _local_trades(frame: Any, limit: int | None) -> list[dict[str, Any]] | None:
    if limit is None:
        return None
    rows = frame.head(limit) if limit else frame
    return [
        {
            "entry_time": o.when(int(r.entry_time.value)),
            "exit_time": o.when(int(r.exit_time.value)),
            "side": "long" if int(r.side) > 0 else "short",
            "entry_price": float(r.entry_price),
            "exit_price": float(r.exit_price),
            "size": float(r.size),
            "pnl": float(r.pnl),
            "return": float(r.ret),
            "bars_held": int(r.bars_held),
            "exit_reason": str(r.exit_reason),
        }
        for r in rows.itertuples(index=False)
    ]


# -- remote -----------------------------------------------------------------------------------


def _remote(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from stratopt.v1 import backtest_pb2 as pb
    from stratopt.v1 import backtest_pb2_grpc as pbg
    from stratopt.v1 import market_data_pb2 as mpb
    from stratopt.v1 import market_data_pb2_grpc as mpbg

    if Path(args.data).is_file():
        raise CliError(
            f"--data {args.data} is a local file; with --server give a dataset id "
            f"(upload it with `stratopt datasets import {args.data}`)"
        )
    req = pb.RunBacktestRequest(
        strategy_type=args.strategy or "",
        strategy_id=args.strategy_id or "",
        dataset_id=args.data,
        timeframe=args.timeframe,
    )
    for k, v in params.items():
        req.parameters[k].CopyFrom(param_to_pb(v))
    given = execution_given(args)
    if given:
        req.execution.CopyFrom(execution_to_pb(given))
    for flag, value, target in (
        ("--start", args.start, req.time_range.start_time),
        ("--end", args.end, req.time_range.end_time),
    ):
        if value:
            target.FromDatetime(utc_time(flag, value))
    with Remote(args.server) as r:
        bt = r.stub(pbg.BacktestServiceStub).RunBacktest(req).backtest
        timeframe = args.timeframe
        if not timeframe:
            ds = r.stub(mpbg.MarketDataServiceStub).GetDataset(
                mpb.GetDatasetRequest(dataset_id=args.data)
            )
            timeframe = ds.dataset.timeframe
        trades = None
        if args.trades is not None:
            trades = [
                trade_dict(t)
                for t in r.client.pages(
                    r.client.backtests.ListBacktestTrades,
                    pb.ListBacktestTradesRequest(backtest_id=bt.id, page_size=1_000),
                    "trades",
                    limit=args.trades,
                )
            ]
        html = _html_path(args)
        if html is not None:
            from stratopt.client.exports import server_report

            server_report(r, bt.id, html)
    outcome = stored_outcome(bt, o.timeframe_seconds(timeframe))
    if args.json:
        out = o.proto_json(bt)
        if trades is not None:
            out["trades"] = trades
        o.print_json(out)
    else:
        print_summary(outcome, trades)
    if html is not None:
        _report_written(html, args)
    return 0


def stored_outcome(bt: Any, bar_seconds: float | None) -> Outcome:
    """A stored backtest (a `Backtest` message) as the summary prints it: shared by
    `backtest --server` and `backtests show`, so both print the same thing."""
    return Outcome(
        title=f"{bt.strategy_type} {o.params_text(params_from_pb(bt.parameters))}",
        data=f"dataset {bt.dataset_id}",
        start_ns=bt.time_range.start_time.ToNanoseconds(),
        end_ns=bt.time_range.end_time.ToNanoseconds(),
        bars=bt.bar_count,
        bar_seconds=bar_seconds,
        execution=execution_from_pb(bt.execution),
        metrics=o.proto_json(bt.metrics),
        backtest_id=bt.id,
    )


def trade_dict(t: Any) -> dict[str, Any]:
    """A server trade (a `Trade` message) in the units the trades table and `--json` use."""
    from stratopt.v1 import common_pb2 as c

    return {
        "entry_time": o.when(t.entry_time.ToNanoseconds()),
        "exit_time": o.when(t.exit_time.ToNanoseconds()),
        "side": "short" if t.side == c.TRADE_SIDE_SHORT else "long",
        "entry_price": t.entry_price,
        "exit_price": t.exit_price,
        "size": t.size,
        "pnl": t.pnl,
        "return": t.trade_return,
        "bars_held": t.bars_held,
        "exit_reason": c.ExitReason.Name(t.exit_reason).removeprefix("EXIT_REASON_").lower(),
    }


# -- output -----------------------------------------------------------------------------------


def _json_metrics(metrics: dict[str, float]) -> dict[str, float | int]:
    return {k: int(v) if k in o.INTEGER_METRICS else float(v) for k, v in metrics.items()}


def print_summary(r: Outcome, trades: list[dict[str, Any]] | None) -> None:
    """The summary every backtest prints: strategy, data, execution, metrics (and trades)."""
    rows = [
        ("strategy", r.title),
        ("data", f"{r.data}: {o.period(r.start_ns, r.end_ns, r.bars, r.bar_seconds)}"),
        ("execution", o.execution_summary(r.execution, r.bar_seconds)),
    ]
    if r.backtest_id:
        rows.append(
            (
                "backtest",
                f"{r.backtest_id} (stratopt report --backtest {r.backtest_id} -o report.html)",
            )
        )
    parts: list[Any] = [o.pairs(rows), "", o.metrics_table(r.metrics, r.bar_seconds)]
    if o.zero_costs(r.execution):
        o.warn(o.ZERO_COSTS)
    if trades is not None:
        parts += ["", trades_table(trades, r.bar_seconds)]
    o.show(*parts)


def trades_table(
    trades: list[dict[str, Any]], bar_seconds: float | None, *, first: int = 1, title: str = ""
) -> Any:
    """The trades, numbered from `first` (a tail keeps each trade's number in the whole
    list); a terminal narrower than WIDE_TRADES columns gets the holding time in place of
    the exit time and the P&L."""
    wide = o.console().width >= WIDE_TRADES
    rows = []
    for i, t in enumerate(trades, first):
        held = o.span(t["bars_held"] * bar_seconds) if bar_seconds else f"{t['bars_held']} bars"
        rows.append(
            [
                str(i),
                t["side"],
                t["entry_time"],
                *([t["exit_time"]] if wide else [held]),
                f"{t['entry_price']:,.2f}",
                f"{t['exit_price']:,.2f}",
                *([f"{t['pnl']:,.2f}"] if wide else []),
                o.pct(t["return"], signed=True),
                t["exit_reason"],
            ]
        )
    columns = [">#", "SIDE", "ENTRY (UTC)", *(["EXIT (UTC)"] if wide else [">HELD"])]
    columns += [">ENTRY", ">EXIT", *([">P&L"] if wide else []), ">RETURN", "EXIT"]
    return o.table(columns, rows, title=title or f"{len(trades):,} trades")


def _html_path(args: argparse.Namespace) -> Path | None:
    if args.html:
        return Path(args.html)
    if args.open:
        fd, name = tempfile.mkstemp(prefix="stratopt-backtest-", suffix=".html")
        import os

        os.close(fd)
        return Path(name)
    return None


def _report_written(path: Path, args: argparse.Namespace) -> None:
    print(f"report: {path}", file=sys.stderr)
    if args.open:
        from stratopt.client.exports import open_in_browser

        open_in_browser(path)
