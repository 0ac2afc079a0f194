"""A user type's kernel compiles in a child process, and this process loads it from numba's
disk cache (rules/build.py): the event loop keeps running meanwhile, concurrent first uses
share one child, and a child that fails, crashes or hangs gives a clear error."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stratopt.data import generate_bars
from stratopt.engine.grid_sweep import SIGNAL_SIGNATURE
from stratopt.errors import FailedPrecondition, StratoptError
from stratopt.rules import CompileError, RuleErrors, build, codegen_numba, compile_strategy
from stratopt.services.type_resolution import compile_source
from stratopt.strategies.user_types import TypeSource

SMALL = """param fast: int = 10 in [2, 50]
param slow: int = 30 in [5, 200]
constraint fast < slow
long_entry: crossover(ema(close, fast), sma(close, slow)) and rsi(close, 14) < 70
long_exit: crossunder(ema(close, fast), sma(close, slow))
"""

_FUNCS = (
    "sma(close, {a})", "ema(hl2, {b})", "wma(close, {a})", "rsi(close, {b})", "atr({a})",
    "stdev(close, {b})", "cci(close, {a})", "highest(high, {b})", "lowest(low, {a})",
    "bb(close, {a}, 2).upper", "dmi({a}, {b}).adx", "macd(close, {a}, {b}, 9).hist",
)  # fmt: skip


def fresh(text: str) -> str:
    """`text` under a comment no other test uses: a definition no process has compiled."""
    return f"# {uuid.uuid4().hex}\n{text}"


def moderately_large() -> str:
    """Six named series of five indicators each and three conditional terms per rule: a
    cold compile of a few seconds (bench/bench_rule_compile_stall.py has a larger one)."""
    lines = [f"param p{i}: int = {5 + i} in [2, 200]" for i in range(6)]
    for i in range(6):
        a, b = f"p{i}", f"p{(i + 1) % 6}"
        f = [_FUNCS[(i * 2 + k) % len(_FUNCS)].format(a=a, b=b) for k in range(5)]
        lines.append(f"s{i} = ({f[0]} - {f[1]}) / ({f[2]} + 1) + {f[3]} * 0.01 - {f[4]}")
    for rule, shift, op in (("long_entry", 1, "and"), ("long_exit", 2, "or"),
                            ("short_entry", 3, "and"), ("short_exit", 4, "or")):  # fmt: skip
        terms = (f"(s{i} > s{(i + shift) % 6} ? close > open : s{i} < s{i}[1])" for i in range(3))
        lines.append(f"{rule}: {f' {op} '.join(terms)}")
    return fresh("\n".join(lines) + "\n")


@pytest.fixture(autouse=True)
def rules_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty generated-module directory, so numba's disk cache of these kernels is cold."""
    monkeypatch.setenv("STRATOPT_RULES_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture
def children(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The digests the child processes started by this test compiled, in order."""
    started: list[str] = []
    real = build.build_in_child

    def counting(digest: str, source: str, *, timeout: float) -> None:
        started.append(digest)
        real(digest, source, timeout=timeout)

    monkeypatch.setattr(build, "build_in_child", counting)
    return started


def hits_and_misses(signal: Any) -> tuple[int, int]:
    return sum(signal.stats.cache_hits.values()), sum(signal.stats.cache_misses.values())


def test_a_new_definition_compiles_in_a_child_and_loads_from_its_cache(
    children: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = fresh(SMALL)
    stype = compile_strategy(text, name="small", isolated=True)
    assert len(children) == 1
    # This process read the kernel from the disk cache the child wrote: it compiled nothing.
    assert hits_and_misses(stype.signal) == (1, 0)
    signal: Any = stype.signal  # a numba dispatcher
    assert signal.signatures == [SIGNAL_SIGNATURE.args]

    # Read-only prices (a Bars) and writable ones (a live run's windows) run the one kernel.
    bars = generate_bars(500, timeframe="1h", seed=2)
    frozen = [bars.open, bars.high, bars.low, bars.close, bars.volume]
    writable = [np.array(x) for x in frozen]
    vector = stype.to_vector()
    np.testing.assert_array_equal(stype.signal(*frozen, vector), stype.signal(*writable, vector))
    assert len(signal.signatures) == 1, "writable arrays convert: no second compile"

    # A later process (one that has not loaded it) finds it in the disk cache: no child.
    monkeypatch.setattr(codegen_numba, "_loaded", {})
    again = compile_strategy(text, name="small", isolated=True)
    assert len(children) == 1
    assert again.signal is not stype.signal and hits_and_misses(again.signal) == (1, 0)


def test_the_event_loop_keeps_running_during_a_cold_compile(children: list[str]) -> None:
    """The server's path: compile_source in a thread, then the first signal on the loop (as
    a live run warms up). Before, numba compiled in this process and held the GIL; the
    first signal call compiled on the loop itself, for seconds."""
    bars = generate_bars(2_000, timeframe="1h", seed=3)
    prices = [np.array(getattr(bars, f)) for f in ("open", "high", "low", "close", "volume")]
    source = TypeSource(name="user_" + "1" * 32, source=moderately_large())

    async def scenario() -> tuple[float, float]:
        lags: list[float] = []

        async def tick() -> None:
            while True:
                start = time.perf_counter()
                await asyncio.sleep(0.005)
                lags.append(time.perf_counter() - start - 0.005)

        ticker = asyncio.create_task(tick())
        stype = await asyncio.to_thread(compile_source, source)
        start = time.perf_counter()
        stype.signal(*prices, np.ascontiguousarray(stype.to_vector()))
        first_call = time.perf_counter() - start
        await asyncio.sleep(0.05)
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
        return max(lags), first_call

    worst, first_call = asyncio.run(scenario())
    assert len(children) == 1
    assert first_call < 0.5, f"the first signal took {first_call:.2f} s on the loop"
    assert worst < 1.0, f"the event loop was held for {worst:.2f} s"


def test_concurrent_first_uses_share_one_child(children: list[str]) -> None:
    text = fresh(SMALL)
    results: list[Any] = []

    def first_use() -> None:
        results.append(compile_strategy(text, name="t", isolated=True).signal)

    threads = [threading.Thread(target=first_use) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(children) == 1
    assert len(results) == 3 and all(r is results[0] for r in results)


def test_a_bad_definition_fails_here_without_a_child(children: list[str]) -> None:
    with pytest.raises(RuleErrors) as info:
        compile_strategy("long_entry: close > sma(close)", name="bad", isolated=True)
    assert info.value.line == 1
    assert children == []
    source = TypeSource(name="user_" + "2" * 32, source="long_entry: nope > 1")
    with pytest.raises(FailedPrecondition, match="no longer compiles"):
        compile_source(source)


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("import os; os.abort()", "was killed by signal 6"),
        ("import sys; sys.exit(3)", "exited with status 3"),
        ("import time; time.sleep(60)", "took longer than 1 s"),
    ],
)
def test_a_child_that_crashes_or_hangs_is_a_clear_error(
    command: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "child_command", lambda: [sys.executable, "-c", command])
    text = fresh(SMALL)
    start = time.perf_counter()
    with pytest.raises(CompileError, match=message):
        build.load_signal_isolated(uuid.uuid4().hex, text, timeout=1.0)
    assert time.perf_counter() - start < 15
    # Through the service: UNAVAILABLE (try again) with the reason, not a hang, not
    # INTERNAL, not a RuleError.
    monkeypatch.setattr(build, "TIMEOUT_S", 1.0)
    source = TypeSource(name="user_" + "3" * 32, source=text)
    with pytest.raises(StratoptError, match="could not be compiled") as info:
        compile_source(source)
    assert info.value.code_name == "UNAVAILABLE" and "3" * 32 in str(info.value)
    assert info.value.retry_after_seconds > 0  # type: ignore[attr-defined]


def test_code_the_child_cannot_compile_is_reported() -> None:
    with pytest.raises(CompileError, match="kernel failed: ValueError: generated code refused"):
        build.load_signal_isolated(uuid.uuid4().hex, "raise ValueError('generated code refused')")
