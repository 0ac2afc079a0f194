"""Exported Pine trades like the backtest: every built-in type, run in an independent runtime.

Each export is transpiled by pine2pyne (Pine v6 -> Python) and run by PyneCore, a Pine
runtime that reproduces TradingView's broker emulator, on two synthetic datasets: one bar
every day with the open at the previous close, and weekdays only with overnight gaps (the
open jumps away from the previous close every bar, and the weekends leave time gaps). For
the whole matrix (type x exits x direction x dataset, plus fills at the close) the script
must make the backtest's trades: same entry and exit bars, side and quantity, and the
same net profit to 1e-6 relative.

How the two are compared (docs/pine.md): the backtest closes a trade still open after the
last bar at the last close (exit reason "end"); the script leaves it open, so that trade
is matched against PyneCore's open trade (entry bar, side and quantity) and left out of
both net profits. With fills at the close the script may also open a trade at the last
close, which the backtest never does; it is ignored.

The datasets and exit levels are chosen so that no exit falls in the two cases Pine cannot
express (docs/pine.md); `inexpressible()` checks that, so a change of data that brings one
in fails loudly instead of passing by luck. Transpiled scripts are cached per run; the
whole matrix takes some seconds.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import time as dtime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stratopt.data.bars import Bars
from stratopt.data.synthetic import EQUITY_REGIMES, generate_bars
from stratopt.engine import ExecutionOptions, backtest
from stratopt.engine.simulator import (
    EXIT_END,
    EXIT_SIGNAL,
    EXIT_STOP,
    EXIT_TARGET,
    EXIT_TRAIL,
    trades_from_buffer,
)
from stratopt.export.pine import pine_script
from stratopt.strategies import registry

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pynecore") is None or importlib.util.find_spec("pine2pyne") is None,
    reason="needs the dev extras pynesys-pynecore and opencode-pine2pyne",
)

N_BARS = 1_000
DATASETS = ("daily", "gapped")
EXITS: dict[str, dict[str, float]] = {
    "none": {},
    "sl": {"stop_loss": 0.04},
    "tp": {"take_profit": 0.08},
    "trail": {"trailing_stop": 0.06},
    "all": {"stop_loss": 0.04, "take_profit": 0.08, "trailing_stop": 0.06},
}
DIRECTIONS = ("long", "short", "both")
# Commission on every case, so sizing and profits carry it; slippage is not exported.
BASE = {"commission": 0.001, "initial_cash": 10_000.0}
REL = 1e-6


@cache
def dataset(name: str) -> Bars:
    if name == "daily":
        return generate_bars(N_BARS, timeframe="1d", seed=11, regimes=EQUITY_REGIMES)
    return generate_bars(
        N_BARS,
        timeframe="1d",
        seed=12,
        regimes=EQUITY_REGIMES,
        weekdays_only=True,
        gap_volatility=0.6,
    )


def test_datasets_have_the_gaps_they_claim() -> None:
    daily, gapped = dataset("daily"), dataset("gapped")
    assert np.allclose(daily.open[1:], daily.close[:-1], rtol=1e-12)
    jumps = np.abs(gapped.open[1:] / gapped.close[:-1] - 1.0)
    assert np.mean(jumps > 1e-4) > 0.9 and jumps.max() > 0.01
    assert (np.diff(gapped.ts) > np.diff(gapped.ts).min()).sum() > N_BARS // 7


# -- running a script in PyneCore ----------------------------------------------------------


def transpile(pine: str) -> str:
    """pine2pyne's Python for a Pine script, with its one known slip mended.

    pine2pyne 0.2.4 declares `varip` like `var` (PersistentSeries), so PyneCore would roll
    it back after every calc_on_order_fills run; PyneCore's varip is IBPersistent.
    """
    import pine2pyne

    py = str(pine2pyne.transpile(pine))
    names = re.findall(r"^varip\s+(?:int|float|bool)\s+(\w+)", pine, re.MULTILINE)
    for name in names:
        py, count = re.subn(rf"\b{name}: PersistentSeries\[", f"{name}: IBPersistent[", py)
        assert count == 1, f"varip {name} not found in the transpiled script"
    if names:
        py = py.replace(
            "from pynecore.types import ", "from pynecore.types import IBPersistent, ", 1
        )
    return py


def syminfo() -> Any:
    """A 24/7 symbol with a tick of 1e-10 (fills are not rounded to a coarser grid than the
    engine's doubles) and a lot of 1e-8 (TradingView's own quantity grid)."""
    from pynecore.core.syminfo import SymInfo, SymInfoInterval, SymInfoSession

    days = range(7)
    return SymInfo(
        prefix="STRATOPT",
        description="stratopt synthetic bars",
        ticker="SYNTH",
        currency="USD",
        period="1D",
        type="crypto",
        mintick=1e-10,
        pricescale=10_000_000_000,
        minmove=1,
        pointvalue=1,
        mincontract=1e-8,
        timezone="UTC",
        volumetype="base",
        opening_hours=[SymInfoInterval(day=d, start=dtime(0), end=dtime(23, 59, 59)) for d in days],
        session_starts=[SymInfoSession(day=d, time=dtime(0)) for d in days],
        session_ends=[SymInfoSession(day=d, time=dtime(23, 59, 59)) for d in days],
    )


@dataclass(frozen=True)
class PyneRun:
    closed: list[Any]
    open: list[Any]
    net_profit: float


def run_pyne(script: Path, bars: Bars) -> PyneRun:
    from pynecore.core import import_hook  # noqa: F401  (PyneCore's AST transformers)
    from pynecore.core.script_runner import ScriptRunner
    from pynecore.types.ohlcv import OHLCV

    rows = zip(bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume, strict=True)
    ohlcv = [OHLCV(int(t) // 1_000_000, o, h, lo, c, v) for t, o, h, lo, c, v in rows]
    runner = ScriptRunner(script, ohlcv, syminfo(), lossless_prices=True, lossless_volume=True)
    closed: list[Any] = []
    for _bar, _plots, new_trades in runner.run_iter():
        closed.extend(new_trades)
    position = runner.script.position
    return PyneRun(closed, list(position.open_trades), float(position.netprofit))


class Scripts:
    """Transpiled scripts, one module file per (script, dataset) run, written once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.cache: dict[str, str] = {}
        self.count = 0

    def path(self, pine: str) -> Path:
        if pine not in self.cache:
            self.cache[pine] = transpile(pine)
        self.count += 1
        path = self.root / f"export_{self.count}.py"  # fresh module: no state carried over
        path.write_text(self.cache[pine])
        return path


