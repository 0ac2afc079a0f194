"""How a report prints a metric: its label, its unit and its value, one rule for every
table, chart axis and renderer (so the PDF, the HTML and the axes agree)."""

from __future__ import annotations

import math
from typing import Any

# Metrics stored as fractions and shown as percentages.
PERCENT = frozenset(
    {
        "total_return", "cagr", "annual_volatility", "max_drawdown", "ulcer_index", "win_rate",
        "expectancy", "avg_win", "avg_loss", "largest_win", "largest_loss", "exposure",
        "buy_and_hold_return", "alpha",
    }
)  # fmt: skip
COUNTS = frozenset({"num_trades", "winning_trades", "losing_trades"})
BARS = frozenset({"max_drawdown_duration", "avg_trade_duration"})
LABELS = {
    "total_return": "Total return",
    "cagr": "CAGR",
    "annual_volatility": "Annual volatility",
    "sharpe": "Sharpe ratio",
    "sortino": "Sortino ratio",
    "calmar": "Calmar ratio",
    "max_drawdown": "Max drawdown",
    "max_drawdown_duration": "Max drawdown duration",
    "ulcer_index": "Ulcer index",
    "win_rate": "Win rate",
    "profit_factor": "Profit factor",
    "expectancy": "Expectancy per trade",
    "avg_win": "Average win",
    "avg_loss": "Average loss",
    "largest_win": "Largest win",
    "largest_loss": "Largest loss",
    "num_trades": "Trades",
    "exposure": "Exposure",
    "sqn": "SQN",
    "kelly": "Kelly fraction",
    "avg_trade_duration": "Average trade duration",
    "buy_and_hold_return": "Buy-and-hold return",
    "winning_trades": "Winning trades",
    "losing_trades": "Losing trades",
    "trades_per_month": "Trades per month",
    "burke_ratio": "Burke ratio",
    "alpha": "Alpha vs buy-and-hold (annual)",
    "beta": "Beta vs buy-and-hold",
    "deflated_sharpe": "Deflated Sharpe ratio",
    "final_equity": "Final equity",
}


def label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


def unit(name: str) -> str:
    if name in PERCENT:
        return "%"
    if name in COUNTS:
        return "trades"
    if name in BARS:
        return "bars"
    if name == "final_equity":
        return "account currency"
    return "ratio"


def axis_label(name: str) -> str:
    return f"{label(name)} ({unit(name)})"


def scale(name: str, value: float) -> float:
    """The value in the unit of `unit(name)` (fractions become percentages)."""
    return value * 100 if name in PERCENT else value


def fmt_metric(name: str, value: Any) -> str:
    """E.g. total_return 0.1234 -> '12.34%', num_trades 7.0 -> '7', sharpe -> '1.234'."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "" if value is None else str(value)
    v = float(value)
    if not math.isfinite(v):
        return "n/a"
    if name in PERCENT:
        return f"{v * 100:,.2f}%"
    if name in COUNTS:
        return f"{v:,.0f}"
    if name in BARS:
        return f"{v:,.1f} bars"
    if name == "final_equity":
        return f"{v:,.2f}"
    return f"{v:,.3f}"


def fmt_value(v: Any) -> str:
    """A table cell that is not a named metric."""
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v).lower()
    if isinstance(v, float):
        return f"{v:,.6g}" if math.isfinite(v) else "n/a"
    return str(v)
