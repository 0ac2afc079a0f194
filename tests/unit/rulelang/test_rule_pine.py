"""Rule strategies exported to Pine trade like their backtests (the built-ins' cross-check).

The compiled Pine runs in PyneCore through the helpers of the export cross-check, on the
same two datasets and options; beyond the corpus, a definition using the language's own
features (named series, lookback, bars_since, nz, a ternary, `position`, a user indicator
with several outputs) proves the generator, not just the built-ins' Pine.
"""

from __future__ import annotations

import pytest

from stratopt.engine import ExecutionOptions, backtest
from stratopt.engine.simulator import trades_from_buffer
from stratopt.export.pine import pine_script
from stratopt.rules import compile_strategy, corpus
from stratopt.strategies.base import StrategyType
from tests.unit.export.test_pine_pynecore import (
    BASE,
    DATASETS,
    EXITS,
    Scripts,
    compare,
    dataset,
    inexpressible,
    run_pyne,
    scripts,
)
from tests.unit.export.test_pine_pynecore import pytestmark as needs_pynecore

pytestmark = needs_pynecore
__all__ = ["scripts"]  # the fixture, re-used

FEATURES = """
param length: int = 20 in [5, 60] "Channel length."
param band: float = 0.5 in [0.1, 3.0] step 0.1 "Band width in ATRs."
param hold: int = 12 in [2, 40] "Bars a trade may last."

ch = channel(high, low, length)
width = (ch.top - ch.bottom) / nz(atr(14), 1)
above = close > ch.top[1] - band * atr(14)[1]
fresh = bars_since(crossover(close, ema(close, length))) <= 3
trend = close > close[5] ? 1 : -1

long_entry: position <= 0 and above and fresh and trend > 0 and width > 0
long_exit: bars_since(crossover(close, ema(close, length))) >= hold or close < ch.bottom[1]
short_entry: position >= 0 and crossunder(close, ch.mid) and not (abs(close - open) > atr(14) * 3)
short_exit: crossover(close, ch.mid) or close > high[1]
"""
INDICATORS = {
    "channel": """
input hi: series
input lo: series
input n: int
output top = highest(hi, n)
output bottom = lowest(lo, n)
output mid = (highest(hi, n) + lowest(lo, n)) / 2
"""
}


def check_rules(scripts: Scripts, stype: StrategyType, data: str, o: ExecutionOptions) -> int:
    bars = dataset(data)
    pine = pine_script(stype, stype.defaults(), o, stype.display_name)
    trades = trades_from_buffer(backtest(bars, stype, None, o).trade_rows)
    assert not inexpressible(bars, trades, o), "pick data the comparison can hold on"
    problems = compare(bars, run_pyne(scripts.path(pine), bars), trades, o)
    assert not problems, f"{stype.name} {data} {o.given()}: " + "; ".join(problems)
    return len(trades)


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize(
    "name", ["adx_trend", "atr_volatility_breakout", "rsi_reversion", "stochastic_reversion",
             "supertrend", "bollinger_reversion"],
)  # fmt: skip
def test_corpus_scripts_make_the_backtests_trades(scripts: Scripts, name: str, data: str) -> None:
    stype = compile_strategy(corpus.text(name), name=name)
    options = ExecutionOptions(**BASE, **EXITS["all"], direction="both")  # type: ignore[arg-type]
    assert check_rules(scripts, stype, data, options) >= 2


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("exits", ["none", "all"])
def test_language_features_make_the_backtests_trades(
    scripts: Scripts, exits: str, data: str
) -> None:
    stype = compile_strategy(FEATURES, name="features", indicators=INDICATORS)
    options = ExecutionOptions(**BASE, **EXITS[exits], direction="both")  # type: ignore[arg-type]
    assert check_rules(scripts, stype, data, options) >= 5


def test_fills_at_the_close(scripts: Scripts) -> None:
    stype = compile_strategy(corpus.text("cci_reversion"), name="cci_reversion")
    options = ExecutionOptions(
        **BASE, **EXITS["all"], direction="both", fill_on_close=True, position_size=0.7
    )
    check_rules(scripts, stype, "gapped", options)