@pytest.fixture(scope="module")
def scripts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scripts]:
    root = tmp_path_factory.mktemp("pine")
    yield Scripts(root)
    for name in [m for m in sys.modules if m.startswith("export_")]:
        del sys.modules[name]


# -- the comparison ------------------------------------------------------------------------


def inexpressible(bars: Bars, trades: np.ndarray, o: ExecutionOptions) -> list[str]:
    """Backtest exits that TradingView's broker cannot reproduce (docs/pine.md).

    1. A trailing stop whose bar opened beyond the best price so far: the backtest moves
       the trail with that open before checking the bar; the order sent at the previous
       close cannot know that open.
    2. Stop and target both inside one bar: the backtest assumes the stop came first;
       TradingView walks open -> nearer extreme -> farther extreme, so it takes the target
       when that lies on the side nearer the open.
    """
    found = []
    for tr in trades:
        reason, t = int(tr["exit_reason"]), int(tr["exit_idx"])
        if reason not in (EXIT_STOP, EXIT_TRAIL):
            continue
        side, entry = int(tr["side"]), float(tr["entry_price"])
        first = int(tr["entry_idx"]) + (1 if o.fill_on_close else 0)
        op, hi, lo = bars.open[t], bars.high[t], bars.low[t]
        if reason == EXIT_TRAIL:
            if side > 0:
                best = max([entry, *bars.high[first:t]])
                moved = op > best
            else:
                best = min([entry, *bars.low[first:t]])
                moved = op < best
            if moved:
                found.append(f"bar {t}: the open moved the trail")
        if o.take_profit and tr["exit_price"] != op:
            target = entry * (1 + side * o.take_profit)
            high_first = hi - op < op - lo  # TradingView's path
            if (side > 0 and hi >= target and high_first) or (
                side < 0 and lo <= target and not high_first
            ):
                found.append(f"bar {t}: stop and target inside the bar, target nearer the open")
    return found


