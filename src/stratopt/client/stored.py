"""`stratopt backtests` and `stratopt files`: what the server keeps of earlier work.

Every `backtest --server` is stored, and every report and server-side Pine Script export
is kept as a file until it expires. These commands list them, show them again and delete
them, so a result can be looked at (or downloaded) long after the command that made it,
and old ones can be cleared away.

`backtests show` prints exactly the summary `backtest --server` printed (backtest.py owns
it); `files get` downloads through the same helper `report` uses (exports.py), so a file
comes down the same way whichever command asked for it.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc

from stratopt.client import output as o
from stratopt.client.args import add_json, subparser
from stratopt.client.backtest import print_summary, stored_outcome, trade_dict, trades_table
from stratopt.client.exports import download
from stratopt.client.output import CliError
from stratopt.client.remote import Remote, add_server, params_from_pb
from stratopt.v1 import backtest_pb2 as bpb
from stratopt.v1 import backtest_pb2_grpc as bpbg
from stratopt.v1 import export_pb2 as epb
from stratopt.v1 import export_pb2_grpc as epbg
from stratopt.v1 import market_data_pb2 as mpb
from stratopt.v1 import market_data_pb2_grpc as mpbg

FILE_KINDS = {
    "pine": epb.EXPORT_KIND_PINE_SCRIPT,
    "report": epb.EXPORT_KIND_REPORT,
}
KIND_NAMES = {v: k for k, v in FILE_KINDS.items()}
RESAMPLED = 0.75
"""A stored backtest with fewer bars than this share of its dataset's over the same period
was resampled (`backtest --timeframe`); see `bar_seconds`."""


def add_commands(sub: Any) -> None:
    _add_backtests(sub)
    _add_files(sub)


def _add_backtests(sub: Any) -> None:
    backtests = subparser(
        sub,
        "backtests",
        "stored backtests (every `backtest --server` is kept): list, show, trades, delete",
        description="The backtests the server keeps: each `stratopt backtest --server` "
        "stores its run. Admins see everyone's.",
    )
    verbs = backtests.add_subparsers(dest="backtests_cmd", required=True, metavar="VERB")

    p = subparser(verbs, "ls", "list stored backtests, newest first", aliases=["list"])
    add_server(p)
    p.add_argument("--strategy-id", default="", help="only the runs of this stored strategy")
    p.add_argument("--data", default="", metavar="DATASET", help="only the runs on this dataset")
    p.add_argument("--last", type=int, default=50, help="the newest this many (0 = all)")
    add_json(p)
    p.set_defaults(func=cmd_backtests_ls)

    p = subparser(
        verbs,
        "show",
        "a stored backtest: the summary `backtest --server` printed",
        description="Prints a stored backtest the way `stratopt backtest --server` printed "
        "it when it ran: strategy, data, every execution option, the metrics.",
    )
    add_server(p)
    p.add_argument("backtest_id", metavar="ID")
    add_json(p)
    p.set_defaults(func=cmd_backtests_show)

    p = subparser(verbs, "trades", "the trades of a stored backtest")
    add_server(p)
    p.add_argument("backtest_id", metavar="ID")
    p.add_argument("--last", type=int, default=20, help="the last this many trades (0 = all)")
    add_json(p)
    p.set_defaults(func=cmd_backtests_trades)

    p = subparser(verbs, "rm", "delete stored backtests", aliases=["delete"])
    add_server(p)
    p.add_argument("backtest_ids", metavar="ID", nargs="+")
    add_json(p)
    p.set_defaults(func=cmd_backtests_rm)


def _add_files(sub: Any) -> None:
    files = subparser(
        sub,
        "files",
        "export files kept on the server (reports, Pine Script): list, download, delete",
        description="The files `stratopt report` and `stratopt export pine --server` made; "
        "the server keeps each until it expires.",
    )
    verbs = files.add_subparsers(dest="files_cmd", required=True, metavar="VERB")

    p = subparser(verbs, "ls", "list your export files, newest first", aliases=["list"])
    add_server(p)
    p.add_argument("--kind", choices=sorted(FILE_KINDS), help="only reports or Pine Scripts")
    add_json(p)
    p.set_defaults(func=cmd_files_ls)

    p = subparser(
        verbs,
        "get",
        "download an export file",
        description="Downloads an export file and checks it against the SHA-256 the server "
        "recorded. Without -o it is written under its own name in the current folder (an "
        "existing file is not overwritten); -o - writes it to stdout.",
    )
    add_server(p)
    p.add_argument("export_id", metavar="ID")
    p.add_argument("-o", "--output", default="", help="file to write, or - for stdout")
    add_json(p)
    p.set_defaults(func=cmd_files_get)

    p = subparser(verbs, "rm", "delete export files before they expire", aliases=["delete"])
    add_server(p)
    p.add_argument("export_ids", metavar="ID", nargs="+")
    add_json(p)
    p.set_defaults(func=cmd_files_rm)


def _tail(items: Iterable[Any], last: int) -> list[Any]:
    """The last `last` items (all when 0), reading the rest only to count past them."""
    kept: deque[Any] = deque(maxlen=last or None)
    kept.extend(items)
    return list(kept)


# -- backtests ---------------------------------------------------------------------------------


def _backtests(r: Remote) -> bpbg.BacktestServiceStub:
    return r.stub(bpbg.BacktestServiceStub)


def _get_backtest(r: Remote, backtest_id: str) -> bpb.Backtest:
    return _backtests(r).GetBacktest(bpb.GetBacktestRequest(backtest_id=backtest_id)).backtest


def bar_seconds(r: Remote, bt: bpb.Backtest) -> float | None:
    """The bar spacing of a stored backtest, to print durations in time units.

    A Backtest message does not say whether its run resampled the dataset, so the dataset's
    timeframe is used only when the bar count agrees with it; otherwise (and when the
    dataset is gone) None, and durations are printed in bars: never a wrong unit."""
    try:
        req = mpb.GetDatasetRequest(dataset_id=bt.dataset_id)
        ds = r.stub(mpbg.MarketDataServiceStub).GetDataset(req).dataset
    except grpc.RpcError as e:
        if e.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED):
            return None
        raise
    seconds = o.timeframe_seconds(ds.timeframe)
    ds_span = ds.end_time.ToNanoseconds() - ds.start_time.ToNanoseconds()
    bt_span = bt.time_range.end_time.ToNanoseconds() - bt.time_range.start_time.ToNanoseconds()
    if not seconds or ds.bar_count < 2 or ds_span <= 0:
        return seconds
    expected = (ds.bar_count - 1) * bt_span / ds_span + 1
    return seconds if bt.bar_count >= RESAMPLED * expected else None


def _metric(bt: bpb.Backtest, name: str) -> str:
    return o.metric(name, float(getattr(bt.metrics, name)))


def _backtest_row(bt: bpb.Backtest) -> list[str]:
    return [
        bt.id, f"{bt.strategy_type} {o.params_text(params_from_pb(bt.parameters))}",
        bt.dataset_id, f"{bt.bar_count:,}", _metric(bt, "total_return"), _metric(bt, "sharpe"),
        _metric(bt, "max_drawdown"), f"{bt.trade_count:,}", o.when_field(bt, "create_time"),
    ]  # fmt: skip


def cmd_backtests_ls(args: argparse.Namespace) -> int:
    if args.last < 0:
        raise CliError("--last N must be 0 (all) or more")
    req = bpb.ListBacktestsRequest(
        page_size=min(args.last or 200, 200), strategy_id=args.strategy_id, dataset_id=args.data
    )
    with Remote(args.server) as r:
        found = list(r.client.pages(_backtests(r).ListBacktests, req, "backtests", limit=args.last))
    if args.json:
        o.print_json([o.proto_json(bt) for bt in found])
        return 0
    columns = ["BACKTEST", "STRATEGY", "DATASET", ">BARS", ">RETURN", ">SHARPE", ">MAX DD",
               ">TRADES", "CREATED (UTC)"]  # fmt: skip
    o.show(o.table(columns, [_backtest_row(bt) for bt in found]))
    return 0


def cmd_backtests_show(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        bt = _get_backtest(r, args.backtest_id)
        seconds = None if args.json else bar_seconds(r, bt)
    if args.json:
        o.print_json(bt)  # what `backtest --server --json` prints
        return 0
    print_summary(stored_outcome(bt, seconds), None)
    return 0


def cmd_backtests_trades(args: argparse.Namespace) -> int:
    if args.last < 0:
        raise CliError("--last N must be 0 (all) or more")
    req = bpb.ListBacktestTradesRequest(backtest_id=args.backtest_id, page_size=1_000)
    with Remote(args.server) as r:
        bt = _get_backtest(r, args.backtest_id)  # NOT_FOUND here reads better than on a page
        trades = _tail(r.client.pages(_backtests(r).ListBacktestTrades, req, "trades"), args.last)
        seconds = None if args.json else bar_seconds(r, bt)
    if args.json:
        o.print_json([o.proto_json(t) for t in trades])
        return 0
    total = bt.trade_count
    first = total - len(trades) + 1
    title = f"{total:,} trades" if first == 1 else f"the last {len(trades):,} of {total:,} trades"
    o.show(trades_table([trade_dict(t) for t in trades], seconds, first=first, title=title))
    return 0


def cmd_backtests_rm(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        stub = _backtests(r)
        return o.delete_each(
            "backtest", args.backtest_ids,
            lambda bid: stub.DeleteBacktest(bpb.DeleteBacktestRequest(backtest_id=bid)), args.json,
        )  # fmt: skip


# -- files -------------------------------------------------------------------------------------


def _exports(r: Remote) -> epbg.ExportServiceStub:
    return r.stub(epbg.ExportServiceStub)


def _file_row(f: epb.ExportFile) -> list[str]:
    return [
        f.id, KIND_NAMES.get(f.kind, "-"), f.file_name, f"{f.size_bytes:,}", f.source or "-",
        o.when_field(f, "expire_time"),
    ]  # fmt: skip


def cmd_files_ls(args: argparse.Namespace) -> int:
    req = epb.ListExportFilesRequest(
        page_size=200, kind=FILE_KINDS.get(args.kind or "", epb.EXPORT_KIND_UNSPECIFIED)
    )
    with Remote(args.server) as r:
        files = list(r.client.pages(_exports(r).ListExportFiles, req, "files"))
    if args.json:
        o.print_json([o.proto_json(f) for f in files])
        return 0
    columns = ["EXPORT", "KIND", "FILE", ">BYTES", "SOURCE", "EXPIRES (UTC)"]
    o.show(o.table(columns, [_file_row(f) for f in files]))
    return 0


def _target(args: argparse.Namespace, f: epb.ExportFile) -> Path:
    """Where `files get` writes: -o as given, else the file's own name (no folders from the
    server's side), refusing to replace a file the user did not name."""
    if args.output:
        return Path(args.output)
    path = Path(Path(f.file_name).name or f.id)
    if path.exists():
        raise CliError(f"{path} exists: pass -o {path} to overwrite it, or -o another name")
    return path


