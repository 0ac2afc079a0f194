"""Reports on a real server, opened as users open them: the HTML in headless Chromium
(Debian's package, driven by Playwright, no downloaded browser), the PDF through poppler
(pdftoppm renders a page, pdftotext reads it), CSV and JSON parsed.

.ci/run installs chromium and poppler-utils; locally the browser and PDF tests skip, with
the reason, only when those programs are absent.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from stratopt.v1 import backtest_pb2 as bt_pb
from stratopt.v1 import backtest_pb2_grpc as bt_grpc
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import export_pb2 as pb
from stratopt.v1 import export_pb2_grpc as pbg
from stratopt.v1 import market_data_pb2 as md_pb
from stratopt.v1 import market_data_pb2_grpc as md_grpc
from stratopt.v1 import optimization_pb2 as opt_pb
from stratopt.v1 import optimization_pb2_grpc as opt_grpc
from stratopt.v1 import strategy_pb2 as s_pb
from stratopt.v1 import strategy_pb2_grpc as s_grpc

from tests.conftest import LiveServer
from tests.integration.helpers import call_error, violations
from tests.integration.jobs.helpers import start, wait_done
from tests.integration.security.support import bearer, login, new_user
from tests.tools import CHROMIUM, in_ci

POPPLER = shutil.which("pdftotext") and shutil.which("pdftoppm")
# Skipped locally without them; in CI (which installs them) the tests run and fail instead.
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not in_ci(),
    reason="Debian's chromium is not installed (.ci/run installs it)",
)
needs_poppler = pytest.mark.skipif(
    not POPPLER and not in_ci(), reason="poppler-utils is not installed (.ci/run installs it)"
)
BACKTEST_CHARTS = {"equity", "drawdown", "trades", "monthly", "pnl"}
JOB_CHARTS = {"history", "importances", "params", "in-vs-out", "walk-forward", "pareto"}


@pytest.fixture(scope="module")
def ch(live_server: LiveServer) -> Iterator[grpc.Channel]:
    with live_server.channel() as channel:
        yield channel


Md = list[tuple[str, str]]


def report(ch: grpc.Channel, md: Md, fmt: int, **fields: Any) -> tuple[pb.ExportFile, bytes]:
    stub = pbg.ExportServiceStub(ch)
    f = stub.CreateReport(
        pb.CreateReportRequest(format=fmt, include_charts=True, **fields), metadata=md
    ).file
    data = b"".join(
        p.data
        for p in stub.DownloadExportFile(pb.DownloadExportFileRequest(export_id=f.id), metadata=md)
    )
    assert len(data) == f.size_bytes
    return f, data


@pytest.fixture(scope="module")
def backtest(ch: grpc.Channel, live_server: LiveServer) -> tuple[bt_pb.Backtest, str]:
    """A stored strategy's backtest on two years of daily bars: (backtest, strategy name)."""
    md = live_server.md("trader")
    name = "Reported Crossover"
    strat = (
        s_grpc.StrategyServiceStub(ch)
        .CreateStrategy(
            s_pb.CreateStrategyRequest(
                strategy=s_pb.Strategy(
                    name=name,
                    strategy_type="sma_crossover",
                    parameters={
                        "fast": c.ParameterValue(int_value=5),
                        "slow": c.ParameterValue(int_value=20),
                    },
                    execution=c.ExecutionOptions(direction=c.TRADE_DIRECTION_BOTH),
                )
            ),
            metadata=md,
        )
        .strategy
    )
    ds = (
        md_grpc.MarketDataServiceStub(ch)
        .GenerateSyntheticDataset(
            md_pb.GenerateSyntheticDatasetRequest(
                name="reports", bar_count=730, seed=11, timeframe="1d"
            ),
            metadata=md,
        )
        .dataset
    )
    bt = (
        bt_grpc.BacktestServiceStub(ch)
        .RunBacktest(bt_pb.RunBacktestRequest(strategy_id=strat.id, dataset_id=ds.id), metadata=md)
        .backtest
    )
    assert bt.trade_count > 5
    return bt, name