def compare(bars: Bars, pine_run: PyneRun, trades: np.ndarray, o: ExecutionOptions) -> list[str]:
    """Differences between the script's trades in PyneCore and the backtest's."""
    n = len(bars.close)
    last = trades[-1] if len(trades) and trades[-1]["exit_reason"] == EXIT_END else None
    engine_closed = trades[:-1] if last is not None else trades
    opened = [t for t in pine_run.open if not (o.fill_on_close and t.entry_bar_index == n - 1)]
    problems = []
    if len(pine_run.closed) != len(engine_closed):
        problems.append(f"{len(pine_run.closed)} closed trades, backtest {len(engine_closed)}")
    for i, (p, e) in enumerate(zip(pine_run.closed, engine_closed, strict=False)):
        got = (p.entry_bar_index, p.exit_bar_index, int(np.sign(p.size)))
        want = (int(e["entry_idx"]), int(e["exit_idx"]), int(e["side"]))
        if got != want:
            problems.append(f"trade {i}: (entry, exit, side) {got}, backtest {want}")
            break
        if not math.isclose(abs(p.size), e["size"], rel_tol=REL):
            problems.append(f"trade {i}: size {abs(p.size)}, backtest {e['size']}")
        if not math.isclose(
            p.profit, e["pnl"], rel_tol=REL, abs_tol=REL * 1e-2 * e["size"] * e["entry_price"]
        ):
            problems.append(f"trade {i}: profit {p.profit}, backtest {e['pnl']}")
    if (last is None) != (not opened):
        problems.append(f"open at the end: script {len(opened)}, backtest {int(last is not None)}")
    elif last is not None:
        p = opened[0]
        got = (p.entry_bar_index, int(np.sign(p.size)))
        if got != (int(last["entry_idx"]), int(last["side"])) or not math.isclose(
            abs(p.size), last["size"], rel_tol=REL
        ):
            problems.append(f"open trade {got} {abs(p.size)}, backtest {last}")
    # TradingView books the entry commission of a trade still open into net profit at once
    # (the matched one's entry was checked above; one opened at the last close is extra).
    net = float(engine_closed["pnl"].sum())
    net -= sum(abs(t.size) * t.entry_price * o.commission for t in pine_run.open)
    if not math.isclose(pine_run.net_profit, net, rel_tol=REL, abs_tol=1e-8 * 10_000):
        problems.append(f"net profit {pine_run.net_profit}, backtest {net}")
    return problems[:5]


def check(scripts: Scripts, name: str, data: str, options: ExecutionOptions) -> np.ndarray:
    stype = registry.get(name)
    bars = dataset(data)
    pine = pine_script(stype, stype.defaults(), options, stype.display_name)
    result = backtest(bars, name, stype.defaults(), options)
    trades = trades_from_buffer(result.trade_rows)
    assert not inexpressible(bars, trades, options), "pick data the comparison can hold on"
    problems = compare(bars, run_pyne(scripts.path(pine), bars), trades, options)
    assert not problems, f"{name} {data} {options.given()}: " + "; ".join(problems)
    return trades


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("exits", list(EXITS))
@pytest.mark.parametrize("name", registry.names())
def test_script_makes_the_backtests_trades(
    scripts: Scripts, name: str, exits: str, direction: str, data: str
) -> None:
    options = ExecutionOptions(**BASE, **EXITS[exits], direction=direction)  # type: ignore[arg-type]
    trades = check(scripts, name, data, options)
    assert len(trades) >= 2, "too few trades to prove anything"


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("name", registry.names())
def test_fills_at_the_close(scripts: Scripts, name: str, data: str) -> None:
    options = ExecutionOptions(
        **BASE, **EXITS["all"], direction="both", fill_on_close=True, position_size=0.7
    )
    check(scripts, name, data, options)


