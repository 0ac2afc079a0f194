"""Pine Script v6 export: the strategy's template with its parameters, plus its stops."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stratopt.strategies.base import StrategyType
from stratopt.strategies.pine import PineSettings, number_literal


def pine_script(
    stype: StrategyType,
    params: Mapping[str, Any],
    execution: Mapping[str, Any],
    title: str,
    *,
    include_execution: bool = True,
) -> str:
    """The full script; execution options become strategy() settings and exit orders."""
    settings = PineSettings(
        title=title,
        initial_capital=float(execution.get("initial_cash", 10_000.0)),
        commission=float(execution.get("commission", 0.0)) if include_execution else 0.0,
        size=float(execution.get("position_size", 1.0)) if include_execution else 1.0,
        direction=execution.get("direction", "long") if include_execution else "both",
        fill_on_close=bool(execution.get("fill_on_close", False)) and include_execution,
    )
    script = stype.render_pine(params, settings)
    stops = _stops(execution) if include_execution else ""
    return script + stops


def _stops(execution: Mapping[str, Any]) -> str:
    """strategy.exit orders mirroring the simulator's stop-loss, take-profit and trailing stop
    (fractions of the entry price; the trail is a fraction of the best price since entry)."""
    sl = float(execution.get("stop_loss", 0.0))
    tp = float(execution.get("take_profit", 0.0))
    trail = float(execution.get("trailing_stop", 0.0))
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
