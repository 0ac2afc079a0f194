"""Benchmark of the backtest engine, with vectorbt and backtesting.py as optional peers.

Run: ``python bench/bench_backtest.py [--repeat 30] [--no-peers]``. See bench/README.md for
what each line measures and how memory is counted. Workloads:

(a) one sma_crossover(10, 50) backtest on 1,000,000 synthetic hourly bars, metrics and
    trades included, warm (best of N);
(b) the 90-combination grid fast 5..50 step 5 x slow 20..200 step 20 (fast < slow) on
    100,000 bars;
(c) the same workloads through vectorbt and backtesting.py when they are importable;
(d) time to a first backtest in a fresh interpreter with a warm numba cache;
(e) engine.backtest() on 1,000,000 bars (as a DataFrame and as Bars) against a hand-written
    single-loop numba SMA-cross backtest timed in the same run (target: <= 10 ms, <= 2x).
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numba import njit

import stratopt.engine as engine
from stratopt.data import Bars, generate_bars
from stratopt.engine.grid_sweep import sweep_grid
from stratopt.engine.metrics import compute_metrics, infer_periods_per_year
from stratopt.strategies import registry

FAST, SLOW = 10, 50
FAST_GRID = list(range(5, 55, 5))
SLOW_GRID = list(range(20, 220, 20))
COMBOS = [(f, s) for f in FAST_GRID for s in SLOW_GRID if f < s]
CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class Row:
    """One printed measurement."""

    label: str
    ms: float
    mem_mib: float | None = None
    note: str = ""


def timings_ms(action: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(best, median) wall time in ms after one warm-up call."""
    action()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[0] * 1e3, samples[len(samples) // 2] * 1e3


def best_ms(action: Callable[[], object], repeat: int) -> float:
    """Best wall time in ms after one warm-up call (the least disturbed run on a shared box)."""
    action()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return min(samples) * 1e3


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _release_free_heap() -> None:
    """Hand freed malloc memory back to the OS so the next run's peak shows up in RSS."""
    name = ctypes.util.find_library("c")
    if name:
        trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
        if trim is not None:
            trim(0)


def peak_memory_mib(action: Callable[[], object]) -> tuple[float, str]:
    """Peak memory one (warm) run adds, and the method used.

    Linux: give freed heap back to the OS (malloc_trim), reset the resident-set high-water
    mark (``clear_refs`` 5), run, read VmHWM minus the resident set before the run. That
    counts every allocator (numpy, numba's NRT, pandas, C extensions), which tracemalloc
    cannot see for numba kernels. Elsewhere tracemalloc's peak is used, which only covers
    Python-tracked allocations.
    """
    try:
        _release_free_heap()
        CLEAR_REFS.write_text("5")
        before = _status_kib("VmRSS")
        action()
        return (_status_kib("VmHWM") - before) / 1024, "rss"
    except OSError:
        tracemalloc.start()
        action()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak / 2**20, "tracemalloc"


def measure(label: str, action: Callable[[], object], repeat: int, note: str = "") -> Row:
    ms = best_ms(action, repeat)
    mem, method = peak_memory_mib(action)
    return Row(label, ms, mem, f"{note} [{method}]".strip())


# ---- stratopt ------------------------------------------------------------------------------


def ours_kernel(bars: Bars, fill_on_close: bool = False) -> dict[str, float]:
    """Signal + simulation + every metric + numpy trades: the engine without pandas."""
    strategy = registry.get("sma_crossover")
    params = strategy.to_vector({"fast": FAST, "slow": SLOW})
    cfg = engine.ExecutionOptions(fill_on_close=fill_on_close)
    targets = strategy.signal(bars.open, bars.high, bars.low, bars.close, bars.volume, params)
    run = engine.simulate(bars.open, bars.high, bars.low, bars.close, targets, cfg)
    return compute_metrics(
        run.equity,
        run.trades,
        bars.ts,
        None,
        close=bars.close,
        position=run.position,
        initial_cash=cfg.initial_cash,
    )


def ours_api(bars: Bars, fill_on_close: bool = False) -> engine.BacktestResult:
    """The public call: metrics eager, trades DataFrame and equity/position Series lazy."""
    params = {"fast": FAST, "slow": SLOW}
    options = engine.ExecutionOptions(fill_on_close=fill_on_close)
    return engine.backtest(bars, "sma_crossover", params, options)


def ours_api_with_frames(bars: Bars) -> engine.BacktestResult:
    """The public call with every pandas view of the result built (what it used to cost)."""
    result = ours_api(bars)
    _ = (result.trades, result.equity, result.position)
    return result


def ours_sweep_kernel(bars: Bars) -> np.ndarray:
    strategy = registry.get("sma_crossover")
    grid = np.array(COMBOS, dtype=np.float64)
    cfg = engine.ExecutionOptions()
    return sweep_grid(
        bars.open,
        bars.high,
        bars.low,
        bars.close,
        bars.volume,
        strategy.signal,
        grid,
        cfg.to_vector(),
        infer_periods_per_year(bars.ts),
    )


def ours_sweep_api(bars: Bars) -> pd.DataFrame:
    return engine.sweep(bars, "sma_crossover", {"fast": FAST_GRID, "slow": SLOW_GRID})


# ---- hand-written loop --------------------------------------------------------------------


@njit(cache=True, nogil=True)
def hand_sma_cross(
    open_: np.ndarray,
    close: np.ndarray,
    fast: int,
    slow: int,
    cash: float,
    equity: np.ndarray,
    trades: np.ndarray,
) -> int:
    """SMA cross in one loop: long-only, fills at the next open, equity marked at each close.

    The same rule and accounting as ``engine.backtest`` with default options (all-in, no
    costs, a position still open at the end closes at the last close), with nothing else:
    no NaN handling, no options, no metrics. Writes (entry_idx, exit_idx, pnl, ret) rows into
    ``trades`` and returns how many.
    """
    n = close.shape[0]
    f_sum = 0.0
    s_sum = 0.0
    f_prev = np.nan
    s_prev = np.nan
    target = 0
    units = 0.0
    entry_price = 0.0
    entry_idx = 0
    k = 0
    for t in range(n):
        if target == 1:
            if units == 0.0 and cash > 0.0:
                entry_price = open_[t]
                units = cash / entry_price
                cash -= units * entry_price
                entry_idx = t
        elif units != 0.0:
            pnl = units * (open_[t] - entry_price)
            trades[k, 0] = entry_idx
            trades[k, 1] = t
            trades[k, 2] = pnl
            trades[k, 3] = pnl / (units * entry_price)
            k += 1
            cash += units * open_[t]
            units = 0.0
        price = close[t]
        f_sum += price
        s_sum += price
        if t >= fast:
            f_sum -= close[t - fast]
        if t >= slow:
            s_sum -= close[t - slow]
        f_now = f_sum / fast if t >= fast - 1 else np.nan
        s_now = s_sum / slow if t >= slow - 1 else np.nan
        if f_now > s_now and f_prev <= s_prev:
            target = 1
        elif f_now < s_now and f_prev >= s_prev:
            target = -1
        f_prev = f_now
        s_prev = s_now
        equity[t] = cash + units * price
    if units != 0.0:
        pnl = units * (close[n - 1] - entry_price)
        trades[k, 0] = entry_idx
        trades[k, 1] = n - 1
        trades[k, 2] = pnl
        trades[k, 3] = pnl / (units * entry_price)
        k += 1
        equity[n - 1] = cash + units * close[n - 1]
    return k


def hand_loop(bars: Bars) -> tuple[np.ndarray, np.ndarray]:
    """Run the hand loop into fresh buffers, as a user's script would: (equity, trade rows)."""
    equity = np.empty(len(bars), dtype=np.float64)
    trades = np.empty((len(bars) // 2 + 1, 4), dtype=np.float64)
    k = hand_sma_cross(bars.open, bars.close, FAST, SLOW, 10_000.0, equity, trades)
    return equity, trades[:k]


def hand_check(bars: Bars) -> str:
    """Does engine.backtest trade exactly like the hand loop (entries, exits, P&L, equity)?"""
    equity, rows = hand_loop(bars)
    result = ours_api(bars)
    trades = result.trades
    same_count = len(trades) == len(rows)
    if not same_count:
        return f"check: trade count differs (hand {len(rows)} vs engine {len(trades)})"
    same_bars = bool(
        np.array_equal(trades["entry_idx"].to_numpy(), rows[:, 0])
        and np.array_equal(trades["exit_idx"].to_numpy(), rows[:, 1])
    )
    pnl = float(np.max(np.abs(trades["pnl"].to_numpy() - rows[:, 2]), initial=0.0))
    curve = float(np.max(np.abs(result.equity.to_numpy() - equity)))
    verdict = "same entry/exit bars" if same_bars else "DIFFERENT entry/exit bars"
    return (
        f"check: {len(rows)} trades in both, {verdict}, max |pnl diff| {pnl:.1e}, "
        f"max |equity diff| {curve:.1e}"
    )


def run_hand_comparison(bars: Bars, repeat: int) -> None:
    frame = bars.to_frame()
    params = {"fast": FAST, "slow": SLOW}
    print(f"\n(e) engine.backtest() against a hand-written numba loop, 1M bars, {repeat} runs")
    print("  " + hand_check(bars))
    hand = timings_ms(lambda: hand_loop(bars), repeat)
    on_frame = timings_ms(lambda: engine.backtest(frame, "sma_crossover", params), repeat)
    on_bars = timings_ms(lambda: engine.backtest(bars, "sma_crossover", params), repeat)
    for label, (best, median) in (
        ("hand-written single-loop numba SMA cross", hand),
        ("engine.backtest(DataFrame)", on_frame),
        ("engine.backtest(Bars)", on_bars),
    ):
        print(f"  {label:<52} {best:8.2f} ms best  {median:8.2f} ms median")
    print(
        f"  ratio engine.backtest / hand loop: DataFrame {on_frame[0] / hand[0]:.2f}x, "
        f"Bars {on_bars[0] / hand[0]:.2f}x (best of each; medians "
        f"{on_frame[1] / hand[1]:.2f}x, {on_bars[1] / hand[1]:.2f}x); target <= 10 ms and <= 2x"
    )


# ---- vectorbt ------------------------------------------------------------------------------


def vbt_close(bars: Bars) -> pd.Series:
    """Close prices on a tz-naive index: vectorbt is ~100x slower on a tz-aware one."""
    return bars.to_frame()["close"].tz_localize(None)


def vbt_backtest(vbt: Any, close: pd.Series) -> np.ndarray:
    """Same rule: long from a fast-over-slow cross to the next cross under, fills on close.

    Returns the per-trade returns, which the script compares with ours.
    """
    fast = vbt.MA.run(close, FAST)
    slow = vbt.MA.run(close, SLOW)
    pf = vbt.Portfolio.from_signals(
        close, fast.ma_crossed_above(slow), fast.ma_crossed_below(slow), freq="1h"
    )
    pf.sharpe_ratio()
    pf.max_drawdown()
    pf.total_return()
    returns: np.ndarray = pf.trades.records_readable["Return"].to_numpy()
    return returns


def vbt_sweep(vbt: Any, close: pd.Series) -> pd.Series:
    fast = vbt.MA.run(close, [f for f, _ in COMBOS], short_name="fast")
    slow = vbt.MA.run(close, [s for _, s in COMBOS], short_name="slow")
    pf = vbt.Portfolio.from_signals(
        close, fast.ma_crossed_above(slow), fast.ma_crossed_below(slow), freq="1h"
    )
    pf.max_drawdown()
    pf.total_return()
    sharpe: pd.Series = pf.sharpe_ratio()
    return sharpe


# ---- backtesting.py ------------------------------------------------------------------------
# The strategy class lives at module level so optimize()'s spawned workers can unpickle it.

os.environ.setdefault("TQDM_DISABLE", "1")  # read when tqdm is imported: no progress bars
try:
    from backtesting import Strategy as _BtStrategy
    from backtesting.lib import crossover as _bt_crossover
    from backtesting.test import SMA as _BT_SMA
except Exception:  # any import failure means the peer is absent
    _BtStrategy = None

if _BtStrategy is not None:

    class BtSmaCross(_BtStrategy):  # type: ignore[misc,valid-type]
        """The canonical backtesting.py SMA cross, long-only, all-in."""

        fast = FAST
        slow = SLOW

        def init(self) -> None:
            self.fast_ma = self.I(_BT_SMA, self.data.Close, self.fast)
            self.slow_ma = self.I(_BT_SMA, self.data.Close, self.slow)

        def next(self) -> None:
            if _bt_crossover(self.fast_ma, self.slow_ma):
                self.buy()
            elif _bt_crossover(self.slow_ma, self.fast_ma):
                self.position.close()


def bt_frame(bars: Bars) -> pd.DataFrame:
    frame = bars.to_frame().tz_localize(None)
    return frame.rename(columns=str.capitalize)


def bt_backtest(frame: pd.DataFrame) -> np.ndarray:
    """One Backtest.run; returns the per-trade returns, which the script compares with ours."""
    from backtesting import Backtest

    stats = Backtest(frame, BtSmaCross, cash=1e12, finalize_trades=True).run()
    returns: np.ndarray = stats["_trades"]["ReturnPct"].to_numpy()
    return returns


def same_trades(label: str, theirs: np.ndarray, ours: np.ndarray) -> str:
    """One line saying whether two engines produced the same trades.

    The final trade is reported apart: engines close a position left open at the end at
    different prices (backtesting.py's finalize_trades at the last open, stratopt at the
    last close), which is a convention, not a disagreement about the strategy.
    """
    if theirs.shape != ours.shape:
        return f"{label}: trade count differs ({len(theirs)} vs ours {len(ours)})"
    if len(ours) == 0:
        return f"{label}: no trades in either"
    body = float(np.max(np.abs(theirs[:-1] - ours[:-1]))) if len(ours) > 1 else 0.0
    last = abs(float(theirs[-1] - ours[-1]))
    return (
        f"{label}: {len(ours)} trades in both; max |trade return diff| {body:.1e}, "
        f"final (end-of-data) trade {last:.1e}"
    )


def bt_sweep(frame: pd.DataFrame) -> object:
    """Backtest.optimize over the grid, with a spawn pool: a forked child of a process
    whose numba worker threads are running crashes (SIGSEGV), so fork is not an option."""
    import multiprocessing

    import backtesting
    from backtesting import Backtest

    backtesting.Pool = multiprocessing.get_context("spawn").Pool
    return Backtest(frame, BtSmaCross, cash=1e12, finalize_trades=True).optimize(
        fast=FAST_GRID,
        slow=SLOW_GRID,
        constraint=lambda p: p.fast < p.slow,
        maximize="Sharpe Ratio",
        return_heatmap=True,
    )


def single_run(label: str, action: Callable[[], object], note: str = "") -> Row:
    """Time and peak memory of one run, for peers too slow to repeat."""
    holder: dict[str, float] = {}

    def timed() -> None:
        start = time.perf_counter()
        action()
        holder["ms"] = (time.perf_counter() - start) * 1e3

    mem, method = peak_memory_mib(timed)
    return Row(label, holder["ms"], mem, f"single run [{method}] {note}".rstrip())


# ---- cold start ----------------------------------------------------------------------------

FIRST_BACKTEST = """
import time
t0 = time.perf_counter()
import stratopt.engine as engine
from stratopt.data import generate_bars
t1 = time.perf_counter()
bars = generate_bars(100_000, seed=3)
t2 = time.perf_counter()
engine.backtest(bars, "sma_crossover", {"fast": 10, "slow": 50})
t3 = time.perf_counter()
print(t1 - t0, t3 - t2)
"""


def first_backtest_seconds() -> tuple[float, float, float]:
    """(process wall incl. interpreter start, import time, first backtest) in a fresh process."""
    subprocess.run([sys.executable, "-c", FIRST_BACKTEST], check=True, capture_output=True)
    best: tuple[float, float, float] | None = None
    for _ in range(3):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", FIRST_BACKTEST], check=True, capture_output=True, text=True
        )
        wall = time.perf_counter() - start
        imports, run = (float(x) for x in out.stdout.split())
        if best is None or wall < best[0]:
            best = (wall, imports, run)
    assert best is not None
    return best


# ---- report --------------------------------------------------------------------------------


def show(rows: list[Row]) -> None:
    for row in rows:
        mem = f"{row.mem_mib:8.1f} MiB" if row.mem_mib is not None else " " * 12
        print(f"  {row.label:<52} {row.ms:11.2f} ms  {mem}  {row.note}")


def ratio(peer: float, ours: float, kernel: float | None = None) -> str:
    """Peer time over ours: against the pandas-returning API, and against the numba kernel
    (which also produces metrics and trades, as numpy) when given."""
    if ours <= 0:
        return ""
    text = f"{peer / ours:,.1f}x slower than engine.backtest()/sweep()"
    if kernel:
        text += f", {peer / kernel:,.1f}x than the kernel"
    return text


def run_peers(big: Bars, small: Bars, repeat: int, ours: dict[str, float]) -> None:
    print("\n(c) peers, same workloads in this process")
    try:
        import vectorbt as vbt
    except Exception as exc:  # any import failure means the peer is absent
        print(f"  vectorbt: peer unavailable ({type(exc).__name__}: {exc})")
    else:
        close_big, close_small = vbt_close(big), vbt_close(small)
        same = ours_api(big, fill_on_close=True).trades["ret"].to_numpy()
        print(
            "  "
            + same_trades(
                f"vectorbt {vbt.__version__} check, (a) with fills on close",
                vbt_backtest(vbt, close_big),
                same,
            )
        )
        a = measure(
            "vectorbt (a) MA+signals+from_signals+metrics+trades",
            lambda: vbt_backtest(vbt, close_big),
            max(3, repeat // 6),
        )
        b = measure(
            "vectorbt (b) 90-column broadcast sweep",
            lambda: vbt_sweep(vbt, close_small),
            max(3, repeat // 6),
        )
        a.note += "  " + ratio(a.ms, ours["a_api"], ours.get("a_kernel"))
        b.note += "  " + ratio(b.ms, ours["b_api"], ours.get("b_kernel"))
        show([a, b])
    if _BtStrategy is None:
        print("  backtesting.py: peer unavailable (import failed)")
        return
    import backtesting

    frame_big, frame_small = bt_frame(big), bt_frame(small)
    same = ours_api(big).trades["ret"].to_numpy()
    print(
        "  "
        + same_trades(
            f"backtesting.py {backtesting.__version__} check, (a)", bt_backtest(frame_big), same
        )
    )
    a = single_run("backtesting.py (a) Backtest.run", lambda: bt_backtest(frame_big))
    b = single_run(
        "backtesting.py (b) Backtest.optimize, 90 combos",
        lambda: bt_sweep(frame_small),
        "2 spawned workers, not in memory",
    )
    a.note += "  " + ratio(a.ms, ours["a_api"], ours.get("a_kernel"))
    b.note += "  " + ratio(b.ms, ours["b_api"], ours.get("b_kernel"))
    show([a, b])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30, help="timed runs per measurement")
    parser.add_argument("--no-peers", action="store_true", help="skip vectorbt/backtesting.py")
    args = parser.parse_args()

    big = generate_bars(1_000_000, seed=1)
    small = generate_bars(100_000, seed=2)
    print(
        f"stratopt engine benchmark  (python {sys.version.split()[0]}, numpy {np.__version__},"
        f" {os.cpu_count()} cpus)"
    )

    print("\n(a) sma_crossover(10, 50) on 1,000,000 bars, warm, best of", args.repeat)
    kernel = measure(
        "engine kernel: signal + simulate + metrics + trades",
        lambda: ours_kernel(big),
        args.repeat,
        "numpy trades, no pandas",
    )
    api = measure(
        "engine.backtest(): metrics; frames built lazily", lambda: ours_api(big), args.repeat
    )
    frames = measure(
        "engine.backtest() then .trades, .equity, .position",
        lambda: ours_api_with_frames(big),
        args.repeat,
    )
    show([kernel, api, frames])
    print(f"  trades: {len(ours_api(big).trades)}; target <= 15 ms")

    print("\n(b) 90-combination grid on 100,000 bars, best of", max(3, args.repeat // 5))
    sweep_kernel = measure(
        "sweep_grid kernel (prange over combos)",
        lambda: ours_sweep_kernel(small),
        max(3, args.repeat // 5),
    )
    sweep_api = measure(
        "engine.sweep(): grid expansion + DataFrame",
        lambda: ours_sweep_api(small),
        max(3, args.repeat // 5),
    )
    show([sweep_kernel, sweep_api])
    print(f"  per combination: {sweep_api.ms / len(COMBOS):.2f} ms")

    if args.no_peers:
        print("\n(c) peers skipped (--no-peers)")
    else:
        ours = {
            "a_api": api.ms,
            "b_api": sweep_api.ms,
            "a_kernel": kernel.ms,
            "b_kernel": sweep_kernel.ms,
        }
        run_peers(big, small, args.repeat, ours)

    print("\n(d) first backtest in a fresh interpreter, warm numba cache (best of 3)")
    wall, imports, run = first_backtest_seconds()
    print(
        f"  process wall (start python .. backtest done, incl. 100k-bar generation) {wall:6.2f} s"
    )
    print(
        f"  import stratopt.engine {imports:6.2f} s; first backtest call {run:6.2f} s; target < 2 s"
    )

    run_hand_comparison(big, args.repeat)


if __name__ == "__main__":
    main()