def _check_sha256(f: epb.ExportFile, chunks: Iterable[bytes], where: str) -> None:
    """The download is the file the server recorded (or the command fails, exit 1)."""
    if not f.sha256:
        return
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    if digest.hexdigest() != f.sha256:
        raise CliError(f"{where}: SHA-256 differs from the server's record; download again", 1)


def _file_chunks(path: Path) -> Iterable[bytes]:
    with path.open("rb") as fh:
        yield from iter(lambda: fh.read(1 << 20), b"")


def cmd_files_get(args: argparse.Namespace) -> int:
    if args.output == "-" and args.json:
        raise CliError("--json describes a written file: give -o FILE, not -o -")
    with Remote(args.server) as r:
        f = _exports(r).GetExportFile(epb.GetExportFileRequest(export_id=args.export_id)).file
        if args.output == "-":
            data = r.client.download_export(f.id)
            assert isinstance(data, bytes)
            _check_sha256(f, [data], f.file_name)
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
            return 0
        path = _target(args, f)
        size = download(r, f.id, path)
    try:
        _check_sha256(f, _file_chunks(path), str(path))
    except CliError:
        path.unlink(missing_ok=True)
        raise
    if args.json:
        o.print_json({"path": str(path), "file": o.proto_json(f)})
    else:
        print(f"wrote {path} ({size:,} bytes; export {f.id})")
    return 0


def cmd_files_rm(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        stub = _exports(r)
        return o.delete_each(
            "export", args.export_ids,
            lambda eid: stub.DeleteExportFile(epb.DeleteExportFileRequest(export_id=eid)),
            args.json,
        )  # fmt: skip
