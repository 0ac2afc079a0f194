"""`stratopt strategies ensemble|compare`: strategies taken together.

`ensemble` stores a strategy that trades on the combined signals of 2..10 stored ones
(a weighted vote, a majority or unanimity). `compare` backtests 2..10 strategies (and
stored backtests) on one dataset and period and prints their metrics side by side, one
column per strategy, best first by `--rank-by`, then how their bar returns correlate: two
strategies with good Sharpe ratios that move together diversify nothing.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import grpc

from stratopt.client import output as o
from stratopt.client.args import (
    add_execution,
    add_json,
    execution_given,
    execution_to_pb,
    subparser,
    utc_time,
)
from stratopt.client.output import CliError
from stratopt.client.remote import Remote, add_server
from stratopt.client.strategies import ENSEMBLE_METHODS, members_text
from stratopt.v1 import strategy_pb2 as pb
from stratopt.v1 import strategy_pb2_grpc as pbg

MEMBER_FORM = "ID[:WEIGHT], e.g. --member 3f2a...:2"


def add_verbs(verbs: Any) -> None:
    p = subparser(
        verbs,
        "ensemble",
        "store a strategy that combines the signals of 2..10 stored ones",
        description="Stores an ensemble: a strategy whose position each bar comes from its "
        "members' positions, by a weighted vote (the sign of the weighted sum), a majority "
        "or unanimity. It backtests, compares and paper-trades like any strategy.",
    )
    add_server(p)
    p.add_argument("name", help="unique among your strategies")
    p.add_argument(
        "-m",
        "--member",
        action="append",
        required=True,
        metavar="ID[:WEIGHT]",
        help="a stored strategy and its vote weight, default 1 (repeat, 2..10)",
    )
    p.add_argument(
        "--method",
        choices=list(ENSEMBLE_METHODS),
        default="weighted_vote",
        help="how member positions become one",
    )
    p.add_argument("--tag", action="append", default=[], help="tag (repeat)")
    p.add_argument("--description", default="")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the strategy id")
    add_json(p)
    p.set_defaults(func=cmd_ensemble)

    p = subparser(
        verbs,
        "compare",
        "backtest 2..10 strategies on one dataset and print their metrics side by side",
        description="Backtests each strategy on the dataset (nothing is stored) and ranks "
        "them, best first; stored backtests (--backtest) join as they were run, and the "
        "strategies then run on the period those share. Execution options given here "
        "override each strategy's own; omitted ones keep the strategy's.",
    )
    add_server(p)
    p.add_argument("strategy_ids", metavar="ID", nargs="*", help="stored strategies")
    p.add_argument("--data", dest="dataset_id", default="", help="dataset id to backtest on")
    p.add_argument(
        "--backtest",
        dest="backtest_ids",
        action="append",
        default=[],
        metavar="BACKTEST",
        help="a stored backtest to compare as it was run (repeat)",
    )
    p.add_argument("--start", help="first bar time (UTC unless it says otherwise)")
    p.add_argument("--end", help="end of the period (exclusive)")
    p.add_argument("--rank-by", default="", metavar="METRIC", help="rank by this (default sharpe)")
    add_execution(p)
    add_json(p)
    p.set_defaults(func=cmd_compare)


def _stub(r: Remote) -> pbg.StrategyServiceStub:
    return r.stub(pbg.StrategyServiceStub)


# -- ensemble -------------------------------------------------------------------------------------


def parse_member(text: str) -> pb.EnsembleMember:
    """``ID`` or ``ID:WEIGHT`` (weight > 0, default 1) -> EnsembleMember."""
    sid, sep, weight_text = text.partition(":")
    sid = sid.strip()
    if not sid:
        raise CliError(f"--member {text!r}: expected {MEMBER_FORM}")
    if not sep:
        return pb.EnsembleMember(strategy_id=sid, weight=1.0)
    try:
        weight = float(weight_text)
    except ValueError:
        weight = math.nan
    if not (math.isfinite(weight) and weight > 0):
        raise CliError(
            f"--member {text!r}: the weight {weight_text!r} must be a number above 0; "
            f"expected {MEMBER_FORM}"
        )
    return pb.EnsembleMember(strategy_id=sid, weight=weight)


def cmd_ensemble(args: argparse.Namespace) -> int:
    req = pb.CreateEnsembleRequest(
        name=args.name,
        description=args.description,
        members=[parse_member(m) for m in args.member],
        method=ENSEMBLE_METHODS[args.method],
        tags=args.tag,
    )
    with Remote(args.server) as r:
        created = _stub(r).CreateEnsemble(req).strategy
    if args.quiet:
        print(created.id)
    elif args.json:
        o.print_json(created)
    else:
        print(f"created ensemble {created.id}: {created.name} ({members_text(created)})")
    return 0


# -- compare --------------------------------------------------------------------------------------


def compare_request(args: argparse.Namespace) -> pb.CompareStrategiesRequest:
    if not args.dataset_id and not args.backtest_ids:
        raise CliError("compare needs --data DATASET (or stored backtests with --backtest)")
    req = pb.CompareStrategiesRequest(
        strategy_ids=args.strategy_ids,
        backtest_ids=args.backtest_ids,
        dataset_id=args.dataset_id,
        rank_by=args.rank_by,
    )
    for flag, value, target in (
        ("--start", args.start, req.time_range.start_time),
        ("--end", args.end, req.time_range.end_time),
    ):
        if value:
            target.FromDatetime(utc_time(flag, value))
    given = execution_given(args)
    if given:
        req.execution.CopyFrom(execution_to_pb(given))
    return req


def cmd_compare(args: argparse.Namespace) -> int:
    req = compare_request(args)
    with Remote(args.server) as r:
        reply = _stub(r).CompareStrategies(req)
        seconds = None if args.json else _bar_seconds(r, reply.dataset_id)
    if args.json:
        o.print_json(reply)
        return 0
    start = reply.time_range.start_time.ToNanoseconds()
    end = reply.time_range.end_time.ToNanoseconds()
    print(
        f"dataset {reply.dataset_id}, {o.when(start)} to {o.when(end)} UTC, "
        f"ranked by {reply.rank_by}, best first"
    )
    o.show(comparison_table(reply, seconds), "", "return correlation", correlation_table(reply))
    return 0


def _bar_seconds(r: Remote, dataset_id: str) -> float | None:
    """The dataset's bar spacing, so durations read as time; None if it cannot be read."""
    from stratopt.v1 import market_data_pb2 as mpb
    from stratopt.v1 import market_data_pb2_grpc as mpbg

    try:
        ds = r.stub(mpbg.MarketDataServiceStub).GetDataset(
            mpb.GetDatasetRequest(dataset_id=dataset_id)
        )
    except grpc.RpcError:
        return None
    return o.timeframe_seconds(ds.dataset.timeframe)


