"""Pine Script v6 templates: a shared header and order footer around each strategy's logic.

Every library template is `script(body)`: a complete `//@version=6` strategy whose body
declares one `input.*` per parameter and assigns the integer `target` (+1 long, -1 short,
0 flat) with the same rules, in the same order, as the strategy's numba signal function.
The footer turns `target` into orders the way the simulator does: orders placed on a bar's
close fill at the next open (or on the close with `process_orders_on_close`), and the
long/short/both restriction is `strategy.risk.allow_entry_in`, which turns a forbidden
entry into an exit, just as the simulator flattens a filtered target.

Templates are `str.format` templates. Parameter fields are named after the parameter
(`{fast}`); the settings fields below are reserved. Pine Script needs no braces, so a
literal brace must never appear in a body. Exporters may append code (stops, alerts) after
the rendered script; `target` is in scope there.
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
    "allowed_direction",
)

_HEADER = """//@version=6
strategy("{title}", overlay=%(overlay)s, initial_capital={initial_capital}, \
default_qty_type=strategy.percent_of_equity, default_qty_value={qty_percent}, \
commission_type=strategy.commission.percent, commission_value={commission_percent}, \
process_orders_on_close={process_orders_on_close}, pyramiding=0)
strategy.risk.allow_entry_in({allowed_direction})

"""

_FOOTER = """
// Orders: follow the target position (+1 long, -1 short, 0 flat).
if target == 1 and strategy.position_size <= 0
    strategy.entry("Long", strategy.long)
else if target == -1 and strategy.position_size >= 0
    strategy.entry("Short", strategy.short)
else if target == 0 and strategy.position_size != 0
    strategy.close_all()
"""

_DIRECTIONS: dict[str, str] = {
    "long": "strategy.direction.long",
    "short": "strategy.direction.short",
    "both": "strategy.direction.all",
}


def script(body: str, *, overlay: bool = True) -> str:
    """A complete strategy template from the strategy-specific inputs and `target` logic."""
    header = _HEADER % {"overlay": "true" if overlay else "false"}
    return header + body.strip("\n") + "\n" + _FOOTER


@dataclass(frozen=True)
class PineSettings:
    """Backtest settings carried into `strategy(...)`; units mirror the engine's
    `ExecutionOptions` (`size` is its `position_size`).

    `commission` and `size` are fractions (0.001 = 0.1 %, 1.0 = all equity) like the
    simulator's; Pine wants percents. Slippage has no Pine equivalent in price fractions
    (Pine counts ticks), so it is not exported.
    """

    title: str = "stratopt strategy"
    initial_capital: float = 10_000.0
    commission: float = 0.0
    size: float = 1.0
    direction: Direction = "both"
    fill_on_close: bool = False

    def fields(self) -> dict[str, str]:
        if self.direction not in _DIRECTIONS:
            raise ValueError(f"direction must be one of {sorted(_DIRECTIONS)}")
        return {
            "title": _escape(self.title),
            "initial_capital": number_literal(self.initial_capital),
            "qty_percent": number_literal(self.size * 100.0),
            "commission_percent": number_literal(self.commission * 100.0),
            "process_orders_on_close": "true" if self.fill_on_close else "false",
            "allowed_direction": _DIRECTIONS[self.direction],
        }


def render(template: str, values: Mapping[str, str], settings: PineSettings) -> str:
    """Fill a template; `values` are Pine literals keyed by parameter name."""
    clash = set(values) & set(SETTINGS_FIELDS)
    if clash:
        raise ValueError(f"parameter names clash with Pine settings fields: {sorted(clash)}")
    return template.format(**settings.fields(), **values)


def number_literal(value: float) -> str:
    """Shortest round-tripping decimal without exponent; Pine has no `1e-05` syntax."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return str(np.format_float_positional(float(value), trim="0"))


def string_literal(value: str) -> str:
    return f'"{_escape(value)}"'


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("\r", " ")
