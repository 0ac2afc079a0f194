"""ExportService on a real server: Pine Script v6 and reports as downloadable files."""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest
from stratopt.v1 import backtest_pb2 as bt_pb
from stratopt.v1 import backtest_pb2_grpc as bt_grpc
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import export_pb2 as pb
from stratopt.v1 import export_pb2_grpc as pbg
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc
from stratopt.v1 import strategy_pb2 as s_pb
from stratopt.v1 import strategy_pb2_grpc as s_grpc

from tests.conftest import LiveServer
from tests.integration.helpers import call_error, violations


@pytest.fixture(scope="module")
def ch(live_server: LiveServer) -> Iterator[grpc.Channel]:
    with live_server.channel() as channel:
        yield channel


def download(stub: pbg.ExportServiceStub, export_id: str, md: list[tuple[str, str]]) -> bytes:
    parts = list(
        stub.DownloadExportFile(
            pb.DownloadExportFileRequest(export_id=export_id, chunk_size=1000), metadata=md
        )
    )
    assert [p.offset for p in parts] == [i * 1000 for i in range(len(parts))]
    return b"".join(p.data for p in parts)


def test_pine_script_of_a_stored_strategy(ch: grpc.Channel, live_server: LiveServer) -> None:
    md = live_server.md("trader")
    strat = (
        s_grpc.StrategyServiceStub(ch)
        .CreateStrategy(
            s_pb.CreateStrategyRequest(
                strategy=s_pb.Strategy(
                    name="pine me",
                    strategy_type="sma_crossover",
                    parameters={
                        "fast": c.ParameterValue(int_value=13),
                        "slow": c.ParameterValue(int_value=77),
                    },
                    execution=c.ExecutionOptions(
                        commission=0.001, stop_loss=0.05, direction=c.TRADE_DIRECTION_BOTH
                    ),
                )
            ),
            metadata=md,
        )
        .strategy
    )
    stub = pbg.ExportServiceStub(ch)
    r = stub.ExportPineScript(
        pb.ExportPineScriptRequest(strategy_id=strat.id, include_execution=True), metadata=md
    )
    head, _, body = r.script.partition("//@version=6\n")
    assert body.startswith('strategy("pine me"') and "13" in body and "77" in body
    assert "commission_value=0.1" in body and "strategy.exit(" in body
    # Provenance: the strategy, its parameters and options; no backtest of it yet.
    assert head.startswith("// Exported by stratopt ") and "pine me" in head
    assert f"// Source: strategies/{strat.id}" in head and "fast=13, slow=77" in head
    assert "direction=both" in head and "No backtest of these parameters" in head
    # After a backtest of the strategy the header names its data and metrics.
    ds = (
        md_grpc.MarketDataServiceStub(ch)
        .GenerateSyntheticDataset(
            md_pb.GenerateSyntheticDatasetRequest(name="prov", bar_count=500, seed=9), metadata=md
        )
        .dataset
    )
    bt = (
        bt_grpc.BacktestServiceStub(ch)
        .RunBacktest(bt_pb.RunBacktestRequest(strategy_id=strat.id, dataset_id=ds.id), metadata=md)
        .backtest
    )
    again = stub.ExportPineScript(pb.ExportPineScriptRequest(strategy_id=strat.id), metadata=md)
    head = again.script.partition("//@version=6")[0]
    assert f"// Dataset: datasets/{ds.id}" in head and "; period: " in head
    assert "Metrics: total_return=" in head and f"backtests/{bt.id}" in head
    stub.DeleteExportFile(pb.DeleteExportFileRequest(export_id=again.file.id), metadata=md)
    assert download(stub, r.file.id, md).decode() == r.script
    assert r.file.kind == pb.EXPORT_KIND_PINE_SCRIPT and r.file.file_name.endswith(".pine")
    listed = stub.ListExportFiles(pb.ListExportFilesRequest(), metadata=md).files
    assert r.file.id in {f.id for f in listed}
    # Analysts export reports, not Pine Script.
    denied = call_error(
        stub.ExportPineScript,
        pb.ExportPineScriptRequest(strategy_type="sma_crossover"),
        metadata=live_server.md("analyst"),
    )
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    bad = call_error(
        stub.ExportPineScript,
        pb.ExportPineScriptRequest(
            strategy_type="sma_crossover", parameters={"fast": c.ParameterValue(int_value=500)}
        ),
        metadata=md,
    )
    assert "parameters.fast" in violations(bad)
    stub.DeleteExportFile(pb.DeleteExportFileRequest(export_id=r.file.id), metadata=md)
    gone = call_error(stub.GetExportFile, pb.GetExportFileRequest(export_id=r.file.id), metadata=md)
    assert gone.code() == grpc.StatusCode.NOT_FOUND


