"""Pine Script v6 export: the strategy's template, its execution options, a provenance header.

The script trades like `engine.backtest` with the same parameters and options on the same
bars (docs/pine.md: the sizing rule, the end-of-data exit, and what TradingView's broker
cannot express). tests/unit/export/test_pine_pynecore.py runs every built-in type in
PyneCore, an independent Pine runtime, and compares trade for trade.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stratopt import __version__
from stratopt.engine.options import ExecutionOptions
from stratopt.strategies.base import StrategyType
from stratopt.strategies.pine import PineSettings

# Metrics shown in the header, in this order, when the caller has them.
HEADER_METRICS = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "win_rate",
    "profit_factor",
    "num_trades",
)


@dataclass(frozen=True)
class Provenance:
    """Where an exported script comes from, written as comments at its top.

    `source` names the stratopt resource (``strategies/ID``, ``jobs/ID``, ``strategyTypes/X``);
    `dataset` and `period` the bars its metrics were measured on; `metrics` a few numbers
    from that run (a backtest's metrics, or an optimization's best objective values).
    """

    source: str = ""
    strategy: str = ""
    dataset: str = ""
    period: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)
    note: str = ""


def pine_script(
    stype: StrategyType,
    params: Mapping[str, Any],
    options: ExecutionOptions,
    title: str,
    *,
    include_execution: bool = True,
    provenance: Provenance | None = None,
) -> str:
    """The full script: provenance comments, then the strategy with its orders.

    Without ``include_execution`` the script keeps the starting capital and the direction
    (which sides the strategy trades is part of its logic) and takes the engine's default
    costs, sizing and fills, with no stops: it reproduces a backtest run with only
    ``initial_cash`` and ``direction`` set.
    """
    if include_execution:
        settings = PineSettings(
            title=title,
            initial_capital=options.initial_cash,
            commission=options.commission,
            size=options.position_size,
            direction=options.direction,
            fill_on_close=options.fill_on_close,
            stop_loss=options.stop_loss,
            take_profit=options.take_profit,
            trailing_stop=options.trailing_stop,
        )
        run = options
    else:
        settings = PineSettings(
            title=title, initial_capital=options.initial_cash, direction=options.direction
        )
        run = ExecutionOptions(initial_cash=options.initial_cash, direction=options.direction)
    values = stype.resolve(params)
    header = _header(stype, values, run, provenance or Provenance(), include_execution)
    return header + stype.render_pine(values, settings)


def _header(
    stype: StrategyType,
    values: Mapping[str, Any],
    run: ExecutionOptions,
    prov: Provenance,
    include_execution: bool,
) -> str:
    lines = [f"Exported by stratopt {__version__}: {prov.strategy or stype.display_name}"]
    lines.append(f"Strategy type: {stype.name} ({stype.display_name})")
    if prov.source:
        lines.append(f"Source: {prov.source}")
    lines.append("Parameters: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    lines.append("Execution: " + _execution_text(run, include_execution))
    if prov.dataset or prov.period:
        lines.append(f"Dataset: {prov.dataset or 'unknown'}; period: {prov.period or 'all bars'}")
    shown = [(k, prov.metrics[k]) for k in HEADER_METRICS if k in prov.metrics]
    shown += [(k, v) for k, v in prov.metrics.items() if k not in HEADER_METRICS][: 8 - len(shown)]
    if shown:
        lines.append("Metrics: " + ", ".join(f"{k}={_metric(v)}" for k, v in shown))
    if prov.note:
        lines.append(prov.note)
    lines += [
        "Trades like the stratopt backtest on the same bars: fills at the next open (or the",
        "close), size x equity per entry, flat after a stop until the signal changes. The",
        "backtest closes a trade still open at its last bar; this script leaves it open.",
        "Differences that TradingView's broker cannot avoid: see stratopt's docs/pine.md.",
    ]
    return "".join(f"// {line}\n" for line in lines)


def _execution_text(o: ExecutionOptions, include_execution: bool) -> str:
    parts = [
        f"initial_cash={o.initial_cash:g}",
        f"direction={o.direction}",
        f"position_size={o.position_size:g}",
        f"commission={o.commission:g}",
        f"fill={'close' if o.fill_on_close else 'next open'}",
    ]
    for name in ("stop_loss", "take_profit", "trailing_stop"):
        if getattr(o, name):
            parts.append(f"{name}={getattr(o, name):g}")
    if o.slippage:
        parts.append(f"slippage={o.slippage:g} (not exported: Pine counts slippage in ticks)")
    if not include_execution:
        parts.append("(costs, sizing and stops left out on request)")
    return ", ".join(parts)


def period_text(start_ns: int, end_ns: int) -> str:
    """A run's period as dates ("2021-01-01 to 2023-12-31"); 0 means the data's own end."""

    def day(ns: int) -> str:
        return datetime.fromtimestamp(ns / 1e9, UTC).date().isoformat()

    if not start_ns and not end_ns:
        return "all bars"
    return (
        f"{day(start_ns) if start_ns else 'first bar'} to {day(end_ns) if end_ns else 'last bar'}"
    )


def _metric(value: float) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