# -- the browser -------------------------------------------------------------------------------


def open_in_chromium(path: Path) -> dict[str, Any]:
    """Loads the page offline (any network request is refused and recorded) and measures
    every chart: its <svg> box and the plotted paths inside it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            console: list[str] = []
            requests: list[str] = []
            page.on(
                "console",
                lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None,
            )
            page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))

            def refuse(route: Any) -> None:
                requests.append(route.request.url)
                route.abort()

            page.route("http*://**/*", refuse)
            page.goto(path.resolve().as_uri(), wait_until="load")
            charts = page.evaluate(
                """() => [...document.querySelectorAll('figure.chart')].map(f => {
                    const svg = f.querySelector('svg');
                    const box = svg.getBoundingClientRect();
                    const drawn = [...svg.querySelectorAll('path, use, image')].filter(e => {
                        const b = e.getBBox ? e.getBBox() : {width: 0, height: 0};
                        return b.width > 0 || b.height > 0;
                    });
                    const text = [...svg.querySelectorAll('text')].map(t => t.textContent);
                    return {key: f.dataset.chart, width: box.width, height: box.height,
                            drawn: drawn.length, text: text.join(' '),
                            legend: !!svg.querySelector('[id$="legend_1"]')};
                })"""
            )
            title = page.title()
        finally:
            browser.close()
    return {"charts": charts, "console": console, "requests": requests, "title": title}


def check_charts(seen: dict[str, Any], expected: set[str]) -> dict[str, dict[str, Any]]:
    charts = {c["key"]: c for c in seen["charts"]}
    assert set(charts) == expected, sorted(charts)
    for chart in charts.values():
        assert chart["width"] > 300 and chart["height"] > 150, chart
        # Axes, ticks, lines and markers: a chart that drew has many visible paths.
        assert chart["drawn"] >= 10, chart
    assert seen["console"] == [] and seen["requests"] == []
    return charts


@needs_chromium
def test_backtest_report_html_draws_every_chart_in_chromium(
    ch: grpc.Channel, live_server: LiveServer, backtest: tuple[bt_pb.Backtest, str], tmp_path: Path
) -> None:
    bt, name = backtest
    f, data = report(ch, live_server.md("trader"), pb.REPORT_FORMAT_HTML, backtest_id=bt.id)
    assert f.content_type.startswith("text/html") and f.file_name.endswith(".html")
    path = tmp_path / f.file_name
    path.write_bytes(data)
    seen = open_in_chromium(path)
    assert seen["title"] == f"{name}: backtest report"
    charts = check_charts(seen, BACKTEST_CHARTS)
    # Units, dates and legends (a colour bar for the heatmap).
    assert "Equity (account currency)" in charts["equity"]["text"]
    assert "Buy and hold" in charts["equity"]["text"]
    assert (
        "Date (UTC)" in charts["drawdown"]["text"] and "Drawdown (%)" in charts["drawdown"]["text"]
    )
    assert "Long entry" in charts["trades"]["text"] and "Short entry" in charts["trades"]["text"]
    assert "Monthly return (%)" in charts["monthly"]["text"]
    assert "Trade return (%)" in charts["pnl"]["text"]
    for key in BACKTEST_CHARTS - {"monthly"}:
        assert charts[key]["legend"], key
    text = data.decode()
    assert "<script" not in text and "http://" not in text.replace("http://www.w3.org", "")
    assert f"{bt.metrics.total_return * 100:,.2f}%" in text


@needs_poppler
def test_backtest_report_pdf_shows_the_name_and_total_return(
    ch: grpc.Channel, live_server: LiveServer, backtest: tuple[bt_pb.Backtest, str], tmp_path: Path
) -> None:
    bt, name = backtest
    f, data = report(ch, live_server.md("trader"), pb.REPORT_FORMAT_PDF, backtest_id=bt.id)
    assert f.content_type == "application/pdf" and f.file_name.endswith(".pdf")
    assert data.startswith(b"%PDF-")
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    subprocess.run(
        ["pdftoppm", "-r", "50", "-f", "1", "-l", "1", "-png", str(path), str(tmp_path / "p")],
        check=True,
    )
    png = next(tmp_path.glob("p*.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2_000
    first = pdf_text(path, first_page_only=True)
    assert name in first and "Total return" in first
    assert f"{bt.metrics.total_return * 100:,.2f}%" in first
    # The same content as the HTML: every chart title and the trade table follow.
    whole = pdf_text(path)
    for title in ("Equity: strategy against buy-and-hold", "Drawdown from the running peak",
                  "Trades on price", "Monthly returns", "Trade return distribution"):  # fmt: skip
        assert title in whole, title
    assert f"{bt.trade_count:,} trades" in whole


def pdf_text(path: Path, *, first_page_only: bool = False) -> str:
    pages = ["-f", "1", "-l", "1"] if first_page_only else []
    out = subprocess.run(
        ["pdftotext", "-layout", *pages, str(path), "-"], check=True, capture_output=True
    )
    return out.stdout.decode()


def test_backtest_report_json_and_csv(
    ch: grpc.Channel, live_server: LiveServer, backtest: tuple[bt_pb.Backtest, str]
) -> None:
    bt, name = backtest
    md = live_server.md("trader")
    _, js = report(ch, md, pb.REPORT_FORMAT_JSON, backtest_id=bt.id)
    body = json.loads(js)
    assert body["strategy_name"] == name and body["backtest_id"] == bt.id
    assert len(body["trades"]) == bt.trade_count and len(body["equity_curve"]) == 730
    _, text = report(ch, md, pb.REPORT_FORMAT_CSV, backtest_id=bt.id)
    rows = list(csv.DictReader(io.StringIO(text.decode())))
    assert len(rows) == bt.trade_count and {r["side"] for r in rows} <= {"long", "short"}
    f, text = report(
        ch, md, pb.REPORT_FORMAT_CSV, backtest_id=bt.id, csv_table=pb.REPORT_TABLE_EQUITY
    )
    bars = list(csv.DictReader(io.StringIO(text.decode())))
    assert len(bars) == 730 and f.file_name.endswith("-equity.csv")
    assert set(bars[0]) == {"time", "equity", "drawdown", "close", "buy_and_hold_equity"}
    assert float(bars[-1]["equity"]) == pytest.approx(bt.metrics.final_equity)
    stub = pbg.ExportServiceStub(ch)
    for bad in (
        pb.CreateReportRequest(
            backtest_id=bt.id, format=pb.REPORT_FORMAT_CSV, csv_table=pb.REPORT_TABLE_TRIALS
        ),
        pb.CreateReportRequest(
            backtest_id=bt.id, format=pb.REPORT_FORMAT_HTML, csv_table=pb.REPORT_TABLE_EQUITY
        ),
    ):
        err = call_error(stub.CreateReport, bad, metadata=md)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "csv_table" in violations(err)


# -- an optimization job -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def job(ch: grpc.Channel, live_server: LiveServer) -> opt_pb.Job:
    """A small multi-objective job with a held-out period and walk-forward windows."""
    md = live_server.md("trader")
    ds = (
        md_grpc.MarketDataServiceStub(ch)
        .GenerateSyntheticDataset(
            md_pb.GenerateSyntheticDatasetRequest(
                name="job-report", bar_count=1_500, seed=5, timeframe="1d"
            ),
            metadata=md,
        )
        .dataset
    )
    stub = opt_grpc.OptimizationServiceStub(ch)
    j = start(
        stub, md, strategy_type="sma_crossover", dataset_id=ds.id, trials=24, seed=7,
        objectives=[opt_pb.Objective(metric=m) for m in ("total_return", "max_drawdown")],
        validation=opt_pb.ValidationOptions(holdout_fraction=0.2, walk_forward_windows=3),
    )  # fmt: skip
    done = wait_done(stub, md, j.id)
    assert done.state == opt_pb.JOB_STATE_SUCCEEDED, done.error
    return done


@needs_chromium
@needs_poppler
def test_job_report_html_pdf_csv_json(
    ch: grpc.Channel, live_server: LiveServer, job: opt_pb.Job, tmp_path: Path
) -> None:
    md = live_server.md("trader")
    f, html = report(ch, md, pb.REPORT_FORMAT_HTML, job_id=job.id)
    assert f.source == f"jobs/{job.id}"
    path = tmp_path / "job.html"
    path.write_bytes(html)
    seen = open_in_chromium(path)
    charts = check_charts(seen, JOB_CHARTS)
    assert "Trial number" in charts["history"]["text"]
    assert "Total return (%)" in charts["pareto"]["text"]
    assert "Max drawdown (%)" in charts["pareto"]["text"]
    assert "Pareto front" in charts["pareto"]["text"] and charts["pareto"]["legend"]
    assert "Out-of-sample" in charts["in-vs-out"]["text"]

    _, pdf = report(ch, md, pb.REPORT_FORMAT_PDF, job_id=job.id)
    (tmp_path / "job.pdf").write_bytes(pdf)
    text = pdf_text(tmp_path / "job.pdf")
    assert job.id in text and "Pareto front" in text and "Parameter importances" in text

    _, table = report(ch, md, pb.REPORT_FORMAT_CSV, job_id=job.id)
    rows = list(csv.DictReader(io.StringIO(table.decode())))
    assert len(rows) == job.trials_completed == 24
    assert {"objective_total_return", "objective_max_drawdown", "param_fast"} <= set(rows[0])

    _, js = report(ch, md, pb.REPORT_FORMAT_JSON, job_id=job.id)
    body = json.loads(js)
    assert len(body["trials"]) == 24 and body["pareto_front"]
    assert len(body["validation"]["walk_forward_windows"]) == 3
    # The deflated Sharpe ratio of the winner, in the data and on the page.
    assert 0 <= body["selection_bias"]["deflated_sharpe_ratio"] <= 1
    assert "Deflated Sharpe ratio" in html.decode() and "Deflated Sharpe ratio" in text


def test_exports_of_another_users_things_are_not_found(
    ch: grpc.Channel,
    live_server: LiveServer,
    backtest: tuple[bt_pb.Backtest, str],
    job: opt_pb.Job,
) -> None:
    bt, _ = backtest
    username, password, _ = new_user(live_server, prefix="other")
    other = bearer(login(live_server, username, password).access_token)
    stub = pbg.ExportServiceStub(ch)
    for req in (
        pb.CreateReportRequest(backtest_id=bt.id, format=pb.REPORT_FORMAT_HTML),
        pb.CreateReportRequest(job_id=job.id, format=pb.REPORT_FORMAT_PDF),
        pb.CreateReportRequest(job_id="0" * 32, format=pb.REPORT_FORMAT_JSON),
    ):
        err = call_error(stub.CreateReport, req, metadata=other)
        assert err.code() == grpc.StatusCode.NOT_FOUND, (req, err.details())
    for req2 in (
        pb.ExportPineScriptRequest(strategy_id=bt.strategy_id),
        pb.ExportPineScriptRequest(job_id=job.id),
    ):
        err = call_error(stub.ExportPineScript, req2, metadata=other)
        assert err.code() == grpc.StatusCode.NOT_FOUND, (req2, err.details())
    # Exactly one source.
    both = call_error(
        stub.CreateReport,
        pb.CreateReportRequest(backtest_id=bt.id, job_id=job.id, format=pb.REPORT_FORMAT_JSON),
        metadata=live_server.md("trader"),
    )
    assert both.code() == grpc.StatusCode.INVALID_ARGUMENT
