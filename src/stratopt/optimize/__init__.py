"""Optuna studies over the engine and the strategy library.

`spec` (what to optimize), `space` (search spaces and overrides), `checks` (validation),
`evaluate` (batched scoring on the numba sweep), `samplers`, `optimizer` (batched ask/tell on
an in-memory study), `rdb` (the durable study in Optuna's tables), `validation` (held-out and
walk-forward checks of the winner) and `analysis` (best trial, Pareto front, importances).
No gRPC here, and no stratopt tables: `jobs/` turns this into durable background work.
"""

from __future__ import annotations


def warm_up() -> None:
    """Loads the compiled sweep and TPE kernels (from numba's cache when warm)."""
    import numpy as np

    from stratopt.data.synthetic import generate_bars
    from stratopt.engine import ExecutionOptions
    from stratopt.optimize import fast_tpe
    from stratopt.optimize.evaluate import Problem
    from stratopt.optimize.space import build_space
    from stratopt.optimize.spec import Objective
    from stratopt.strategies import registry

    fast_tpe.install()
    fast_tpe.log_ndtr(np.linspace(-30.0, 10.0, 8))
    bars = generate_bars(200, seed=0)
    strategy = registry.get("sma_crossover")
    problem = Problem(
        build_space(strategy, ()), bars, ExecutionOptions(), [Objective("sharpe", "maximize")]
    )
    problem.evaluate([{"fast": 5, "slow": 20}])