def _label(row: pb.ComparisonRow) -> str:
    return f"#{row.rank} {row.strategy_name or row.backtest_id}"


def comparison_table(reply: pb.CompareStrategiesResponse, bar_seconds: float | None) -> Any:
    """One row per metric, one column per strategy (best first), as `backtest` formats them."""
    metrics = [o.proto_json(row.metrics) for row in reply.rows]
    known = [*o.LEFT_METRICS, *o.RIGHT_METRICS]
    names = [n for n in known if n in metrics[0]] if metrics else []
    names += [n for n in (metrics[0] if metrics else {}) if n not in known]
    ids = ["id", *[row.backtest_id or row.strategy_id for row in reply.rows]]
    rows = [ids] + [
        [
            o.LABELS.get(n, n) + (" (rank)" if n == reply.rank_by else ""),
            *[o.metric(n, float(m[n]), bar_seconds) for m in metrics],
        ]
        for n in names
    ]
    return o.table(["METRIC", *[">" + _label(row) for row in reply.rows]], rows)


def correlation_table(reply: pb.CompareStrategiesResponse) -> Any:
    """Pearson correlation of bar returns, one row and column per strategy."""
    n = len(reply.rows)
    values = list(reply.return_correlations)
    rows = [
        [_label(row), *[f"{values[i * n + j]:+.2f}" for j in range(n)]]
        for i, row in enumerate(reply.rows)
        if len(values) == n * n
    ]
    return o.table(["", *[f">#{row.rank}" for row in reply.rows]], rows)
