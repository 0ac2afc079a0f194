"""Backtest reports: JSON (everything), CSV (the trades), HTML (metrics, charts, trades).

Charts are inline SVG drawn here, so a report is one self-contained file that opens
anywhere without scripts or network access.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

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


def report_json(summary: Mapping[str, Any], trades: pd.DataFrame) -> bytes:
    body = {**summary, "trades": _trade_records(trades)}
    return json.dumps(body, indent=2, default=str).encode()


def report_csv(trades: pd.DataFrame) -> bytes:
    cols = [c for c in REPORT_TRADE_COLUMNS if c in trades.columns]
    return trades[cols].to_csv(index=False).encode()


def report_html(summary: Mapping[str, Any], trades: pd.DataFrame, *, charts: bool) -> bytes:
    m = summary.get("metrics", {})
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{_fmt(v)}</td></tr>" for k, v in m.items())
    curve = summary.get("equity_curve", [])
    svg = ""
    if charts and curve:
        svg = _line_svg([p[1] for p in curve], "Equity", "#1f6feb") + _line_svg(
            [-p[2] for p in curve], "Drawdown", "#d1242f"
        )
    trade_rows = "".join(
        "<tr>"
        + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in REPORT_TRADE_COLUMNS)
        + "</tr>"
        for r in _trade_records(trades.head(500))
    )
    head = "".join(f"<th>{c}</th>" for c in REPORT_TRADE_COLUMNS)
    title = html.escape(str(summary.get("title", "Backtest report")))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>{_CSS}</style></head>
<body><h1>{title}</h1><p>{html.escape(str(summary.get("subtitle", "")))}</p>
<h2>Metrics</h2><table>{rows}</table>{svg}
<h2>Trades</h2><p>{len(trades)} trades{" (first 500 shown)" if len(trades) > 500 else ""}</p>
<table><tr>{head}</tr>{trade_rows}</table></body></html>"""
    return page.encode()


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2rem;color:#1f2328}"
    "table{border-collapse:collapse}"
    "td,th{padding:2px 8px;border-bottom:1px solid #d0d7de;text-align:right}th{text-align:left}"
)


def _line_svg(values: Sequence[float], title: str, color: str, w: int = 900, h: int = 220) -> str:
    if len(values) < 2:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    pts = " ".join(
        f"{i * (w - 10) / (len(values) - 1) + 5:.1f},{h - 5 - (v - lo) / span * (h - 10):.1f}"
        for i, v in enumerate(values)
    )
    return (
        f'<h2>{title}</h2><svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        f'role="img" aria-label="{title}"><polyline fill="none" stroke="{color}" '
        f'stroke-width="1.5" points="{pts}"/></svg>'
    )


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


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.6g}"
    return "" if v is None else str(v)
