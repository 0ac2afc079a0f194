"""`stratopt export pine` and `stratopt report`: files out of the server (or made locally)."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path
from typing import Any

import grpc

from stratopt.client import output as o
from stratopt.client.args import (
    add_execution,
    add_json,
    execution_given,
    parse_params,
    subparser,
)
from stratopt.client.output import CliError
from stratopt.client.remote import Remote, add_server, default_server, param_to_pb
from stratopt.v1 import export_pb2 as pb
from stratopt.v1 import export_pb2_grpc as pbg

REPORT_FORMATS = {
    ".html": pb.REPORT_FORMAT_HTML,
    ".htm": pb.REPORT_FORMAT_HTML,
    ".json": pb.REPORT_FORMAT_JSON,
    ".csv": pb.REPORT_FORMAT_CSV,
    ".pdf": pb.REPORT_FORMAT_PDF,
}


def add_commands(sub: Any) -> None:
    export = subparser(sub, "export", "export a strategy as TradingView Pine Script")
    verbs = export.add_subparsers(dest="export_cmd", required=True, metavar="FORMAT")
    p = subparser(
        verbs,
        "pine",
        "a complete Pine Script v6 strategy()",
        description="Renders a Pine Script v6 strategy() from a stored strategy "
        "(--strategy-id), an optimization job's best parameters (--job) or a strategy type "
        "with parameters (--type, -p; runs locally unless --server is given).",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--strategy-id", default="", help="a stored strategy (server)")
    src.add_argument("--job", default="", help="an optimization job's best parameters (server)")
    src.add_argument(
        "--type", dest="strategy_type", default="", help="a strategy type, e.g. sma_crossover"
    )
    p.add_argument("-p", "--param", action="append", default=[], help="NAME=VALUE with --type")
    p.add_argument("--title", default="", help="strategy() title (default: the strategy's name)")
    p.add_argument(
        "--no-execution",
        dest="include_execution",
        action="store_false",
        help="leave costs, sizing and stops out of strategy() (keeps capital and direction)",
    )
    add_execution(p, skip=("periods_per_year",))
    add_server(p, optional=True)
    p.add_argument("-o", "--output", default="-", help="file to write, or - for stdout")
    add_json(p)
    p.set_defaults(func=cmd_pine)

    p = subparser(
        sub,
        "report",
        "write a backtest or optimization report: HTML or PDF (charts), JSON or CSV",
        description="Asks the server for a report of a stored backtest or an optimization "
        "job and downloads it. The format follows the file's extension: .html or .pdf "
        "(metrics, charts, tables), .json (everything), .csv (a backtest's trades or a "
        "job's trials).",
    )
    add_server(p)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--backtest", help="backtest id (see `stratopt backtest --server`)")
    source.add_argument("--job", help="optimization job id (see `stratopt jobs ls`)")
    p.add_argument(
        "-o", "--output", required=True, help="report.html, report.pdf, report.json or report.csv"
    )
    p.add_argument(
        "--no-charts", dest="charts", action="store_false", help="HTML or PDF without charts"
    )
    p.add_argument(
        "--table",
        choices=("trades", "equity", "trials"),
        default="",
        help="a CSV's rows: trades (default for a backtest), equity (one row per bar) or "
        "trials (a job's, the default)",
    )
    p.add_argument("--open", action="store_true", help="open the report in a browser")
    add_json(p)
    p.set_defaults(func=cmd_report)


def _write_text(text: str, output: str) -> None:
    if output == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    Path(output).write_text(text)


def cmd_pine(args: argparse.Namespace) -> int:
    params = parse_params(args.param)
    if params and not args.strategy_type:
        raise CliError("-p goes with --type; a stored strategy or a job has its own parameters")
    given = execution_given(args)
    if args.strategy_type and not args.server:
        script, source = _local_pine(args, params, given), f"strategyTypes/{args.strategy_type}"
        file_id = ""
    else:
        if given:
            raise CliError(
                "execution options go with --type on a local export; a stored strategy or a "
                "job exports the options it has"
            )
        req = pb.ExportPineScriptRequest(
            strategy_id=args.strategy_id,
            job_id=args.job,
            strategy_type=args.strategy_type,
            title=args.title,
            include_execution=args.include_execution,
        )
        for k, v in params.items():
            req.parameters[k].CopyFrom(param_to_pb(v))
        with Remote(args.server or default_server()) as r:
            reply = r.stub(pbg.ExportServiceStub).ExportPineScript(req)
        script, source, file_id = reply.script, reply.file.source, reply.file.id
    if args.json:
        o.print_json({"script": script, "source": source, "export_id": file_id})
        return 0
    _write_text(script, args.output)
    if args.output != "-":
        print(
            f"wrote Pine Script v6 ({len(script.splitlines())} lines) to {args.output}",
            file=sys.stderr,
        )
    return 0


def _local_pine(args: argparse.Namespace, params: dict[str, Any], given: dict[str, Any]) -> str:
    from stratopt.engine.options import ExecutionOptions
    from stratopt.export.pine import Provenance, pine_script
    from stratopt.strategies import registry
    from stratopt.strategies.user_types import is_user_type

    if is_user_type(args.strategy_type):
        raise CliError(
            f"{args.strategy_type} is a user strategy type stored on a server: add --server"
        )
    try:
        stype = registry.get(args.strategy_type)
    except KeyError:
        raise CliError(
            f"unknown strategy type {args.strategy_type!r}; one of {', '.join(registry.names())}"
        ) from None
    problems = stype.validate(params)
    if problems:
        raise CliError("; ".join(f"{v.field}: {v.description}" for v in problems))
    try:
        options = ExecutionOptions.from_dict(given)
    except ValueError as e:
        raise CliError(str(e)) from None
    title = (args.title or stype.display_name)[:100]
    provenance = Provenance(
        source=f"strategyTypes/{stype.name}", note="Exported locally by the stratopt CLI."
    )
    return pine_script(
        stype,
        params,
        options,
        title,
        include_execution=args.include_execution,
        provenance=provenance,
    )


def download(r: Remote, export_id: str, path: Path) -> int:
    """Streams an export file to ``path`` (atomically, via the library); returns its size."""
    size = r.client.download_export(export_id, path)
    assert isinstance(size, int)
    return size


CSV_TABLES = {
    "": pb.REPORT_TABLE_UNSPECIFIED,
    "trades": pb.REPORT_TABLE_TRADES,
    "equity": pb.REPORT_TABLE_EQUITY,
    "trials": pb.REPORT_TABLE_TRIALS,
}


def server_report(
    r: Remote,
    backtest_id: str,
    path: Path,
    *,
    charts: bool = True,
    job_id: str = "",
    table: str = "",
) -> pb.ExportFile:
    """Has the server write a report of a stored backtest (or of an optimization job) and
    downloads it to ``path``."""
    fmt = REPORT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise CliError(
            f"{path}: the report format follows the extension: .html, .json, .csv or .pdf"
        )
    stub = r.stub(pbg.ExportServiceStub)
    try:
        f = stub.CreateReport(
            pb.CreateReportRequest(
                backtest_id=backtest_id,
                job_id=job_id,
                format=fmt,
                include_charts=charts,
                csv_table=CSV_TABLES[table],
            ),
        ).file
    except grpc.RpcError as e:
        if e.code() == grpc.StatusCode.UNIMPLEMENTED:
            raise CliError(
                f"this server cannot write {path.suffix} reports: {e.details()}", 1
            ) from None
        raise
    download(r, f.id, path)
    return f


def open_in_browser(path: Path) -> None:
    if not webbrowser.open(path.resolve().as_uri()):
        print(f"open {path} in a browser", file=sys.stderr)


def cmd_report(args: argparse.Namespace) -> int:
    path = Path(args.output)
    with Remote(args.server) as r:
        f = server_report(
            r,
            args.backtest or "",
            path,
            charts=args.charts,
            job_id=args.job or "",
            table=args.table,
        )
    if args.json:
        o.print_json({"path": str(path), "file": o.proto_json(f)})
    else:
        print(f"wrote {path} ({f.size_bytes:,} bytes; export {f.id})")
    if args.open:
        open_in_browser(path)
    return 0
