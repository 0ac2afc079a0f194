"""`stratopt live`: paper trading from the terminal. Start a stored strategy on a replayed
dataset or a feed, stop it, and read what it does: its state and performance, its signals,
fills and alerts, and `--follow` / `watch` to keep reading while it runs.

Lists print the newest `--last` events (the server pages oldest first, so the command reads
every page and keeps the tail). `--follow` then streams from the last event listed, so
nothing between the list and the stream is lost or shown twice (with nothing listed yet,
it streams what comes next). Streams end when the run ends; Ctrl-C ends them sooner; a run
that is not running has nothing to follow. With `--json`, lists print one JSON array, and
`--follow` prints every event, listed or streamed, as one JSON object per line.
"""

from __future__ import annotations

import argparse
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from stratopt.client import output as o
from stratopt.client.args import (
    add_execution,
    add_json,
    execution_from_pb,
    execution_given,
    execution_to_pb,
    subparser,
    utc_time,
)
from stratopt.client.builders import LiveKind, is_running
from stratopt.client.feeds import add_replay_arguments
from stratopt.client.remote import Remote, add_server
from stratopt.client.strategy_alerts import SEVERITY_NAMES
from stratopt.v1 import strategy_pb2 as pb
from stratopt.v1 import strategy_pb2_grpc as pbg

RUN_STATES = {
    pb.RUN_STATE_STOPPED: "stopped",
    pb.RUN_STATE_RUNNING: "running",
    pb.RUN_STATE_FAILED: "failed",
}
ACTIONS = {
    pb.SIGNAL_ACTION_BUY: "buy",
    pb.SIGNAL_ACTION_SELL: "sell",
    pb.SIGNAL_ACTION_CLOSE: "close",
}
POSITIONS = {1: "long", -1: "short", 0: "flat"}


def add_commands(sub: Any) -> None:
    live = subparser(
        sub,
        "live",
        "paper trading: start and stop a stored strategy, its performance, signals, fills "
        "and alerts",
        aliases=["paper"],
    )
    verbs = live.add_subparsers(dest="live_cmd", required=True, metavar="VERB")

    p = subparser(
        verbs,
        "start",
        "paper-trade a stored strategy on a dataset replayed bar by bar, or on a feed",
        description="Starts paper trading a stored strategy (see `stratopt strategies`). "
        "With --data the server replays that dataset to it, --speed bars per second (0: as "
        "fast as it can); with --feed it trades a feed's bars. Execution options given here "
        "override the strategy's own for this run.",
    )
    add_server(p)
    p.add_argument("strategy_id", metavar="ID")
    add_replay_arguments(p, "--feed", dest="feed_id", metavar="FEED", help="trade a feed's bars")
    p.add_argument("--symbol", default="", help="feed: the symbol to trade (default its only one)")
    p.add_argument("--warmup", type=int, default=0, help="bars that warm indicators up first")
    add_execution(p)
    add_json(p)
    p.set_defaults(func=cmd_start)

    p = subparser(verbs, "stop", "stop paper trading a strategy")
    add_server(p)
    p.add_argument("strategy_id", metavar="ID")
    p.add_argument("--close", action="store_true", help="close the open position first")
    add_json(p)
    p.set_defaults(func=cmd_stop)

    p = subparser(verbs, "status", "a run's state, position, equity and metrics", aliases=["show"])
    add_server(p)
    p.add_argument("strategy_id", metavar="ID")
    add_json(p)
    p.set_defaults(func=cmd_status)

    p = subparser(verbs, "watch", "one line of performance per interval until the run ends")
    add_server(p)
    p.add_argument("strategy_id", metavar="ID")
    p.add_argument("--interval", type=int, default=1, help="seconds between lines, 1..60")
    add_json(p)
    p.set_defaults(func=cmd_watch)

    for kind, help_text in (
        ("signals", "the signals a run gave: buy, sell or close, price and position after"),
        ("fills", "the paper fills: side, quantity, price after slippage, fee, realized P&L"),
        ("alerts", "alerts raised by rules, stops, stalled feeds and errors"),
    ):
        p = subparser(verbs, kind, help_text)
        add_server(p)
        p.add_argument("strategy_id", metavar="ID")
        p.add_argument("--last", type=int, default=20, help="the newest this many (0 = all)")
        if kind != "fills":
            p.add_argument(
                "-f", "--follow", action="store_true", help="then print new ones as they come"
            )
        add_json(p)
        p.set_defaults(func=cmd_events, kind=kind)


