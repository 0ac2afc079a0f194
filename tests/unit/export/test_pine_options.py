"""The Pine exporter reads one ExecutionOptions value: settings, exits, and its defaults."""

from __future__ import annotations

from stratopt.engine import ExecutionOptions
from stratopt.export.pine import pine_script
from stratopt.strategies import registry


def test_options_become_strategy_settings_and_exits() -> None:
    sma = registry.get("sma_crossover")
    options = ExecutionOptions(
        initial_cash=2_500.0, position_size=0.5, commission=0.001, direction="short", stop_loss=0.05
    )
    script = pine_script(sma, sma.defaults(), options, "t")
    assert "initial_capital=2500.0" in script and "default_qty_value=50.0" in script
    assert "commission_value=0.1" in script
    assert "strategy.direction.short" in script
    assert 'strategy.exit("Long exit", "Long", stop=entry * (1 - 0.05))' in script


def test_defaults_come_from_the_options_type() -> None:
    sma = registry.get("sma_crossover")
    script = pine_script(sma, sma.defaults(), ExecutionOptions(), "t")
    assert "initial_capital=10000.0" in script and "default_qty_value=100.0" in script
    assert "strategy.direction.long" in script and "strategy.exit" not in script


def test_without_execution_only_the_capital_is_kept() -> None:
    sma = registry.get("sma_crossover")
    options = ExecutionOptions(initial_cash=5_000.0, commission=0.002, stop_loss=0.1)
    script = pine_script(sma, sma.defaults(), options, "t", include_execution=False)
    assert "initial_capital=5000.0" in script and "commission_value=0.0" in script
    assert "strategy.direction.all" in script and "strategy.exit" not in script