def test_backtest_reports(ch: grpc.Channel, live_server: LiveServer) -> None:
    md = live_server.md("trader")
    ds = (
        md_grpc.MarketDataServiceStub(ch)
        .GenerateSyntheticDataset(
            md_pb.GenerateSyntheticDatasetRequest(name="rep", bar_count=3_000, seed=4), metadata=md
        )
        .dataset
    )
    bt = (
        bt_grpc.BacktestServiceStub(ch)
        .RunBacktest(
            bt_pb.RunBacktestRequest(strategy_type="ema_crossover", dataset_id=ds.id), metadata=md
        )
        .backtest
    )
    stub = pbg.ExportServiceStub(ch)
    js = stub.CreateReport(
        pb.CreateReportRequest(backtest_id=bt.id, format=pb.REPORT_FORMAT_JSON), metadata=md
    ).file
    body = json.loads(download(stub, js.id, md))
    assert (
        body["metrics"]["num_trades"] == bt.metrics.num_trades
        and len(body["trades"]) == bt.trade_count
    )
    csv = stub.CreateReport(
        pb.CreateReportRequest(backtest_id=bt.id, format=pb.REPORT_FORMAT_CSV), metadata=md
    ).file
    assert download(stub, csv.id, md).decode().count("\n") == bt.trade_count + 1
    page = stub.CreateReport(
        pb.CreateReportRequest(
            backtest_id=bt.id, format=pb.REPORT_FORMAT_HTML, include_charts=True
        ),
        metadata=md,
    ).file
    text = download(stub, page.id, md).decode()
    assert "<svg" in text and "Sharpe ratio" in text
    pdf = stub.CreateReport(
        pb.CreateReportRequest(backtest_id=bt.id, format=pb.REPORT_FORMAT_PDF), metadata=md
    ).file
    assert pdf.content_type == "application/pdf"
    assert download(stub, pdf.id, md).startswith(b"%PDF-")
    admin = stub.GetExportFile(
        pb.GetExportFileRequest(export_id=js.id), metadata=live_server.md("admin")
    )
    assert admin.file.id == js.id  # admins see everything
    hidden = call_error(
        stub.GetExportFile,
        pb.GetExportFileRequest(export_id=js.id),
        metadata=live_server.md("viewer"),
    )
    assert hidden.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)


def test_pine_script_of_an_optimization_jobs_best_parameters(
    ch: grpc.Channel, live_server: LiveServer
) -> None:
    from stratopt.v1 import optimization_pb2 as opt_pb
    from stratopt.v1 import optimization_pb2_grpc as opt_grpc

    from tests.integration.jobs.helpers import make_dataset, start, wait_done

    md = live_server.md("trader")
    jobs = opt_grpc.OptimizationServiceStub(ch)
    job = start(
        jobs, md, strategy_type="sma_crossover", dataset_id=make_dataset(ch, md), trials=12, seed=5
    )
    done = wait_done(jobs, md, job.id)
    assert done.state == opt_pb.JOB_STATE_SUCCEEDED
    best = {k: v.int_value for k, v in done.best_parameters.items()}
    r = pbg.ExportServiceStub(ch).ExportPineScript(
        pb.ExportPineScriptRequest(job_id=job.id), metadata=md
    )
    assert r.file.source == f"jobs/{job.id}"
    head = r.script.partition("//@version=6")[0]
    assert f"// Source: jobs/{job.id}" in head and "// Dataset: datasets/" in head
    assert "Metrics: " in head
    for name, value in best.items():
        assert f'input.int({value}, "' in r.script or f"input.int({value}," in r.script, name
