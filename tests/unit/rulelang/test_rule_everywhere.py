"""A compiled rule type goes wherever a built-in goes: sweeps, optimizer batches, walk-forward.

The sweep is the demanding case: it takes the signal as a first-class numba function of a
fixed type inside a parallel kernel, so the generated dispatcher must compile to exactly
that signature.
"""

from __future__ import annotations

import numpy as np

from stratopt.data.synthetic import generate_bars
from stratopt.engine import ExecutionOptions
from stratopt.engine.grid_sweep import sweep_grid
from stratopt.engine.metrics import infer_periods_per_year
from stratopt.optimize.evaluate import Problem
from stratopt.optimize.optimizer import Optimizer
from stratopt.optimize.space import build_space
from stratopt.optimize.spec import Objective
from stratopt.rules import compile_strategy, corpus
from stratopt.strategies import registry


def test_grid_sweep_matches_the_builtin() -> None:
    bars = generate_bars(3000, timeframe="1h", seed=5)
    arrays = [
        np.ascontiguousarray(getattr(bars, f)) for f in ("open", "high", "low", "close", "volume")
    ]
    grid = np.array([[f, s] for f in (5, 10, 20) for s in (30, 60) if f < s], dtype=np.float64)
    cfg = ExecutionOptions(commission=0.001, direction="both").to_vector()
    ppy = infer_periods_per_year(bars.ts)
    rules = compile_strategy(corpus.text("ema_crossover"), name="ema_crossover")
    want = sweep_grid(*arrays, registry.get("ema_crossover").signal, grid, cfg, ppy)
    got = sweep_grid(*arrays, rules.signal, grid, cfg, ppy)
    np.testing.assert_array_equal(got, want)


def test_optimizer_batches_score_like_the_builtin() -> None:
    bars = generate_bars(2000, timeframe="1h", seed=6)
    objectives = [Objective("sharpe", "maximize")]
    rules = compile_strategy(corpus.text("rsi_reversion"), name="rsi_reversion")
    builtin = registry.get("rsi_reversion")
    sampled = [{"period": 7, "oversold": 25.0, "source": "hlc3"}, {"period": 21}]
    want = Problem(build_space(builtin, ()), bars, ExecutionOptions(), objectives)
    got = Problem(build_space(rules, ()), bars, ExecutionOptions(), objectives)
    assert got.evaluate(sampled) == want.evaluate(sampled)
    finished = Optimizer(got, "tpe", seed=1).run_batch(4)
    assert len(finished) == 4
