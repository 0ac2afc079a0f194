"""`stratopt datasets` (alias `data`): sample files, and the server's stored datasets."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stratopt.client import output as o
from stratopt.client.args import add_json, subparser, utc_time
from stratopt.client.output import CliError
from stratopt.client.remote import Remote, add_server
from stratopt.v1 import market_data_pb2 as pb
from stratopt.v1 import market_data_pb2_grpc as pbg


def add_commands(sub: Any) -> None:
    datasets = subparser(
        sub,
        "datasets",
        "sample data files and the server's datasets",
        aliases=["data"],
        description="Sample bar files written locally, and the datasets stored on a server "
        "(list, show, import a CSV/Parquet file, generate synthetic bars, delete).",
    )
    verbs = datasets.add_subparsers(dest="datasets_cmd", required=True, metavar="VERB")

    p = subparser(
        verbs,
        "sample",
        "write a sample OHLCV file (no server, nothing to download)",
        description="Writes the bars of one of the server's sample datasets (synthetic, "
        "seeded, realistic prices) to a CSV or Parquet file: btc (hourly, 2021-2023), spy "
        "(daily, weekdays, 2014-2023) or eth (15-minute, 2023). --bars keeps the first N.",
    )
    p.add_argument("name", choices=sample_names(), help="which sample")
    p.add_argument(
        "-o", "--output", required=True, help="file to write: .csv or .parquet, or - for stdout"
    )
    p.add_argument("--bars", type=int, default=0, help="keep only the first N bars (0 = all)")
    p.set_defaults(func=cmd_sample)

    p = subparser(verbs, "ls", "list the datasets you can read", aliases=["list"])
    add_server(p)
    p.add_argument("--symbol", default="", help="only this symbol")
    p.add_argument("--timeframe", default="", help="only this timeframe, e.g. 1h")
    add_json(p)
    p.set_defaults(func=cmd_ls)

    p = subparser(verbs, "show", "show one dataset")
    add_server(p)
    p.add_argument("dataset_id", metavar="ID")
    add_json(p)
    p.set_defaults(func=cmd_show)

    p = subparser(
        verbs,
        "import",
        "upload a CSV or Parquet file as a dataset",
        description="Uploads a CSV or Parquet file of bars (timestamp, open, high, low, "
        "close, volume; common aliases accepted) and prints the new dataset. The server "
        "validates every row and names the first bad one.",
    )
    add_server(p)
    p.add_argument("file", help="CSV or Parquet file")
    p.add_argument("--name", help="dataset name (default: the file name)")
    p.add_argument(
        "--symbol", help="instrument, e.g. BTCUSD (default: the file name up to the first _)"
    )
    p.add_argument("--timeframe", default="", help="bar spacing, e.g. 1h (default: inferred)")
    p.add_argument("--description", default="")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the dataset id")
    add_json(p)
    p.set_defaults(func=cmd_import)

    p = subparser(verbs, "generate", "make a synthetic dataset on the server (seeded)")
    add_server(p)
    p.add_argument("name")
    p.add_argument("--symbol", default="SYNTH", help="instrument name")
    p.add_argument("--timeframe", default="1h", help="bar spacing")
    p.add_argument("--bars", type=int, default=10_000, help="number of bars")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bars)")
    p.add_argument("--start-price", type=float, default=100.0, help="first open")
    p.add_argument("--start", default="", help="first bar time, e.g. 2024-01-01 (UTC)")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the dataset id")
    add_json(p)
    p.set_defaults(func=cmd_generate)

    p = subparser(verbs, "rm", "delete datasets", aliases=["delete"])
    add_server(p)
    p.add_argument("dataset_ids", metavar="ID", nargs="+")
    add_json(p)
    p.set_defaults(func=cmd_rm)


# -- samples (local) --------------------------------------------------------------------------


def sample_names() -> list[str]:
    return ["btc", "spy", "eth"]


def cmd_sample(args: argparse.Namespace) -> int:
    from stratopt.data.synthetic import sample_datasets

    by_name = {s.dataset_id.removeprefix("SAMPLE-").lower(): s for s in sample_datasets()}
    spec = by_name[args.name.lower()]
    bars = spec.generate()
    if args.bars < 0:
        raise CliError("--bars must be 0 (all) or more")
    if args.bars:
        bars = bars.slice(0, args.bars)
    frame = bars.to_frame()
    frame.index = frame.index.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.index.name = "timestamp"
    if args.output == "-":
        frame.to_csv(sys.stdout)
        return 0
    path = Path(args.output)
    if path.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(path)
    else:
        frame.to_csv(path)
    print(
        f"wrote {len(bars):,} {spec.timeframe} bars of {spec.symbol} "
        f"({o.when(int(bars.ts[0]))} to {o.when(int(bars.ts[-1]))} UTC) to {path}",
        file=sys.stderr,
    )
    return 0


# -- the server's datasets --------------------------------------------------------------------


def _stub(remote: Remote) -> pbg.MarketDataServiceStub:
    return remote.stub(pbg.MarketDataServiceStub)


def _source(d: pb.Dataset) -> str:
    return pb.DatasetSource.Name(d.source).removeprefix("DATASET_SOURCE_").lower()


def _period(d: pb.Dataset, *, dates: bool = False) -> str:
    if not d.bar_count:
        return "-"
    start, end = o.when(d.start_time.ToNanoseconds()), o.when(d.end_time.ToNanoseconds())
    if dates:
        start, end = start[:10], end[:10]
    return f"{start} to {end}"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return str(n)


def show_dataset(d: pb.Dataset, json: bool) -> None:
    if json:
        o.print_json(d)
        return
    rows = [
        ("id", d.id),
        ("name", d.name),
        ("symbol", d.symbol),
        ("timeframe", d.timeframe or "-"),
        ("bars", f"{d.bar_count:,}"),
        ("period", _period(d) + " UTC"),
        ("source", _source(d)),
        ("size", _size(d.size_bytes)),
        ("description", d.description or "-"),
    ]
    o.show(o.pairs(rows))


def cmd_ls(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        req = pb.ListDatasetsRequest(page_size=200, symbol=args.symbol, timeframe=args.timeframe)
        items = list(r.client.pages(_stub(r).ListDatasets, req, "datasets"))
    if args.json:
        o.print_json([o.proto_json(d) for d in items])
        return 0
    rows = [
        [
            d.id,
            d.name,
            d.symbol,
            d.timeframe,
            f"{d.bar_count:,}",
            _period(d, dates=True),
            _source(d),
        ]
        for d in items
    ]
    o.show(o.table(["ID", "NAME", "SYMBOL", "TF", ">BARS", "PERIOD (UTC)", "SOURCE"], rows))
    if not items:
        print("no datasets: `stratopt datasets import FILE` or `stratopt datasets generate NAME`")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        d = _stub(r).GetDataset(pb.GetDatasetRequest(dataset_id=args.dataset_id))
    show_dataset(d.dataset, args.json)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    with Remote(args.server) as r:
        dataset = r.client.import_dataset(
            path,
            name=args.name or "",
            symbol=args.symbol or "",
            timeframe=args.timeframe or "",
            description=args.description or "",
        )
    return _created(dataset, args, "imported")


def cmd_generate(args: argparse.Namespace) -> int:
    req = pb.GenerateSyntheticDatasetRequest(
        name=args.name,
        symbol=args.symbol,
        timeframe=args.timeframe,
        bar_count=args.bars,
        start_price=args.start_price,
        seed=args.seed,
    )
    if args.start:
        req.start_time.FromDatetime(utc_time("--start", args.start))
    with Remote(args.server) as r:
        reply = _stub(r).GenerateSyntheticDataset(req)
    return _created(reply.dataset, args, "generated")


def _created(d: pb.Dataset, args: argparse.Namespace, verb: str) -> int:
    if args.quiet:
        print(d.id)
    elif args.json:
        o.print_json(d)
    else:
        what = f"{d.symbol} {d.timeframe}, {d.bar_count:,} bars, {_period(d)} UTC"
        print(f"{verb} dataset {d.id}: {what}")
    return 0


def cmd_rm(args: argparse.Namespace) -> int:
    with Remote(args.server) as r:
        stub = _stub(r)
        return o.delete_each(
            "dataset", args.dataset_ids,
            lambda did: stub.DeleteDataset(pb.DeleteDatasetRequest(dataset_id=did)), args.json,
        )  # fmt: skip