def test_without_execution_the_script_is_the_default_backtest(scripts: Scripts) -> None:
    stype = registry.get("macd_signal")
    stored = ExecutionOptions(direction="short", commission=0.002, stop_loss=0.03)
    pine = pine_script(stype, stype.defaults(), stored, "t", include_execution=False)
    plain = ExecutionOptions(initial_cash=stored.initial_cash, direction="short")
    bars = dataset("gapped")
    trades = trades_from_buffer(backtest(bars, "macd_signal", None, plain).trade_rows)
    assert len(trades) > 5 and (trades["side"] == -1).all()
    assert not compare(bars, run_pyne(scripts.path(pine), bars), trades, plain)


def test_the_matrix_exercises_every_rule() -> None:
    """What the matrix above proves is only as wide as what its backtests do."""
    seen = dict.fromkeys(
        ("stop", "target", "trail", "exit on the entry bar", "entry after a gap up",
         "reversal at one open", "flat after a stop while the signal holds", "end"), 0
    )  # fmt: skip
    for name in registry.names():
        stype = registry.get(name)
        targets = np.sign(stype.signal(*(
            np.ascontiguousarray(getattr(dataset("gapped"), f)) for f in
            ("open", "high", "low", "close", "volume")
        ), stype.to_vector()))  # fmt: skip
        for exits in EXITS:
            options = ExecutionOptions(**BASE, **EXITS[exits], direction="both")  # type: ignore[arg-type]
            bars = dataset("gapped")
            trades = trades_from_buffer(backtest(bars, name, None, options).trade_rows)
            for i, tr in enumerate(trades):
                reason, entry, exit_ = (
                    int(tr["exit_reason"]),
                    int(tr["entry_idx"]),
                    int(tr["exit_idx"]),
                )
                seen["stop"] += reason == EXIT_STOP
                seen["target"] += reason == EXIT_TARGET
                seen["trail"] += reason == EXIT_TRAIL
                seen["end"] += reason == EXIT_END
                seen["exit on the entry bar"] += entry == exit_ and reason != EXIT_SIGNAL
                seen["entry after a gap up"] += bars.open[entry] > bars.close[entry - 1] * 1.002
                if (
                    i
                    and int(trades[i - 1]["exit_idx"]) == entry
                    and trades[i - 1]["side"] != tr["side"]
                ):
                    seen["reversal at one open"] += 1
                if reason in (EXIT_STOP, EXIT_TARGET, EXIT_TRAIL) and exit_ + 1 < len(targets):
                    seen["flat after a stop while the signal holds"] += (
                        targets[exit_] == tr["side"]
                        and exit_ + 1 < len(bars.close)
                        and (i + 1 == len(trades) or int(trades[i + 1]["entry_idx"]) > exit_ + 1)
                    )
    assert all(seen.values()), seen


def test_divergences_are_only_the_documented_ones(scripts: Scripts) -> None:
    """On a violent market the two cases Pine cannot express do occur; until the first of
    them, the script and the backtest trade alike."""
    bars = generate_bars(600, timeframe="1d", seed=3, weekdays_only=True, gap_volatility=0.5)
    options = ExecutionOptions(
        **BASE, stop_loss=0.03, take_profit=0.04, trailing_stop=0.025, direction="both"
    )
    found = 0
    for name in ("sma_crossover", "supertrend", "donchian_breakout"):
        stype = registry.get(name)
        trades = trades_from_buffer(backtest(bars, name, None, options).trade_rows)
        flagged = [
            i for i, tr in enumerate(trades) if inexpressible(bars, trades[i : i + 1], options)
        ]
        if not flagged:
            continue
        found += 1
        first = flagged[0]
        pine = pine_script(stype, stype.defaults(), options, "t")
        pyne = run_pyne(scripts.path(pine), bars)
        for p, e in zip(pyne.closed[:first], trades[:first], strict=True):
            assert (p.entry_bar_index, p.exit_bar_index) == (e["entry_idx"], e["exit_idx"])
            assert math.isclose(abs(p.size), e["size"], rel_tol=REL)
    assert found == 3, "the violent market should show the documented divergences"
