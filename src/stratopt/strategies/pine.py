"""Pine Script v6 templates: a shared header and order block around each strategy's logic.

Every library template is `script(body)`: a complete `//@version=6` strategy whose body
declares one `input.*` per parameter and assigns the integer `target` (+1 long, -1 short,
0 flat) with the same rules, in the same order, as the strategy's numba signal function.
The order block that follows turns `target` into orders that trade like the simulator
(engine/simulator.py): same fill bar and price, same quantity, same protective exits and
the same "stay flat after a stop until the signal changes" rule. docs/pine.md explains
each choice and the few cases TradingView's broker cannot express.

Templates are `str.format` templates. Parameter fields are named after the parameter
(`{fast}`); the settings fields below are reserved. Pine Script needs no braces, so a
literal brace must never appear in a body.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

Direction = Literal["long", "short", "both"]

SETTINGS_FIELDS = (
    "title",
    "initial_capital",
    "qty_percent",
    "commission_percent",
    "process_orders_on_close",
    "calc_on_order_fills",
    "orders",
)

# margin_long/short=0: no margin model, as in the simulator (a 100 % position is never
# refused or liquidated). calc_on_order_fills lets the script act right after a fill at the
# open: protective exits priced off the real fill, and the second leg of a reversal.
_HEADER = """//@version=6
strategy("{title}", overlay=%(overlay)s, initial_capital={initial_capital}, \
default_qty_type=strategy.percent_of_equity, default_qty_value={qty_percent}, \
commission_type=strategy.commission.percent, commission_value={commission_percent}, \
margin_long=0, margin_short=0, pyramiding=0, \
process_orders_on_close={process_orders_on_close}, calc_on_order_fills={calc_on_order_fills})

