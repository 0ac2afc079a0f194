"""The built-in indicators a definition may call, with their numba and Pine spellings.

Each entry maps a language function onto one `engine.indicators` kernel and onto the
Pine v6 that the built-in strategies' templates already use for the same numbers, so a
rule strategy inherits the engine/Pine agreement the library's cross-check established.
The numba spellings name only kernels imported by the generated module (codegen_numba).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

ArgKind = Literal["series", "length", "number"]
PineLines = Callable[[Sequence[str], Sequence[str]], list[str]]
"""(argument expressions, output variable names) -> Pine statements declaring the outputs."""


@dataclass(frozen=True)
class Builtin:
    name: str
    args: tuple[ArgKind, ...]
    outputs: tuple[str, ...]
    """Output names for `.name` access; () for a single-valued indicator."""
    numba: str
    """`str.format` call of the kernel; `{0}`... are the arguments."""
    pine: PineLines
    doc: str


def _single(call: str) -> PineLines:
    def lines(args: Sequence[str], outs: Sequence[str]) -> list[str]:
        return [f"float {outs[0]} = " + call.format(*args)]

    return lines


def _tuple(call: str) -> PineLines:
    def lines(args: Sequence[str], outs: Sequence[str]) -> list[str]:
        return [f"[{', '.join(outs)}] = " + call.format(*args)]

    return lines


def _stoch(args: Sequence[str], outs: Sequence[str]) -> list[str]:
    k, d = outs
    return [
        f"float {k} = ta.sma(ta.stoch(close, high, low, {args[0]}), {args[1]})",
        f"float {d} = ta.sma({k}, {args[2]})",
    ]


def _supertrend(args: Sequence[str], outs: Sequence[str]) -> list[str]:
    # Pine's direction is -1 in an uptrend; the engine's is +1. Both NaN until the ATR is.
    line, direction = outs
    return [
        f"[{line}Raw, {direction}Raw] = ta.supertrend({args[1]}, {args[0]})",
        f"bool {line}Na = na(ta.atr({args[0]}))",
        f"float {line} = {line}Na ? na : {line}Raw",
        f"float {direction} = {line}Na ? na : -{direction}Raw",
    ]


def _keltner(args: Sequence[str], outs: Sequence[str]) -> list[str]:
    # EMA +/- mult * ATR (Wilder), as engine.indicators.keltner (not ta.kc).
    mid, upper, lower = outs
    return [
        f"float {mid} = ta.ema(close, {args[0]})",
        f"float {mid}Width = {args[2]} * ta.atr({args[1]})",
        f"float {upper} = {mid} + {mid}Width",
        f"float {lower} = {mid} - {mid}Width",
    ]


def _donchian(args: Sequence[str], outs: Sequence[str]) -> list[str]:
    upper, lower, mid = outs
    return [
        f"float {upper} = ta.highest(high, {args[0]})",
        f"float {lower} = ta.lowest(low, {args[0]})",
        f"float {mid} = ({upper} + {lower}) / 2",
    ]


_S: tuple[ArgKind, ...] = ("series", "length")

BUILTINS: dict[str, Builtin] = {
    b.name: b
    for b in (
        Builtin("sma", _S, (), "sma({0}, {1})", _single("ta.sma({0}, {1})"), "simple MA"),
        Builtin("ema", _S, (), "ema({0}, {1})", _single("ta.ema({0}, {1})"), "exponential MA"),
        Builtin("rma", _S, (), "rma({0}, {1})", _single("ta.rma({0}, {1})"), "Wilder's MA"),
        Builtin("wma", _S, (), "wma({0}, {1})", _single("ta.wma({0}, {1})"), "weighted MA"),
        Builtin(
            "stdev", _S, (), "stdev({0}, {1})", _single("ta.stdev({0}, {1})"), "population stdev"
        ),
        Builtin(
            "highest", _S, (), "highest({0}, {1})", _single("ta.highest({0}, {1})"), "window max"
        ),
        Builtin("lowest", _S, (), "lowest({0}, {1})", _single("ta.lowest({0}, {1})"), "window min"),
        Builtin("rsi", _S, (), "rsi({0}, {1})", _single("ta.rsi({0}, {1})"), "RSI (Wilder)"),
        Builtin("roc", _S, (), "roc({0}, {1})", _single("ta.roc({0}, {1})"), "rate of change %"),
        Builtin("mom", _S, (), "momentum({0}, {1})", _single("ta.mom({0}, {1})"), "momentum"),
        Builtin("cci", _S, (), "cci({0}, {1})", _single("ta.cci({0}, {1})"), "commodity channel"),
        Builtin(
            "dev", _S, (), "mean_deviation({0}, {1})", _single("ta.dev({0}, {1})"), "mean abs dev"
        ),
        Builtin(
            "atr", ("length",), (), "atr(high, low, close, {0})", _single("ta.atr({0})"), "ATR"
        ),
        Builtin(
            "tr", (), (), "true_range(high, low, close, True)", _single("ta.tr(true)"), "true range"
        ),
        Builtin(
            "macd",
            ("series", "length", "length", "length"),
            ("line", "signal", "hist"),
            "macd({0}, {1}, {2}, {3})",
            _tuple("ta.macd({0}, {1}, {2}, {3})"),
            "MACD line, signal line, histogram",
        ),
        Builtin(
            "bb",
            ("series", "length", "number"),
            ("mid", "upper", "lower"),
            "bollinger({0}, {1}, {2})",
            _tuple("ta.bb({0}, {1}, {2})"),
            "Bollinger bands",
        ),
        Builtin(
            "stoch",
            ("length", "length", "length"),
            ("k", "d"),
            "stochastic(high, low, close, {0}, {1}, {2})",
            _stoch,
            "stochastic %K (smoothed) and %D",
        ),
        Builtin(
            "dmi",
            ("length", "length"),
            ("plus", "minus", "adx"),
            "adx(high, low, close, {0}, {1})",
            _tuple("ta.dmi({0}, {1})"),
            "+DI, -DI and ADX",
        ),
        Builtin(
            "supertrend",
            ("length", "number"),
            ("line", "direction"),
            "supertrend(high, low, close, {0}, {1})",
            _supertrend,
            "SuperTrend line and direction (+1 up, -1 down)",
        ),
        Builtin(
            "keltner",
            ("length", "length", "number"),
            ("mid", "upper", "lower"),
            "keltner(high, low, close, {0}, {1}, {2})",
            _keltner,
            "Keltner channel (EMA +/- mult x ATR)",
        ),
        Builtin(
            "donchian",
            ("length",),
            ("upper", "lower", "mid"),
            "donchian(high, low, {0})",
            _donchian,
            "Donchian channel",
        ),
    )
}

KERNELS: tuple[str, ...] = (
    "sma", "ema", "rma", "wma", "stdev", "highest", "lowest", "rsi", "roc", "momentum", "cci",
    "mean_deviation", "atr", "true_range", "macd", "bollinger", "stochastic", "adx",
    "supertrend", "keltner", "donchian",
)  # fmt: skip
"""The `engine.indicators` names the generated module imports."""

SPECIAL: dict[str, str] = {
    "crossover": "crossover(a, b): a crosses above b on this bar",
    "crossunder": "crossunder(a, b): a crosses below b on this bar",
    "bars_since": "bars_since(cond): bars since cond was last true, na before",
    "na": "na(x): x is not available (warm-up)",
    "nz": "nz(x, y): x, or y where x is na",
    "abs": "abs(x): absolute value",
}
