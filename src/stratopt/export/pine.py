"""Pine Script v6 export: the strategy's template with its parameters, plus its stops."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stratopt.engine.options import ExecutionOptions
from stratopt.strategies.base import StrategyType
from stratopt.strategies.pine import PineSettings, number_literal


def pine_script(
    stype: StrategyType,
    params: Mapping[str, Any],
    options: ExecutionOptions,
    title: str,
    *,
    include_execution: bool = True,
) -> str:
    """The full script; execution options become strategy() settings and exit orders.

    Without ``include_execution`` only the starting capital is carried over; costs, sizing,
    direction and exits keep Pine's neutral settings (PineSettings' defaults).
    """
    if not include_execution:
        return stype.render_pine(
            params, PineSettings(title=title, initial_capital=options.initial_cash)
        )
    settings = PineSettings(
        title=title,
        initial_capital=options.initial_cash,
        commission=options.commission,
        size=options.position_size,
        direction=options.direction,
        fill_on_close=options.fill_on_close,
    )
    return stype.render_pine(params, settings) + _stops(options)


def _stops(options: ExecutionOptions) -> str:
    """strategy.exit orders mirroring the simulator's stop-loss, take-profit and trailing stop
    (fractions of the entry price; the trail is a fraction of the best price since entry)."""
    sl, tp, trail = options.stop_loss, options.take_profit, options.trailing_stop
    if not (sl or tp or trail):
        return ""
    lines = ["", "// Exits: stop-loss, take-profit and trailing stop as in the backtest."]
    lines.append("entry = strategy.opened_trades > 0 ? strategy.opened_trades.entry_price(0) : na")
    for side, sign, name in (("long", 1, "Long"), ("short", -1, "Short")):
        args = [f'"{name} exit"', f'"{name}"']
        if sl:
            args.append(f"stop=entry * (1 {'-' if sign > 0 else '+'} {number_literal(sl)})")
        if tp:
            args.append(f"limit=entry * (1 {'+' if sign > 0 else '-'} {number_literal(tp)})")
        if trail:
            args.append(
                f"trail_points=0, trail_offset=entry * {number_literal(trail)} / syminfo.mintick"
            )
        cond = "strategy.position_size > 0" if side == "long" else "strategy.position_size < 0"
        lines.append(f"if {cond}")
        lines.append(f"    strategy.exit({', '.join(args)})")
    return "\n".join(lines) + "\n"
