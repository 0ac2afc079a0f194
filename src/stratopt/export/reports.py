"""Backtest reports: JSON (everything), CSV (trades or equity), HTML and PDF (metrics,
charts, trades), all from one `BacktestReport`.

HTML and PDF are two renderings of one document (export.report_doc), so they carry the
same metrics, charts and trade table. Inputs are plain arrays and frames (this layer does
not read the database); the charts bound their own sizes (export.charts).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from stratopt.export import charts as ch
from stratopt.export.metric_format import fmt_metric, fmt_value, label
from stratopt.export.report_doc import (
    Chart,
    DataTable,
    KeyValues,
    Note,
    ReportDoc,
    Section,
    render_html,
    render_pdf,
)

REPORT_TRADE_COLUMNS = (
    "entry_time",
    "exit_time",
    "side",
    "entry_price",
    "exit_price",
    "size",
    "pnl",
    "ret",
    "bars_held",
    "exit_reason",
)
# Trades listed in HTML and PDF (all of them are in JSON and CSV).
MAX_LISTED_TRADES = 200
# Equity points in the JSON report (the full curve, one row per bar, is the equity CSV).
JSON_EQUITY_POINTS = 5_000
# Metrics shown first, in this order; the rest follow alphabetically.
HEADLINE = (
    "total_return", "buy_and_hold_return", "cagr", "sharpe", "sortino", "calmar",
    "max_drawdown", "num_trades", "winning_trades", "losing_trades", "win_rate",
    "profit_factor", "trades_per_month", "final_equity",
)  # fmt: skip


@dataclass
class BacktestReport:
    """What a backtest report shows. `close` (one price per bar, aligned with `ts`) is
    optional: without it there is no buy-and-hold line and no trades-on-price chart."""

    strategy_name: str
    strategy_type: str
    parameters: Mapping[str, Any]
    metrics: Mapping[str, Any]
    ts: npt.NDArray[np.int64]
    equity: npt.NDArray[np.float64]
    trades: pd.DataFrame
    initial_cash: float
    close: npt.NDArray[np.float64] | None = None
    execution: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, str] = field(default_factory=dict)  # backtest id, dataset, period, ...
    extra: Mapping[str, Any] = field(default_factory=dict)  # monte carlo, walk-forward (JSON)
    missing_prices: str = ""  # why `close` is absent, shown in the report

    @property
    def title(self) -> str:
        return f"{self.strategy_name}: backtest report"


def report_json(r: BacktestReport) -> bytes:
    idx = ch.decimate(r.equity, JSON_EQUITY_POINTS)
    dd = 1.0 - r.equity / np.maximum.accumulate(r.equity) if len(r.equity) else r.equity
    body = {
        "title": r.title,
        "run": dict(r.info),
        "strategy_name": r.strategy_name,
        "strategy_type": r.strategy_type,
        "parameters": dict(r.parameters),
        "execution": dict(r.execution),
        "metrics": dict(r.metrics),
        "equity_curve": [[int(r.ts[i]), float(r.equity[i]), float(dd[i])] for i in idx],
        "equity_curve_note": (
            f"{len(idx)} of {len(r.equity)} points (each bucket's first, lowest and highest); "
            "the CSV equity report has every bar"
        ),
        **dict(r.extra),
        "trades": _trade_records(r.trades),
    }
    return json.dumps(body, indent=2, default=str).encode()


def report_csv(trades: pd.DataFrame) -> bytes:
    cols = [c for c in REPORT_TRADE_COLUMNS if c in trades.columns]
    out = trades[cols].copy()
    if "side" in out.columns:
        out["side"] = out["side"].map(lambda s: "long" if int(s) > 0 else "short")
    return out.to_csv(index=False).encode()


def equity_csv(r: BacktestReport) -> bytes:
    """Every bar: time, equity, drawdown (fraction) and, when known, close and buy-and-hold."""
    frame = pd.DataFrame({"time": pd.to_datetime(r.ts, utc=True), "equity": r.equity})
    peak = np.maximum.accumulate(r.equity) if len(r.equity) else r.equity
    frame["drawdown"] = 1.0 - r.equity / peak
    if r.close is not None and len(r.close) == len(r.equity) and len(r.close):
        frame["close"] = r.close
        frame["buy_and_hold_equity"] = r.initial_cash * r.close / r.close[0]
    return frame.to_csv(index=False).encode()


def report_html(r: BacktestReport, *, charts: bool = True) -> bytes:
    return render_html(backtest_doc(r, charts=charts))


def report_pdf(r: BacktestReport, *, charts: bool = True) -> bytes:
    return render_pdf(backtest_doc(r, charts=charts))


def backtest_doc(r: BacktestReport, *, charts: bool) -> ReportDoc:
    summary = [(label(k), fmt_metric(k, r.metrics[k])) for k in HEADLINE if k in r.metrics]
    others = sorted(k for k in r.metrics if k not in HEADLINE)
    overview = Section(
        "Summary",
        [
            KeyValues("Key metrics", summary),
            KeyValues(
                "Run",
                [
                    ("Strategy", r.strategy_name),
                    ("Strategy type", r.strategy_type),
                    ("Parameters", _params(r.parameters)),
                    *((k, v) for k, v in r.info.items()),
                ],
            ),
        ],
    )
    sections = [overview]
    if charts:
        sections.append(Section("Charts", _backtest_charts(r)))
    sections.append(
        Section(
            "All metrics",
            [
                KeyValues("", [(label(k), fmt_metric(k, r.metrics[k])) for k in others]),
                KeyValues("Execution options", [(k, fmt_value(v)) for k, v in r.execution.items()]),
            ],
        )
    )
    sections.append(Section("Trades", [_trade_table(r.trades)]))
    sub = ", ".join(
        [f"{r.strategy_type} {_params(r.parameters)}", *(v for v in r.info.values() if v)]
    )
    return ReportDoc(title=r.title, subtitle=sub, sections=sections)


def _backtest_charts(r: BacktestReport) -> list[Chart | Note]:
    if len(r.equity) < 2:
        return [Note("Fewer than two bars: nothing to chart.")]
    out: list[Chart | Note] = []
    close = r.close if r.close is not None and len(r.close) == len(r.equity) else None
    if close is None and r.missing_prices:
        out.append(Note(f"No price data: {r.missing_prices}"))
    out.append(Chart("equity", "Equity", ch.equity_chart(r.ts, r.equity, close, r.initial_cash)))
    out.append(Chart("drawdown", "Drawdown", ch.drawdown_chart(r.ts, r.equity, close)))
    if close is not None:
        out.append(
            Chart("trades", "Trades on price", ch.trades_on_price_chart(r.ts, close, r.trades))
        )
    table = ch.monthly_returns(r.ts, r.equity, r.initial_cash)
    out.append(Chart("monthly", "Monthly returns", ch.monthly_heatmap_chart(table)))
    if len(r.trades) and "ret" in r.trades.columns:
        out.append(Chart("pnl", "Trade returns", ch.pnl_distribution_chart(r.trades)))
    else:
        out.append(Note("No closed trades: no trade return distribution."))
    return out


def _trade_table(trades: pd.DataFrame) -> DataTable:
    cols = [c for c in REPORT_TRADE_COLUMNS if c in trades.columns]
    records = _trade_records(trades.head(MAX_LISTED_TRADES))
    rows = [[_cell(c, rec.get(c)) for c in cols] for rec in records]
    note = f"{len(trades):,} trades"
    if len(trades) > MAX_LISTED_TRADES:
        note += f"; the first {MAX_LISTED_TRADES} are listed (JSON and CSV have all)"
    return DataTable("", [c.replace("_", " ") for c in cols], rows, note)


def _cell(col: str, v: Any) -> str:
    if col == "ret" and isinstance(v, float):
        return f"{v * 100:.2f}%"
    if col in ("entry_time", "exit_time"):
        return str(v).replace("+00:00", "")
    if isinstance(v, float):
        return f"{v:,.4f}" if col != "size" else f"{v:,.6g}"
    return fmt_value(v)


def _params(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items()) or "defaults"


def _trade_records(trades: pd.DataFrame) -> list[dict[str, Any]]:
    if trades.empty:
        return []
    out = trades.copy()
    for col in ("entry_time", "exit_time"):
        if col in out.columns:
            out[col] = out[col].astype(str)
    if "exit_reason" in out.columns:
        out["exit_reason"] = out["exit_reason"].astype(str)
    if "side" in out.columns:
        out["side"] = out["side"].map(lambda s: "long" if int(s) > 0 else "short")
    return [{str(k): v for k, v in r.items()} for r in out.to_dict("records")]


def render_backtest(r: BacktestReport, fmt: str, *, charts: bool, table: str = "") -> bytes:
    """`fmt` is json, csv, html or pdf; a CSV is the trades (or `table="equity"`: the
    equity curve, one row per bar). CPU-bound: run it in a worker thread."""
    if fmt == "json":
        return report_json(r)
    if fmt == "csv":
        return equity_csv(r) if table == "equity" else report_csv(r.trades)
    if fmt == "html":
        return report_html(r, charts=charts)
    if fmt == "pdf":
        return report_pdf(r, charts=charts)
    raise ValueError(f"unknown report format {fmt!r}")
