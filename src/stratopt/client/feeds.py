"""`stratopt feeds`: the bar feeds paper trading runs on. List, show, create (a shared replay
of a dataset, or a push feed) and delete them, and push a CSV or Parquet file of bars into a
push feed, all at once or paced like a live exchange (`--rate`), which is how to try a
strategy on bars that arrive while it runs without writing a bridge.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stratopt.client import output as o
from stratopt.client.args import add_json, subparser, utc_time
from stratopt.client.output import CliError
from stratopt.client.remote import Remote, add_server
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import market_data_pb2 as pb
from stratopt.v1 import market_data_pb2_grpc as pbg

if TYPE_CHECKING:
    from stratopt.data import Bars

KINDS = {pb.FEED_KIND_PUSH: "push", pb.FEED_KIND_REPLAY: "replay"}
BATCH = 500
"""Bars per PushBars message when not paced: well under the 4 MiB request limit."""


def add_commands(sub: Any) -> None:
    feeds = subparser(
        sub,
        "feeds",
        "bar feeds for paper trading: shared replays and push feeds, and pushing bars",
        aliases=["feed"],
    )
    verbs = feeds.add_subparsers(dest="feeds_cmd", required=True, metavar="VERB")

    p = subparser(verbs, "ls", "list your feeds", aliases=["list"])
    add_server(p)
    add_json(p)
    p.set_defaults(func=cmd_ls)

    p = subparser(verbs, "show", "one feed: kind, symbols, bars accepted and rejected")
    add_server(p)
    p.add_argument("feed_id", metavar="FEED")
    add_json(p)
    p.set_defaults(func=cmd_show)

    p = subparser(
        verbs,
        "create",
        "a shared replay of a dataset (--data) or a push feed (--symbol)",
        description="Creates a feed that strategies start on with `stratopt live start ID "
        "--feed FEED`. A replay plays a stored dataset to every strategy on it, --speed bars "
        "per second (0: as fast as it can). A push feed carries the bars you send with "
        "`stratopt feeds push` (or PushBars); with --timeframe, three silent bar spacings "
        "raise a stalled-feed alert.",
    )
    add_server(p)
    p.add_argument("name", help="a name to tell it by")
    add_replay_arguments(
        p,
        "--symbol",
        dest="symbols",
        action="append",
        metavar="SYMBOL",
        help="push feed: a symbol (repeat)",
    )
    p.add_argument("--timeframe", default="", help="push feed: bar spacing, e.g. 1m")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the feed id")
    add_json(p)
    p.set_defaults(func=cmd_create)

    p = subparser(
        verbs,
        "push",
        "send a CSV or Parquet file of bars into a push feed",
        description="Sends the bars of a CSV or Parquet file (timestamp, open, high, low, "
        "close, volume) to a push feed for one symbol. The server validates every bar on its "
        "own: rejected ones are listed with their reason, the others go through. --rate "
        "sends that many bars per second, as an exchange would.",
    )
    add_server(p)
    p.add_argument("feed_id", metavar="FEED")
    p.add_argument("file", help="CSV or Parquet file")
    p.add_argument("--symbol", required=True, help="the symbol the bars are of")
    p.add_argument("--rate", type=float, default=0.0, help="bars per second (0 = all at once)")
    add_json(p)
    p.set_defaults(func=cmd_push)

    p = subparser(verbs, "rm", "delete feeds no strategy runs on", aliases=["delete"])
    add_server(p)
    p.add_argument("feed_ids", metavar="FEED", nargs="+")
    add_json(p)
    p.set_defaults(func=cmd_rm)


def add_replay_arguments(p: argparse.ArgumentParser, other_source: str, **other: Any) -> None:
    """The bar source of `live start` and `feeds create`: --data DATASET (a replay, with
    --speed and --from) or `other_source` (added with `other`), exactly one of them."""
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", dest="dataset_id", metavar="DATASET", help="replay a dataset")
    source.add_argument(other_source, **other)
    p.add_argument("--speed", type=float, default=0.0, help="replay: bars per second (0 = max)")
    p.add_argument("--from", dest="start", metavar="TIME", help="replay: the first bar")


def _stub(r: Remote) -> pbg.MarketDataServiceStub:
    return r.stub(pbg.MarketDataServiceStub)


def _source(f: pb.Feed) -> str:
    if f.kind != pb.FEED_KIND_REPLAY:
        return ", ".join(f.symbols) or "-"
    speed = f"{o.number(f.bars_per_second)} bars/s" if f.bars_per_second else "max speed"
    return f"dataset {f.dataset_id} at {speed}" + (", finished" if f.finished else "")


def _last_bar(f: pb.Feed) -> str:
    return o.when(f.last_bar_time.ToDatetime()) if f.HasField("last_bar_time") else "-"


def cmd_ls(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        feeds = list(
            r.client.pages(_stub(r).ListFeeds, pb.ListFeedsRequest(page_size=200), "feeds")
        )
    if args.json:
        o.print_json([o.proto_json(f) for f in feeds])
        return 0
    rows = [
        [
            f.id, f.display_name, KINDS.get(f.kind, "-"), _source(f), f.timeframe or "-",
            f"{f.bars_accepted:,}", f"{f.bars_rejected:,}", _last_bar(f),
            f"{f.running_strategy_count:,}",
        ]
        for f in feeds
    ]  # fmt: skip
    columns = ["FEED", "NAME", "KIND", "SOURCE", "TF", ">BARS", ">REJECTED", "LAST BAR (UTC)",
               ">RUNNING"]  # fmt: skip
    o.show(o.table(columns, rows))
    return 0


def show_feed(f: pb.Feed, json: bool) -> None:
    if json:
        o.print_json(f)
        return
    o.show(
        o.pairs(
            [
                ("feed", f.id),
                ("name", f.display_name or "-"),
                ("kind", KINDS.get(f.kind, "-")),
                ("source", _source(f)),
                ("timeframe", f.timeframe or "-"),
                ("bars", f"{f.bars_accepted:,} accepted, {f.bars_rejected:,} rejected"),
                ("last bar", _last_bar(f)),
                ("strategies running", f"{f.running_strategy_count:,}"),
                ("created", o.when(f.create_time.ToDatetime())),
            ]
        )
    )


def cmd_show(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        feed = _stub(r).GetFeed(pb.GetFeedRequest(feed_id=args.feed_id)).feed
    show_feed(feed, args.json)
    return 0


def cmd_create(args: argparse.Namespace) -> int:
    feed = pb.Feed(display_name=args.name, timeframe=args.timeframe)
    if args.dataset_id:
        feed.kind = pb.FEED_KIND_REPLAY
        feed.dataset_id = args.dataset_id
        feed.bars_per_second = args.speed
        if args.start:
            feed.start_time.FromDatetime(utc_time("--from", args.start))
    else:
        feed.kind = pb.FEED_KIND_PUSH
        feed.symbols.extend(args.symbols)
    with Remote(args.server) as r:
        created = _stub(r).CreateFeed(pb.CreateFeedRequest(feed=feed)).feed
    if args.quiet:
        print(created.id)
    else:
        show_feed(created, args.json)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    from stratopt.data import DataError, import_bars  # numpy and pyarrow: only when pushing

    try:
        bars = import_bars(path)
    except DataError as e:
        raise CliError(f"{path}: {e}") from None
    requests = _requests(args.feed_id, args.symbol, bars, args.rate)
    with Remote(args.server) as r:
        reply = _stub(r).PushBars(requests)
    if args.json:
        o.print_json(reply)
        return 0
    print(f"pushed {len(bars.ts):,} bars of {args.symbol}: {reply.accepted:,} accepted, "
          f"{reply.rejected:,} rejected")  # fmt: skip
    if reply.rejections:
        rows = [[f"{x.index:,}", x.symbol, o.when(x.time.ToDatetime()), x.reason]
                for x in reply.rejections]  # fmt: skip
        o.show(o.table([">ROW", "SYMBOL", "TIME (UTC)", "REASON"], rows))
    return 0


def _requests(feed_id: str, symbol: str, bars: Bars, rate: float) -> Iterator[pb.PushBarsRequest]:
    """PushBars messages: batches of BATCH, or one bar every 1/`rate` seconds (the stream
    stays open meanwhile, and the server hands each bar on as it arrives)."""
    step = 1 if rate > 0 else BATCH
    n = len(bars.ts)
    start = time.monotonic()
    for i in range(0, n, step):
        if rate > 0:
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
        yield pb.PushBarsRequest(
            feed_id=feed_id,
            bars=[_feed_bar(symbol, bars, k) for k in range(i, min(i + step, n))],
        )


def _feed_bar(symbol: str, bars: Bars, k: int) -> pb.FeedBar:
    bar = c.Bar(
        open=float(bars.open[k]), high=float(bars.high[k]), low=float(bars.low[k]),
        close=float(bars.close[k]), volume=float(bars.volume[k]),
    )  # fmt: skip
    bar.time.FromNanoseconds(int(bars.ts[k]))
    return pb.FeedBar(symbol=symbol, bar=bar)


def cmd_rm(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        stub = _stub(r)
        return o.delete_each(
            "feed", args.feed_ids,
            lambda fid: stub.DeleteFeed(pb.DeleteFeedRequest(feed_id=fid)), args.json,
        )  # fmt: skip
