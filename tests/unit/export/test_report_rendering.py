"""Report rendering without a server: bounded charts, unique SVG ids, the same document in
HTML and PDF, and the printed metric formats the integration tests look for."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from stratopt.export import charts as ch
from stratopt.export.job_reports import JobReport, Trial, job_doc, render_job
from stratopt.export.metric_format import fmt_metric
from stratopt.export.report_doc import DataTable, ReportDoc, Section, render_html, render_pdf
from stratopt.export.reports import BacktestReport, backtest_doc, render_backtest

DAY = 86_400 * 10**9
START = int(pd.Timestamp("2021-01-01", tz="UTC").value)


def make_report(n: int, trades: int, step: int = DAY) -> BacktestReport:
    rng = np.random.default_rng(1)
    ts = START + np.arange(n, dtype=np.int64) * step
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    equity = 10_000 * np.exp(np.cumsum(rng.normal(0.0002, 0.008, n)))
    entry = np.sort(rng.choice(n - 5, trades, replace=False))
    frame = pd.DataFrame(
        {
            "entry_time": pd.to_datetime(ts[entry], utc=True),
            "exit_time": pd.to_datetime(ts[entry + 3], utc=True),
            "side": np.where(rng.random(trades) > 0.5, 1, -1).astype(np.int8),
            "entry_price": close[entry],
            "exit_price": close[entry + 3],
            "size": 1.0,
            "pnl": rng.normal(0, 10, trades),
            "ret": rng.normal(0, 0.01, trades),
            "bars_held": 3,
            "exit_reason": pd.Categorical(["signal"] * trades),
        }
    )
    metrics = {"total_return": float(equity[-1] / 10_000 - 1), "num_trades": trades}
    return BacktestReport(
        "Unit Strategy", "sma_crossover", {"fast": 5}, metrics, ts, equity, frame, 10_000.0,
        close=close,
    )  # fmt: skip


def test_decimate_keeps_the_ends_and_the_extremes() -> None:
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.normal(size=100_000))
    idx = ch.decimate(values, 600)
    assert len(idx) <= 603 and idx[0] == 0 and idx[-1] == len(values) - 1
    assert values[idx].min() == values.min() and values[idx].max() == values.max()
    assert np.all(np.diff(idx) > 0)
    assert list(ch.decimate(values[:10], 600)) == list(range(10))


def test_monthly_returns_chain_from_the_initial_cash() -> None:
    ts = pd.date_range("2021-01-01", "2021-03-31", freq="D", tz="UTC").as_unit("ns").asi8
    equity = np.where(ts < pd.Timestamp("2021-02-01", tz="UTC").value, 110.0, 121.0)
    equity[ts >= pd.Timestamp("2021-03-01", tz="UTC").value] = 108.9
    table = ch.monthly_returns(ts, equity, 100.0)
    assert table.loc[2021, 1] == pytest.approx(0.10)
    assert table.loc[2021, 2] == pytest.approx(0.10)
    assert table.loc[2021, 3] == pytest.approx(-0.10)
    assert np.isnan(table.loc[2021, 4])


def test_html_charts_have_unique_ids_and_no_scripts() -> None:
    html = render_backtest(make_report(800, 40), "html", charts=True).decode()
    ids = Counter(re.findall(r'\bid="([^"]+)"', html))
    assert [i for i, k in ids.items() if k > 1] == []
    refs = set(re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', html))
    assert all(any(r in ids for r in pair if r) for pair in refs)
    assert html.count('<figure class="chart"') == 5
    assert "<script" not in html and "<metadata>" not in html


def test_a_million_bar_report_stays_small() -> None:
    """Lines are decimated and markers capped: the page does not grow with the bars."""
    r = make_report(1_000_000, 5_000, step=60 * 10**9)
    doc = backtest_doc(r, charts=True)
    assert len(render_html(doc)) < 1_500_000
    for chart in doc.charts():
        for ax in chart.figure.axes:
            for line in ax.get_lines():
                assert len(line.get_xdata()) <= 2 * ch.MAX_LINE_POINTS + 2
            for coll in ax.collections:
                assert len(coll.get_offsets()) <= max(ch.MAX_MARKERS, 10_000)


def test_pdf_tables_run_over_pages() -> None:
    rows = [[str(i), f"{i * 1.5:.2f}"] for i in range(200)]
    doc = ReportDoc("Long table", "sub", [Section("Rows", [DataTable("", ["n", "x"], rows)])])
    pdf = render_pdf(doc)
    assert pdf.startswith(b"%PDF-")
    assert len(re.findall(rb"/Type\s*/Page\b", pdf)) >= 4


def test_metric_formats() -> None:
    assert fmt_metric("total_return", 0.12345) == "12.35%"
    assert fmt_metric("total_return", -1.5) == "-150.00%"
    assert fmt_metric("num_trades", 1234.0) == "1,234"
    assert fmt_metric("sharpe", 1.23456) == "1.235"
    assert fmt_metric("max_drawdown_duration", 12.0) == "12.0 bars"
    assert fmt_metric("sharpe", float("nan")) == "n/a"


def test_equity_csv_has_every_bar_and_buy_and_hold() -> None:
    r = make_report(300, 10)
    text = render_backtest(r, "csv", charts=False, table="equity").decode().splitlines()
    assert text[0] == "time,equity,drawdown,close,buy_and_hold_equity" and len(text) == 301
    first = text[1].split(",")
    assert float(first[4]) == pytest.approx(10_000.0)


def trial(n: int, params: dict[str, object], value: float, ran: bool = True) -> Trial:
    metrics = {"sharpe": value, "total_return": value / 10} if ran else {}
    return Trial(n, params, [value if ran else -1e12], metrics, feasible=ran)


def test_job_report_without_validation_and_with_a_categorical_parameter() -> None:
    trials = [
        trial(i, {"fast": 5 + i, "mode": ["a", "b", "c"][i % 3]}, float(np.sin(i)))
        for i in range(30)
    ] + [trial(30, {"fast": 99, "mode": "a"}, 0.0, ran=False)]
    r = JobReport(
        job_id="j1", title="T: optimization report", state="succeeded",
        strategy_type="sma_crossover", objectives=[("sharpe", "maximize")], trials=trials,
        best=trials[1], pareto_front=[], importances={"mode": 0.6, "fast": 0.4},
    )  # fmt: skip
    doc = job_doc(r, charts=True)
    assert [c.key for c in doc.charts()] == ["history", "importances", "params"]
    history = doc.charts()[0]
    assert "1 trials broke a parameter rule" in history.caption
    # The penalty value of the trial that never ran is not on any axis.
    for chart in doc.charts():
        for ax in chart.figure.axes:
            assert ax.get_ylim()[0] > -1e6, chart.key
    html = render_html(doc).decode()
    assert "No held-out period was requested" in html and "not run" in html
    assert render_job(r, "pdf", charts=True).startswith(b"%PDF-")
    rows = render_job(r, "csv", charts=False).decode().splitlines()
    assert rows[0].startswith("number,feasible,objective_sharpe,param_fast,param_mode")
    assert len(rows) == 32
