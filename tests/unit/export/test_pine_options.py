"""The Pine exporter reads one ExecutionOptions value: settings, orders, exits, provenance.

These check the text; test_pine_pynecore.py runs the scripts and compares their trades.
The first tests pin the findings of issue 11 against the earlier exporter.
"""

from __future__ import annotations

import re

from stratopt import __version__
from stratopt.engine import ExecutionOptions
from stratopt.export.pine import Provenance, pine_script
from stratopt.strategies import registry

SMA = registry.get("sma_crossover")


def script_of(options: ExecutionOptions, **kwargs: object) -> str:
    return pine_script(SMA, SMA.defaults(), options, "t", **kwargs)  # type: ignore[arg-type]


def test_exits_use_built_ins_only() -> None:
    # strategy.opened_trades does not exist; the entry price is the position's average.
    script = script_of(ExecutionOptions(stop_loss=0.05, take_profit=0.1, trailing_stop=0.02))
    assert "opened_trades" not in script
    assert "strategy.position_avg_price * (1 - 0.05)" in script


def test_entries_cannot_be_refused_for_margin() -> None:
    # A 100 % entry sized on the signal close was refused when the next open gapped up.
    script = script_of(ExecutionOptions())
    assert "margin_long=0, margin_short=0" in script
    assert "limit=simWanted > 0 ? close * 100 : close / 100" in script


def test_a_protective_exit_blocks_the_side_until_the_signal_changes() -> None:
    script = script_of(ExecutionOptions(stop_loss=0.05))
    assert "simBlocked := simHeld" in script
    assert "int simWanted = simBlocked != 0 or" in script


def test_direction_is_kept_without_execution() -> None:
    for direction, literal in (("long", "1"), ("short", "-1"), ("both", "0")):
        options = ExecutionOptions(direction=direction, commission=0.002, stop_loss=0.1)  # type: ignore[arg-type]
        script = script_of(options, include_execution=False)
        assert f"({literal} != 0 and simSide != {literal})" in script
        assert "commission_value=0.0" in script and "strategy.exit" not in script
        assert "initial_capital=10000.0" in script


def test_orders_are_explicit() -> None:
    script = script_of(ExecutionOptions(direction="short"))
    assert "allow_entry_in" not in script and "close_all" not in script
    assert 'strategy.close(simHeld > 0 ? "Long" : "Short", comment="signal")' in script


def test_options_become_strategy_settings_and_exits() -> None:
    options = ExecutionOptions(
        initial_cash=2_500.0, position_size=0.5, commission=0.001, direction="short", stop_loss=0.05
    )
    script = script_of(options)
    assert "initial_capital=2500.0" in script and "default_qty_value=50.0" in script
    assert "commission_value=0.1" in script
    assert "float simQty = 0.5 * strategy.equity / (open * (1 + 0.001))" in script
    assert (
        'strategy.exit("Long exit", "Long", stop=strategy.position_avg_price * (1 - 0.05))'
        in script
    )
    assert "calc_on_order_fills=true" in script and "process_orders_on_close=false" in script


def test_fill_on_close_sizes_at_the_close() -> None:
    script = script_of(ExecutionOptions(fill_on_close=True, trailing_stop=0.03))
    assert "process_orders_on_close=true" in script and "calc_on_order_fills=false" in script
    assert "float simQty = 1.0 * simCash / (close * (1 + 0.0))" in script
    assert "stop=simBest * (1 - 0.03)" in script


def test_defaults_come_from_the_options_type() -> None:
    script = script_of(ExecutionOptions())
    assert "initial_capital=10000.0" in script and "default_qty_value=100.0" in script
    assert "(1 != 0 and simSide != 1)" in script and "strategy.exit" not in script


def test_provenance_header() -> None:
    prov = Provenance(
        source="jobs/42",
        strategy="my sma",
        dataset="SAMPLE-SPY",
        period="2014-01-02 to 2023-12-29",
        metrics={"sharpe": 1.25, "total_return": 0.5, "custom": 3.0},
    )
    options = ExecutionOptions(commission=0.001, slippage=0.0005, stop_loss=0.05)
    script = script_of(options, provenance=prov)
    head = script.split("//@version=6")[0]
    assert head.startswith(f"// Exported by stratopt {__version__}: my sma\n")
    assert "// Source: jobs/42" in head and "Parameters: fast=10, slow=50" in head
    assert "Dataset: SAMPLE-SPY; period: 2014-01-02 to 2023-12-29" in head
    assert "Metrics: total_return=0.5, sharpe=1.25, custom=3" in head
    assert "stop_loss=0.05" in head and "slippage=0.0005 (not exported" in head
    assert all(line.startswith("//") for line in head.splitlines())
    assert re.search(r"^//@version=6\nstrategy\(", script, re.MULTILINE)
