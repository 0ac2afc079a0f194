"""The built-in library as a whole, and the registry's lookup and uniqueness rules."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from stratopt.strategies import CATEGORIES, RISK_LEVELS, StrategyType, registry
from stratopt.strategies.registry import StrategyRegistry, load_library

REQUIRED = {
    "sma_crossover",
    "ema_crossover",
    "macd_signal",
    "rsi_reversion",
    "bollinger_reversion",
    "bollinger_breakout",
    "donchian_breakout",
    "roc_momentum",
    "stochastic_reversion",
    "supertrend",
    "adx_trend",
    "keltner_breakout",
    "atr_volatility_breakout",
}


def test_library_has_the_required_strategies() -> None:
    names = registry.names()
    assert len(names) >= 13
    assert set(names) >= REQUIRED
    assert names == sorted(set(names))
    assert [s.name for s in registry.all()] == names


def test_every_category_is_represented() -> None:
    assert {s.category for s in registry.all()} == set(CATEGORIES)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_metadata_is_fit_for_a_ui(name: str) -> None:
    s = registry.get(name)
    assert s.name == name
    assert s.risk_level in RISK_LEVELS
    assert s.display_name and s.display_name[0].isupper()
    sentences = [x for x in re.split(r"(?<=\.)\s+", s.description.strip()) if x]
    assert 1 <= len(sentences) <= 2 and s.description.endswith(".")
    assert all(p.description for p in s.params)
    assert s.validate(s.defaults()) == []
    assert s.from_vector(s.to_vector()) == s.defaults()


def test_get_unknown_name_raises_key_error_naming_known_ones() -> None:
    with pytest.raises(KeyError, match="sma_crossover"):
        registry.get("no_such_strategy")


def test_duplicate_names_are_rejected() -> None:
    reg = StrategyRegistry(loader=load_library)
    original = reg.get("sma_crossover")
    with pytest.raises(ValueError, match="already registered"):
        reg.register(original)
    assert reg.get("sma_crossover") is original


def test_duplicate_within_a_loaded_library_is_rejected() -> None:
    one = registry.get("sma_crossover")
    reg = StrategyRegistry(loader=lambda: [one, one])
    with pytest.raises(ValueError, match="twice"):
        reg.names()


def test_plugins_can_register_alongside_builtins() -> None:
    base = registry.get("sma_crossover")
    plugin = StrategyType(
        name="my_plugin",
        display_name="My Plugin",
        category=base.category,
        risk_level=base.risk_level,
        description="A plugin.",
        params=base.params,
        constraints=base.constraints,
        signal=base.signal,
        pine=base.pine,
    )
    reg = StrategyRegistry()
    assert reg.register(plugin) is plugin
    assert reg.get("my_plugin") is plugin
    assert "sma_crossover" in reg.names()


def test_library_loader_requires_a_strategy_per_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "toy_strategy_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "_helpers.py").write_text("raise RuntimeError('private modules are skipped')\n")
    (package / "good.py").write_text(
        "from stratopt.strategies import registry\nSTRATEGY = registry.get('sma_crossover')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert [s.name for s in load_library("toy_strategy_pkg")] == ["sma_crossover"]
    (package / "not_a_strategy.py").write_text("STRATEGY = 42\n")
    with pytest.raises(TypeError, match="not_a_strategy"):
        load_library("toy_strategy_pkg")


def test_importing_the_package_loads_no_strategy_and_no_numba() -> None:
    code = (
        "import sys, stratopt.strategies as s\n"
        "assert not [m for m in sys.modules if m.startswith('stratopt.strategies.library.')]\n"
        "assert 'numba' not in sys.modules\n"
        "assert len(s.registry.names()) >= 13\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
