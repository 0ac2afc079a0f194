"""Event-loop lag while a server process compiles a large user strategy type.

Run: ``python bench/bench_rule_compile_stall.py [--repeat 1] [--numba-cache fresh|default]``.

A user type (a rule-language definition) is compiled in the first process that uses it.
This script measures what that does to the asyncio event loop of that process, through
the server's own path: ``services.type_resolution.compile_source`` in
``asyncio.to_thread`` (as ``resolve_in`` runs it), then either the first backtest in a
thread (as ``services/backtests.py`` runs it), or the first signal on the event loop (as
a live run warms up and steps, ``live/manager.py``). Meanwhile a ticker on the loop sleeps
5 ms at a time and records how late it wakes up: that lateness is what every other call
served by the process waits on top of its own work.

The definition is built near the language's limits (30 parameters, 30 named series of
five indicators each, four rules of 12 conditional terms; close to the 3,000-token
limit). Each scenario runs in a fresh process. "cold" uses a definition no process has
compiled (a different comment line, so a different hash and file); "warm" repeats the
first one, so numba's disk cache has it. Before the ticker starts, each process runs the
server's engine warm-up (one backtest per built-in type), as ``stratopt serve`` does.

``--numba-cache fresh`` (the default) points NUMBA_CACHE_DIR at a new temporary
directory, shared by this run's processes, so nothing is on disk at the start (the first
warm-up compiles the engine, outside the measurement); ``default`` keeps the usual cache
of the engine's kernels (the rule kernels' cache is always fresh: STRATOPT_RULES_CACHE).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

_FUNCS = (
    "sma(close, {a})", "ema(hl2, {b})", "wma(close, {c})", "rma(hlc3, {a})",
    "rsi(close, {b})", "atr({c})", "stdev(close, {a})", "cci(close, {b})",
    "roc(close, {c})", "mom(ohlc4, {a})", "highest(high, {b})", "lowest(low, {c})",
    "bb(close, {a}, 2).upper", "keltner({b}, {c}, 1.5).lower", "dmi({a}, {b}).adx",
    "stoch({a}, 3, {c}).k", "macd(close, {a}, {b}, 9).hist", "supertrend({c}, 3).line",
    "donchian({b}).mid", "dev(close, {a})",
)  # fmt: skip


def large_definition(variant: str, series: int = 30, params: int = 30, terms: int = 12) -> str:
    """A valid definition near the limits; `variant` only changes a comment (and the hash)."""
    lines = [f"# stall bench, variant {variant}"]
    lines += [f"param p{i}: int = {5 + i} in [2, 400]" for i in range(params)]
    for i in range(series):
        a, b, c = f"p{i % params}", f"p{(i + 7) % params}", f"p{(i + 13) % params}"
        f = [_FUNCS[(i * 3 + k) % len(_FUNCS)].format(a=a, b=b, c=c) for k in range(5)]
        lines.append(f"s{i} = ({f[0]} - {f[1]}) / ({f[2]} + 1) + {f[3]} * 0.01 - {f[4]}")

    def rule(shift: int, op: str) -> str:
        return f" {op} ".join(
            f"(s{i} > s{(i + shift) % series} ? close > open : s{i} < s{i}[1])"
            for i in range(terms)
        )

    lines.append(f"long_entry: {rule(5, 'and')}")
    lines.append(f"long_exit: {rule(11, 'or')}")
    lines.append(f"short_entry: {rule(17, 'and')}")
    lines.append(f"short_exit: {rule(23, 'or')}")
    return "\n".join(lines) + "\n"


async def tick(lags: list[float], period: float = 0.005) -> None:
    """Sleeps `period` seconds in a loop and records how late each wake-up is."""
    while True:
        start = time.perf_counter()
        await asyncio.sleep(period)
        lags.append(time.perf_counter() - start - period)


async def serve_calls(times: list[float], steps: int = 20) -> None:
    """Stand-ins for the calls the process serves meanwhile: one every 20 ms, each `steps`
    bits of Python work with an `await` between them (as a call passes interceptors, the
    database and a servicer). At each await the loop thread lets the GIL go, and then has
    to get it back from whatever else runs."""
    while True:
        start = time.perf_counter()
        for _ in range(steps):
            await asyncio.sleep(0)
            sum(range(300))
        times.append(time.perf_counter() - start)
        await asyncio.sleep(0.02)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _scenario(path: str, variant: str, in_process: bool) -> dict[str, float]:
    import functools

    import numpy as np

    from stratopt import engine
    from stratopt.data import generate_bars
    from stratopt.rules import compile_strategy
    from stratopt.server.warmup import warm_up
    from stratopt.services.type_resolution import compile_source
    from stratopt.strategies.user_types import TypeSource

    warm_up()
    if path == "warmup":
        return {}
    bars = generate_bars(20_000, timeframe="1h", seed=3)
    source = TypeSource(name="user_" + "0" * 32, source=large_definition(variant))
    lags: list[float] = []
    times: list[float] = []
    probes = [asyncio.create_task(tick(lags)), asyncio.create_task(serve_calls(times))]
    await asyncio.sleep(1.0)  # quiet baseline
    ticks, calls = len(lags), len(times)
    start = time.perf_counter()
    if in_process:  # the peer: numba compiles in this process' thread, holding its GIL
        build = functools.partial(compile_strategy, source.source, name=source.name)
        stype = await asyncio.to_thread(build)
    else:
        stype = await asyncio.to_thread(compile_source, source)
    compiled = time.perf_counter()
    if path == "backtest":
        await asyncio.to_thread(engine.backtest, bars, stype)
    else:  # live: the first signal runs on the loop, on writable windows of the history
        prices = [np.array(getattr(bars, f)[-2_000:]) for f in ("open", "high", "low", "close")]
        volume = np.array(bars.volume[-2_000:])
        stype.signal(*prices, volume, np.ascontiguousarray(stype.to_vector()))
    done = time.perf_counter()
    await asyncio.sleep(0.1)  # lets the calls caught by the end of it finish
    for task in probes:
        task.cancel()
    await asyncio.gather(*probes, return_exceptions=True)
    lag = [x * 1e3 for x in lags[ticks:]]
    busy = [x * 1e3 for x in times[calls:]]
    quiet = [x * 1e3 for x in times[:calls]]
    stats = getattr(stype.signal, "stats", None)
    return {
        "compile_s": compiled - start,
        "first_call_s": done - compiled,
        "lag_p50": _percentile(lag, 0.5),
        "lag_p99": _percentile(lag, 0.99),
        "lag_max": max(lag),
        "call_quiet_p50": _percentile(quiet, 0.5),
        "call_p50": _percentile(busy, 0.5),
        "call_p99": _percentile(busy, 0.99),
        "call_max": max(busy),
        "cache_hits": sum(stats.cache_hits.values()) if stats else -1,
        "cache_misses": sum(stats.cache_misses.values()) if stats else -1,
    }


def _run_scenario(
    path: str, variant: str, env: dict[str, str], in_process: bool = False
) -> dict[str, float] | str:
    cmd = [sys.executable, __file__, "--scenario", path, "--variant", variant]
    cmd += ["--in-process"] if in_process else []
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        return "timed out after 900 s"
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    if out.returncode != 0 or not lines:
        tail = (out.stderr.strip().splitlines() or ["?"])[-1]
        return f"failed (exit {out.returncode}): {tail}"
    result: dict[str, float] = json.loads(lines[-1])
    return result


def _line(label: str, r: dict[str, float] | str) -> str:
    if isinstance(r, str):
        return f"{label:<24}{r}"
    return (
        f"{label:<24}{r['compile_s']:>8.2f}{r['first_call_s']:>9.2f}"
        f"{r['compile_s'] + r['first_call_s']:>8.2f}   "
        f"{r['lag_p50']:>6.1f}{r['lag_p99']:>8.1f}{r['lag_max']:>9.1f}   "
        f"{r['call_quiet_p50']:>6.1f}{r['call_p50']:>7.1f}{r['call_p99']:>8.1f}{r['call_max']:>9.1f}"
        f"{int(r['cache_hits']):>6}/{int(r['cache_misses'])}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="cold/warm pairs per path")
    parser.add_argument("--numba-cache", choices=("fresh", "default"), default="fresh")
    parser.add_argument("--paths", default="backtest,live")
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    parser.add_argument("--variant", default="0", help=argparse.SUPPRESS)
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        print(json.dumps(asyncio.run(_scenario(args.scenario, args.variant, args.in_process))))
        return
    with tempfile.TemporaryDirectory() as rules, tempfile.TemporaryDirectory() as numba:
        env = {**os.environ, "STRATOPT_RULES_CACHE": rules}
        if args.numba_cache == "fresh":
            env["NUMBA_CACHE_DIR"] = numba
            _run_scenario("warmup", "", env)  # compiles the engine once, unmeasured
        print(f"\nLoop lag while a large user type compiles ({args.numba_cache} numba cache)")
        print(
            f"{'':<24}{'seconds:':>8}{'':>9}{'':>8}   {'tick lag ms:':<23}   "
            f"{'20-step call ms:':<30}{'numba':>7}"
        )
        print(f"{'':<24}{'compile':>8}{'1st call':>9}{'total':>8}   "
              f"{'p50':>6}{'p99':>8}{'max':>9}   {'quiet':>6}{'p50':>7}{'p99':>8}{'max':>9}"
              f"{'hit/miss':>9}")  # fmt: skip
        for k in range(args.repeat):
            for path in args.paths.split(","):
                variant = f"{path}-{k}-{time.time_ns()}"
                print(_line(f"{path}, cold", _run_scenario(path, variant, env)), flush=True)
                print(_line(f"{path}, warm disk cache", _run_scenario(path, variant, env)))
                # The peer: the same cold compile without the child process (a new hash).
                peer = _run_scenario(path, variant + "-peer", env, in_process=True)
                print(_line(f"{path}, cold, in-process", peer))
    print(
        "compile = compile_source in a thread; 1st call = the first backtest in a thread, or "
        "the first signal on the loop (live); tick lag = lateness of a 5 ms sleep while both "
        "run; call = a 20-step stand-in call (quiet = before); hit/miss = numba disk-cache "
        "hits and misses of the rule kernel in the measured process; in-process = numba "
        "compiling in a thread of the measured process (the path before rules/build.py)"
    )


if __name__ == "__main__":
    main()
