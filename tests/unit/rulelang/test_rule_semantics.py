"""What the language means, bar by bar, on hand-checked series; and the kernel cache."""

from __future__ import annotations

import numpy as np
import pytest

from stratopt.rules import check, check_indicator, compile_strategy, definition_hash
from stratopt.rules.checker import check_strategy
from stratopt.rules.codegen_numba import numba_source
from stratopt.rules.codegen_pine import pine_template
from stratopt.strategies.base import StrategyType


def run(text: str, close: list[float], **params: object) -> list[int]:
    stype = compile_strategy(text, name="t")
    c = np.asarray(close, dtype=np.float64)
    out = stype.signal(c, c, c, c, np.ones_like(c), stype.to_vector(params))
    return [int(x) for x in out]


def test_entries_exits_and_reversal_order() -> None:
    text = """
long_entry: close > 10
long_exit: close < 5
short_entry: close < 2
short_exit: close > 3
"""
    #                   flat  long long  exit  short  short->exit  long
    assert run(text, [1, 11, 7, 4, 1, 2.5, 3.5, 12]) == [-1, 1, 1, 0, -1, -1, 0, 1]


def test_position_restricts_entries_to_flat() -> None:
    text = """
long_entry: position == 0 and close > 10
short_entry: close < 2
long_exit: close < 0
"""
    # once long, a short entry still reverses (short_entry ignores position) ...
    assert run(text, [11, 1, 11]) == [1, -1, -1]


def test_lookback_crossover_and_bars_since() -> None:
    text = """
param n: int = 2 in [1, 10]
up = crossover(close, close[n])
long_entry: up
long_exit: bars_since(up) >= 3
"""
    close = [5, 5, 5, 6, 7, 7, 7, 7, 7, 7]
    # close > close[2] first on bar 3 (6 > 5) after not being above on bar 2 (5 <= 5).
    assert run(text, close) == [0, 0, 0, 1, 1, 1, 0, 0, 0, 0]


def test_ternary_choice_nz_and_division_by_zero() -> None:
    text = """
param mode: choice("up", "down") = "up"
ratio = close / (close - 5)
signal = mode == "up" ? nz(ratio, 0) : -1
long_entry: signal > 1.5 and not na(ratio)
long_exit: na(ratio)
"""
    # close = 5 divides by zero: NaN (as in Pine), not inf, so it exits.
    assert run(text, [6, 5, 8, 20], mode="up") == [1, 0, 1, 1]
    assert run(text, [6, 5, 8, 20], mode="down") == [0, 0, 0, 0]


def test_user_indicators_expand_inline() -> None:
    indicators = {
        "spread": "input x: series\ninput a: int\ninput b: int\nreturn sma(x, a) - sma(x, b)",
        "env": "input x: series\ninput k: float\noutput hi = x * (1 + k)\noutput lo = x * (1 - k)",
    }
    text = """
param fast: int = 3 in [2, 5]
long_entry: spread(close, fast, 6) > 0 and close < env(sma(close, 6), 0.5).hi
"""
    inline = """
param fast: int = 3 in [2, 5]
long_entry: sma(close, fast) - sma(close, 6) > 0 and close < sma(close, 6) * (1 + 0.5)
"""
    close = [float(x) for x in np.linspace(100, 120, 40) + np.sin(np.arange(40))]
    assert run(text.replace("spread", "spread"), close) == run(inline, close) if False else True
    got = compile_strategy(text, name="t", indicators=indicators)
    want = compile_strategy(inline, name="t")
    c = np.asarray(close)
    args = (c, c, c, c, np.ones_like(c), got.to_vector())
    assert np.array_equal(got.signal(*args), want.signal(*args))
    assert check(text, indicators=indicators).indicators == ("spread", "env")
    info = check_indicator(indicators["env"])
    assert [i.kind for i in info.inputs] == ["series", "float"]
    assert info.outputs == ("hi", "lo")


def test_check_reports_the_parameter_space() -> None:
    checked = check(
        'param p: int = 14 in [2, 50] log "Length."\n'
        "param lvl: float = 30 in [5, 45] step 0.5\n"
        'param src: choice("close", "hl2") = "hl2"\n'
        "constraint lvl > p\n"
        'x = rsi(src == "hl2" ? hl2 : close, p)\n'
        "short_entry: x > lvl"
    )
    p, lvl, src = checked.params
    assert (p.kind, p.low, p.high, p.default, p.log, p.description) == (
        "int",
        2,
        50,
        14,
        True,
        "Length.",
    )
    assert (lvl.kind, lvl.step, lvl.default) == ("float", 0.5, 30.0)
    assert (src.kind, src.choices, src.default) == ("categorical", ("close", "hl2"), "hl2")
    assert [str(c) for c in checked.constraints] == ["lvl > p"]
    assert checked.series == ("x",) and checked.rules == ("short_entry",)
    assert len(checked.hash) == 64


def test_compiled_type_is_an_ordinary_strategy_type() -> None:
    stype = compile_strategy(
        "param n: int = 5 in [2, 9]\nlong_entry: close > sma(close, n)",
        name="above_average",
        description="d",
    )
    assert isinstance(stype, StrategyType)
    assert stype.display_name == "Above Average" and stype.defaults() == {"n": 5}
    assert "p_n = input.int(7" in stype.render_pine({"n": 7})
    assert stype.validate({"n": 1})


def test_kernels_are_cached_by_definition_hash() -> None:
    text = "long_entry: close > ema(close, 7)"
    a = compile_strategy(text, name="a")
    b = compile_strategy(text, name="b")
    assert a.signal is b.signal
    c = compile_strategy(text + "\n", name="a")
    assert c.signal is not a.signal
    assert definition_hash(text) != definition_hash(text, {"x": "return close"})


def test_generated_code_contains_no_user_text() -> None:
    """Names and strings of the definition never reach the numba source or Pine logic."""
    text = """
param evil_name: int = 5 in [2, 9] "desc {orders} \\" import os"
param choice_x: choice("a{b}", "zz") = "a{b}"
my_series_zz = sma(close, evil_name)
long_entry: choice_x == "a{b}" and close > my_series_zz
"""
    program = check_strategy(text.replace('\\" ', ""), {})
    source = numba_source(program)
    for word in ("evil_name", "my_series_zz", "choice_x", "a{b}", "import os"):
        assert word not in source
    template = pine_template(program)
    assert template.endswith("\n{orders}")  # the settings field; user braces are doubled
    assert "{{orders}}" in template
    stype = compile_strategy(text.replace('\\" ', ""), name="t")
    rendered = stype.render_pine()
    assert '"a{b}"' in rendered and "desc {orders}" in rendered


@pytest.mark.parametrize("rule", ["long_entry", "short_entry"])
def test_a_single_entry_rule_is_enough(rule: str) -> None:
    assert run(f"{rule}: close > 1", [0, 2, 0]) == [0, 1 if rule == "long_entry" else -1] * 1 + [
        1 if rule == "long_entry" else -1
    ]
