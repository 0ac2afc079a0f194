"""Pine Script templates render into complete v6 strategies whose inputs match the spec."""

from __future__ import annotations

import re

import pytest

from stratopt.strategies import ParamSpec, PineSettings, registry
from stratopt.strategies.pine import ORDER_NAMES, SETTINGS_FIELDS, number_literal

INPUT_CALL = {"int": "input.int", "float": "input.float", "categorical": "input.string"}
# Identifiers Pine reserves or predefines; a parameter named like one would break the script.
PINE_RESERVED = {
    "and", "or", "not", "if", "else", "for", "while", "switch", "var", "varip", "import",
    "export", "method", "type", "true", "false", "na", "open", "high", "low", "close",
    "volume", "time", "hl2", "hlc3", "ohlc4", "src", "target", "ta", "math", "strategy",
    "input", "color", "line", "label", "box", "table", "array", "map", "matrix", "str",
}  # fmt: skip


def input_line(script: str, spec: ParamSpec) -> str:
    match = re.search(rf"^{spec.name} = {INPUT_CALL[spec.kind]}\((.*)\)$", script, re.MULTILINE)
    assert match, f"no {INPUT_CALL[spec.kind]} input for {spec.name}"
    return match.group(1)


def keyword(args: str, name: str) -> float | None:
    match = re.search(rf"\b{name}=([-0-9.]+)", args)
    return float(match.group(1)) if match else None


@pytest.mark.parametrize("name", registry.names())
def test_renders_a_complete_v6_strategy_with_defaults(name: str) -> None:
    strategy = registry.get(name)
    script = strategy.render_pine()
    assert script.startswith("//@version=6\nstrategy(")
    assert f'strategy("{strategy.display_name}"' in script
    assert "{" not in script and "}" not in script, "unfilled template field"
    assert re.search(r"^(var )?int target = ", script, re.MULTILINE), "target never declared"
    assert 'strategy.entry(simWanted > 0 ? "Long" : "Short"' in script
    assert 'strategy.close(simHeld > 0 ? "Long" : "Short"' in script
    # Exits are explicit orders: allow_entry_in is not portable to every runtime.
    assert "allow_entry_in" not in script and "strategy.opened_trades" not in script
    assert "\t" not in script, "Pine indents with spaces"
    for spec in strategy.params:
        args = input_line(script, spec)
        default = spec.default
        literal = f'"{default}"' if spec.kind == "categorical" else number_literal(default)  # type: ignore[arg-type]
        assert args.startswith(f"{literal}, "), f"{spec.name} default not filled: {args}"


@pytest.mark.parametrize("name", registry.names())
def test_input_bounds_and_options_match_the_parameter_space(name: str) -> None:
    script = registry.get(name).render_pine()
    for spec in registry.get(name).params:
        args = input_line(script, spec)
        if spec.kind == "categorical":
            options = re.search(r"options=\[(.*?)\]", args)
            assert options, f"{spec.name} lacks options"
            assert tuple(re.findall(r'"([^"]*)"', options.group(1))) == spec.choices
            continue
        assert keyword(args, "minval") == spec.low, f"{spec.name} minval"
        assert keyword(args, "maxval") == spec.high, f"{spec.name} maxval"
        if spec.kind == "int" and spec.step and spec.step > 1:
            assert keyword(args, "step") == spec.step


@pytest.mark.parametrize("name", registry.names())
def test_parameter_names_are_safe_pine_identifiers(name: str) -> None:
    for spec in registry.get(name).params:
        assert spec.name not in PINE_RESERVED
        assert spec.name not in SETTINGS_FIELDS
        assert spec.name not in ORDER_NAMES


@pytest.mark.parametrize("name", registry.names())
def test_template_logic_leaves_the_order_names_alone(name: str) -> None:
    body = registry.get(name).pine.split("{orders}")[0]
    for ident in ORDER_NAMES:
        assert not re.search(rf"\b{ident}\b", body), f"{name} uses {ident}"


@pytest.mark.parametrize("name", registry.names())
def test_logic_uses_every_input(name: str) -> None:
    script = registry.get(name).render_pine()
    for spec in registry.get(name).params:
        uses = re.findall(rf"\b{spec.name}\b", script)
        assert len(uses) >= 2, f"input {spec.name} is declared but never used"


def test_chosen_parameters_become_input_defaults() -> None:
    script = registry.get("rsi_reversion").render_pine(
        {"period": 7, "oversold": 25, "source": "hlc3"}
    )
    assert 'period = input.int(7, "RSI length"' in script
    assert 'oversold = input.float(25.0, "Oversold level"' in script
    assert 'source = input.string("hlc3", "Price source"' in script
    assert 'overbought = input.float(70.0, "Overbought level"' in script


def test_settings_map_onto_the_strategy_declaration() -> None:
    settings = PineSettings(
        title='My "best" run',
        initial_capital=25_000,
        commission=0.001,
        size=0.5,
        direction="long",
        fill_on_close=True,
    )
    script = registry.get("sma_crossover").render_pine(settings=settings)
    header = script.splitlines()[1]
    assert header.startswith('strategy("My \\"best\\" run",')
    assert "initial_capital=25000," in header
    assert "default_qty_value=50.0," in header
    assert "commission_value=0.1," in header
    assert "process_orders_on_close=true," in header
    assert "calc_on_order_fills=false" in header
    assert "margin_long=0, margin_short=0" in header
    assert "(1 != 0 and simSide != 1)" in script, "long only"


def test_default_settings() -> None:
    script = registry.get("supertrend").render_pine()
    assert "commission_value=0.0," in script
    assert "default_qty_value=100.0," in script
    assert "process_orders_on_close=false," in script
    assert "calc_on_order_fills=true" in script
    assert "(1 != 0 and simSide != 1)" in script, "long only, like a backtest's default"
    assert "strategy.exit" not in script


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match=r"parameters\.fast"):
        registry.get("sma_crossover").render_pine({"fast": 500})


def test_invalid_direction_is_refused() -> None:
    with pytest.raises(ValueError, match="direction"):
        registry.get("sma_crossover").render_pine(settings=PineSettings(direction="up"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "literal"), [(2.0, "2.0"), (0.1, "0.1"), (1e-05, "0.00001"), (20, "20")]
)
def test_number_literals_have_no_exponent(value: float, literal: str) -> None:
    assert number_literal(value) == literal