"""

_SIDES: dict[str, int] = {"long": 1, "short": -1, "both": 0}


def script(body: str, *, overlay: bool = True) -> str:
    """A complete strategy template from the strategy-specific inputs and `target` logic."""
    header = _HEADER % {"overlay": "true" if overlay else "false"}
    return header + body.strip("\n") + "\n{orders}"


@dataclass(frozen=True)
class PineSettings:
    """Backtest settings carried into the script; units mirror the engine's
    `ExecutionOptions` (`size` is its `position_size`).

    `commission`, `size` and the exits are fractions (0.001 = 0.1 %, 1.0 = all equity) like
    the simulator's; Pine wants percents for the first two. Slippage has no Pine equivalent
    in price fractions (Pine counts ticks), so it is not exported.
    """

    title: str = "stratopt strategy"
    initial_capital: float = 10_000.0
    commission: float = 0.0
    size: float = 1.0
    direction: Direction = "long"
    fill_on_close: bool = False
    stop_loss: float = 0.0
    take_profit: float = 0.0
    trailing_stop: float = 0.0

    def fields(self) -> dict[str, str]:
        if self.direction not in _SIDES:
            raise ValueError(f"direction must be one of {sorted(_SIDES)}")
        return {
            "title": _escape(self.title),
            "initial_capital": number_literal(self.initial_capital),
            "qty_percent": number_literal(self.size * 100.0),
            "commission_percent": number_literal(self.commission * 100.0),
            "process_orders_on_close": "true" if self.fill_on_close else "false",
            "calc_on_order_fills": "false" if self.fill_on_close else "true",
            "orders": order_block(self),
        }


def render(template: str, values: Mapping[str, str], settings: PineSettings) -> str:
    """Fill a template; `values` are Pine literals keyed by parameter name."""
    clash = set(values) & set(SETTINGS_FIELDS)
    if clash:
        raise ValueError(f"parameter names clash with Pine settings fields: {sorted(clash)}")
    return template.format(**settings.fields(), **values)


ORDER_NAMES = (
    "simHeld", "simBlocked", "simPending", "simSeenFills", "simFills", "simAfterFill",
    "simBest", "simBestTrade", "simPos", "simSide", "simWanted", "simQty", "simCash",
)  # fmt: skip
"""Identifiers the order block declares; a template must not use them."""


def order_block(s: PineSettings) -> str:
    """The Pine that follows `target` the way engine/simulator.py does (docs/pine.md)."""
    on_close = s.fill_on_close
    protective = bool(s.stop_loss or s.take_profit or s.trailing_stop)
    c = number_literal(s.commission)
    size = number_literal(s.size)
    direction = _SIDES[s.direction]
    side_id = '{0} > 0 ? "Long" : "Short"'
    side_dir = "{0} > 0 ? strategy.long : strategy.short"
    out = [
        "",
        "// ---- Orders: the stratopt backtest's execution rules (see docs/pine.md) ----",
        "// simHeld: the side held or ordered; simBlocked: the side a protective exit",
        "// closed, kept flat until the target leaves it (as the backtest does).",
        "var int simHeld = 0",
        "var int simBlocked = 0",
    ]
    if on_close:
        out += [
            "// Orders fill at the close they are placed on (process_orders_on_close).",
            "bool simAfterFill = false",
        ]
    else:
        out += [
            "// simPending: a reversal's new side, entered right after the old trade",
            "// closes at the open, sized on the equity that close leaves.",
            "var int simPending = 0",
            "// calc_on_order_fills runs the script again right after each fill. Such a",
            "// run only prices exits and completes a reversal: decisions wait for the",
            "// bar's close, the run after which no fill is new.",
            "varip int simSeenFills = 0",
            "int simFills = 2 * strategy.closedtrades + strategy.opentrades",
            "bool simAfterFill = simFills != simSeenFills",
            "simSeenFills := simFills",
        ]
    if protective:
        out += [
            "// simBest: the most favourable price since entry (trailing stop).",
            "var float simBest = na",
            "var int simBestTrade = -1",
        ]
    out += [
        "",
        "if strategy.position_size == 0",
        '    strategy.cancel("Long exit")',
        '    strategy.cancel("Short exit")',
    ]
    if not on_close:
        out += [
            "    if simAfterFill and simPending != 0",
            "        // Sized like the backtest: size x equity / (fill x (1 + commission)).",
            f"        float simQty = {size} * strategy.equity / (open * (1 + {c}))",
            f"        strategy.entry({side_id.format('simPending')}, "
            f"{side_dir.format('simPending')}, qty=simQty)",
        ]
    if protective:
        out += [
            "",
            "if strategy.position_size != 0",
            "    int simPos = strategy.position_size > 0 ? 1 : -1",
            "    if strategy.opentrades.entry_bar_index(0) != simBestTrade",
            "        simBest := strategy.position_avg_price",
            "        simBestTrade := strategy.opentrades.entry_bar_index(0)",
            "    // A run right after a fill must not move the trail with this bar's range.",
            "    if not simAfterFill",
            "        simBest := simPos > 0 ? math.max(simBest, high) : math.min(simBest, low)",
            *_exit_orders(s, "simPos", "strategy.position_avg_price", "    "),
        ]
    out += [
        "",
        "if not simAfterFill",
        "    if simHeld != 0 and strategy.position_size == 0",
        "        // A stop-loss, take-profit or trailing stop closed the trade.",
        "        simBlocked := simHeld",
        "        simHeld := 0",
    ]
    if not on_close:
        out += [
            "        simPending := 0",
            "    if strategy.position_size != 0",
            "        simPending := 0",
        ]
    out += [
        "    int simSide = target > 0 ? 1 : target < 0 ? -1 : 0",
        "    if simBlocked != 0 and simSide != simBlocked",
        "        simBlocked := 0",
        f"    int simWanted = simBlocked != 0 or ({direction} != 0 and simSide != {direction})"
        " ? 0 : simSide",
        "    if simWanted != simHeld",
    ]
    if on_close:
        out += [
            "        if simWanted == 0",
            f'            strategy.close({side_id.format("simHeld")}, comment="signal")',
            "        else",
            "            // size x the equity an exit at this close leaves (its commission",
            "            // paid) / (close x (1 + commission)). An entry against an open",
            "            // trade reverses it: TradingView closes it and opens simQty.",
            "            float simCash = strategy.equity - math.abs(strategy.position_size)"
            f" * close * {c}",
            f"            float simQty = {size} * simCash / (close * (1 + {c}))",
            f"            strategy.entry({side_id.format('simWanted')}, "
            f"{side_dir.format('simWanted')}, qty=simQty)",
        ]
        if protective:
            out += [
                "            simBest := close",
                "            simBestTrade := bar_index",
                *_exit_orders(s, "simWanted", "close", "            "),
            ]
    else:
        out += [
            "        if simHeld != 0",
            f'            strategy.close({side_id.format("simHeld")}, comment="signal")',
            "        if simWanted != 0 and simHeld != 0",
            "            simPending := simWanted",
            "        else if simWanted != 0",
            "            // A limit priced through the market fills at the next open like a",
            "            // market order, and TradingView sizes it at that fill price:",
            "            // size x equity / (open x (1 + commission)), as the backtest does.",
            f"            strategy.entry({side_id.format('simWanted')}, "
            f"{side_dir.format('simWanted')}, limit=simWanted > 0 ? close * 100 : close / 100)",
        ]
    out += ["        simHeld := simWanted", ""]
    return "\n".join(out)


def _exit_orders(s: PineSettings, side: str, entry: str, indent: str) -> list[str]:
    """strategy.exit for the trade on `side` entered at `entry`, trailing from `simBest`."""
    lines: list[str] = []
    for sign, name in ((1, "Long"), (-1, "Short")):
        minus, plus = ("-", "+") if sign > 0 else ("+", "-")
        stops = []
        if s.stop_loss:
            stops.append(f"{entry} * (1 {minus} {number_literal(s.stop_loss)})")
        if s.trailing_stop:
            stops.append(f"simBest * (1 {minus} {number_literal(s.trailing_stop)})")
        args = [f'"{name} exit"', f'"{name}"']
        if len(stops) == 2:
            args.append(f"stop={'math.max' if sign > 0 else 'math.min'}({stops[0]}, {stops[1]})")
        elif stops:
            args.append(f"stop={stops[0]}")
        if s.take_profit:
            args.append(f"limit={entry} * (1 {plus} {number_literal(s.take_profit)})")
        lines.append(f"{indent}if {side} > 0" if sign > 0 else f"{indent}else")
        lines.append(f"{indent}    strategy.exit({', '.join(args)})")
    return lines


def number_literal(value: float) -> str:
    """Shortest round-tripping decimal without exponent; Pine has no `1e-05` syntax."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return str(np.format_float_positional(float(value), trim="0"))


def string_literal(value: str) -> str:
    return f'"{_escape(value)}"'


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("\r", " ")