def _stub(r: Remote) -> pbg.StrategyServiceStub:
    return r.stub(pbg.StrategyServiceStub)


# -- start, stop, status, watch ----------------------------------------------------------------


def cmd_start(args: argparse.Namespace) -> int:
    req = pb.StartStrategyRequest(
        strategy_id=args.strategy_id,
        dataset_id=args.dataset_id or "",
        feed_id=args.feed_id or "",
        bars_per_second=args.speed,
        symbol=args.symbol,
        warmup_bars=args.warmup,
    )
    if args.start:
        req.start_time.FromDatetime(utc_time("--from", args.start))
    given = execution_given(args)
    if given:
        req.execution.CopyFrom(execution_to_pb(given))
    with Remote(args.server) as r:
        started = _stub(r).StartStrategy(req).strategy
        perf = _performance(r, args.strategy_id)
    if args.json:
        o.print_json({"strategy": o.proto_json(started), "performance": o.proto_json(perf)})
        return 0
    source = f"feed {perf.feed_id}" if args.feed_id else f"a replay of {args.dataset_id}"
    speed = f" at {o.number(args.speed)} bars/s" if args.speed else ""
    print(f"paper trading {started.name} ({started.id}) on {source}{speed}, {perf.symbol}")
    print(f"runs with {o.execution_summary(execution_from_pb(perf.execution))}")
    print(f"follow it: stratopt live watch {started.id}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    req = pb.StopStrategyRequest(strategy_id=args.strategy_id, close_position=args.close)
    with Remote(args.server) as r:
        stopped = _stub(r).StopStrategy(req).strategy
        perf = _performance(r, args.strategy_id)
    if args.json:
        o.print_json({"strategy": o.proto_json(stopped), "performance": o.proto_json(perf)})
        return 0
    print(f"stopped {stopped.name} ({stopped.id})")
    o.show(o.pairs(performance_rows(perf)))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        perf = _performance(r, args.strategy_id)
    if args.json:
        o.print_json(o.proto_json(perf))
        return 0
    metrics = {
        k: v for k, v in o.proto_json(perf.metrics).items() if k not in o.BACKTEST_ONLY_METRICS
    }
    o.show(o.pairs(performance_rows(perf)), "", o.metrics_table(metrics))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    req = pb.StreamPerformanceRequest(strategy_id=args.strategy_id, interval_seconds=args.interval)
    with Remote(args.server) as r:
        for reply in r.client.stream(_stub(r).StreamPerformance, req):
            p = reply.performance
            print(o.json_line(p) if args.json else performance_line(p), flush=True)
    return 0


def _performance(r: Remote, strategy_id: str) -> pb.PerformanceSnapshot:
    req = pb.GetPerformanceRequest(strategy_id=strategy_id)
    return _stub(r).GetPerformance(req).performance


def _position(p: pb.PerformanceSnapshot) -> str:
    side = POSITIONS.get(p.position, str(p.position))
    if not p.position:
        return side
    return f"{side} {o.number(abs(p.position_quantity))} @ {o.money(p.entry_price)}"


def _change(p: pb.PerformanceSnapshot) -> str:
    cash = p.execution.initial_cash
    return o.pct(p.equity / cash - 1, signed=True) if cash else "-"


def _last_bar(p: pb.PerformanceSnapshot) -> str:
    return o.when(p.last_bar_time.ToDatetime()) if p.HasField("last_bar_time") else "-"


def performance_rows(p: pb.PerformanceSnapshot) -> list[tuple[str, str]]:
    return [
        ("strategy", p.strategy_id),
        ("state", RUN_STATES.get(p.run_state, "never started")),
        ("trades on", f"feed {p.feed_id}, {p.symbol}" if p.feed_id else p.symbol or "-"),
        ("bars", f"{p.bars_processed:,}, the last at {_last_bar(p)}"),
        ("equity", f"{o.money(p.equity)} ({_change(p)})"),
        ("cash", o.money(p.cash)),
        ("position", _position(p)),
        ("unrealized P&L", o.money(p.unrealized_pnl)),
        ("realized P&L", o.money(p.realized_pnl)),
        ("drawdown", o.pct(p.drawdown)),
        ("runs with", o.execution_summary(execution_from_pb(p.execution))),
    ]


def performance_line(p: pb.PerformanceSnapshot) -> str:
    return (
        f"{_last_bar(p)}  "
        f"{RUN_STATES.get(p.run_state, '-'):<8} bars {p.bars_processed:>8,}  "
        f"equity {o.money(p.equity):>14} {_change(p):>9}  drawdown {o.pct(p.drawdown):>7}  "
        f"{_position(p)}"
    )


# -- signals, fills, alerts --------------------------------------------------------------------


def _at(event: pb.Signal | pb.Fill | pb.Alert) -> str:
    """The bar time of an event; "-" for an alert raised before the first bar."""
    return o.when(event.time.ToDatetime()) if event.HasField("time") else "-"


def _signal_cells(s: pb.Signal) -> list[str]:
    return [
        _at(s), s.symbol, ACTIONS.get(s.action, "-"), o.money(s.price),
        POSITIONS.get(s.position, str(s.position)), s.reason, f"{s.sequence:,}",
    ]  # fmt: skip


def _fill_cells(f: pb.Fill) -> list[str]:
    return [
        _at(f), f.symbol, ACTIONS.get(f.side, "-"), o.number(f.quantity),
        o.money(f.price), o.money(f.fee), f.reason, o.money(f.realized_pnl), f"{f.sequence:,}",
    ]  # fmt: skip


def _alert_cells(a: pb.Alert) -> list[str]:
    return [
        _at(a), SEVERITY_NAMES.get(a.severity, "-"), a.kind, a.title,
        a.message, f"{a.sequence:,}",
    ]  # fmt: skip


@dataclass(frozen=True)
class _Kind:
    """What the three event commands differ in: the list call, its field, the columns,
    and the stream that follows them (None: fills have none)."""

    list_call: Callable[[pbg.StrategyServiceStub], Any]
    list_request: type[Message]
    field: str
    columns: Sequence[str]
    cells: Callable[[Any], list[str]]
    live: LiveKind | None


KINDS = {
    "signals": _Kind(
        lambda s: s.ListSignals, pb.ListSignalsRequest, "signals",
        ["TIME (UTC)", "SYMBOL", "ACTION", ">PRICE", "POSITION", "REASON", ">SEQ"],
        _signal_cells, "signals",
    ),
    "fills": _Kind(
        lambda s: s.ListFills, pb.ListFillsRequest, "fills",
        ["TIME (UTC)", "SYMBOL", "SIDE", ">QUANTITY", ">PRICE", ">FEE", "REASON", ">REALIZED",
         ">SEQ"],
        _fill_cells, None,
    ),
    "alerts": _Kind(
        lambda s: s.ListAlerts, pb.ListAlertsRequest, "alerts",
        ["TIME (UTC)", "SEVERITY", "KIND", "TITLE", "MESSAGE", ">SEQ"],
        _alert_cells, "alerts",
    ),
}  # fmt: skip


def cmd_events(args: argparse.Namespace) -> int:
    kind = KINDS[args.kind]
    follow = getattr(args, "follow", False)
    with Remote(args.server) as r:
        request = kind.list_request(strategy_id=args.strategy_id, page_size=1000)  # type: ignore[call-arg]
        items = r.client.pages(kind.list_call(_stub(r)), request, kind.field)
        newest = _tail(items, args.last)
        if args.json and not follow:
            o.print_json([o.proto_json(m) for m in newest])
        elif args.json:
            for m in newest:
                print(o.json_line(m), flush=True)
        elif newest or not follow:
            o.show(o.table(kind.columns, [kind.cells(m) for m in newest]))
        if follow and kind.live is not None:
            after = newest[-1].sequence if newest else 0
            _follow(r, args, kind.live, kind.cells, after)
    return 0


def _follow(
    r: Remote,
    args: argparse.Namespace,
    live: LiveKind,
    cells: Callable[[Any], list[str]],
    after: int,
) -> None:
    """Prints each new event after sequence `after` until the run ends, across server
    restarts (`Client.follow_live`); nothing when the run is not running."""
    if not is_running(_performance(r, args.strategy_id)):
        return
    follow = r.client.follow_live(args.strategy_id, live, after)
    missed = 0
    for event in follow:
        print(o.json_line(event) if args.json else "  ".join(cells(event)), flush=True)
        if follow.dropped > missed:  # the server left some out for this slow reader
            o.warn(f"{follow.dropped - missed:,} {args.kind} missed: reading too slowly")
            missed = follow.dropped


def _tail(items: Iterable[Any], last: int) -> list[Any]:
    """The newest `last` items (all when 0) of an oldest-first listing."""
    kept: deque[Any] = deque(maxlen=last if last > 0 else None)
    kept.extend(items)
    return list(kept)
