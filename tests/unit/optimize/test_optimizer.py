"""Batched ask/tell: seeded runs repeat exactly, a resumed run continues the same sequence,
scores match the engine, and constraints decide what can be best."""

from __future__ import annotations

from stratopt import engine
from stratopt.data.bars import Bars
from stratopt.optimize.analysis import best_trial, feasible, pareto_front
from stratopt.optimize.evaluate import PENALTY
from stratopt.optimize.optimizer import INVALID_ATTR, METRICS_ATTR, WORKER_ATTR, Optimizer
from stratopt.optimize.spec import MetricBound, Objective
from stratopt.strategies.base import StrategyType
from tests.unit.optimize.conftest import make_problem


def run(
    opt: Optimizer, batches: int, k: int = 8
) -> list[tuple[dict[str, object], tuple[float, ...]]]:
    out = []
    for _ in range(batches):
        out += [(f.trial.params, tuple(f.trial.values)) for f in opt.run_batch(k)]
    return out


def test_same_seed_same_trials_and_another_seed_differs(bars: Bars, sma: StrategyType) -> None:
    a = run(Optimizer(make_problem(bars, sma), "tpe", seed=5), 3)
    b = run(Optimizer(make_problem(bars, sma), "tpe", seed=5), 3)
    c = run(Optimizer(make_problem(bars, sma), "tpe", seed=6), 3)
    assert a == b
    assert a != c
    assert len(a) == 24


def test_a_resumed_study_asks_what_an_uninterrupted_one_would(
    bars: Bars, sma: StrategyType
) -> None:
    whole = run(Optimizer(make_problem(bars, sma), "tpe", seed=9), 4)
    first = Optimizer(make_problem(bars, sma), "tpe", seed=9)
    done = [f.trial for f in first.run_batch(8) + first.run_batch(8)]
    resumed = Optimizer(make_problem(bars, sma), "tpe", seed=9)
    assert resumed.absorb(done) == 16
    assert run(resumed, 2) == whole[16:]


def test_scores_are_the_engines_metrics(bars: Bars, sma: StrategyType) -> None:
    problem = make_problem(bars, sma)
    (ev,) = problem.evaluate([{"fast": 7, "slow": 40}])
    want = engine.backtest(bars, sma, {"fast": 7, "slow": 40}).metrics
    for name in ("sharpe", "total_return", "max_drawdown", "num_trades"):
        assert abs(ev.metrics[name] - want[name]) <= 1e-9 * max(1.0, abs(want[name])), name
    assert ev.values == (ev.metrics["sharpe"],)
    assert ev.metrics["final_equity"] == 10_000 * (1 + ev.metrics["total_return"])


def test_parameters_the_strategy_rejects_are_infeasible_with_a_penalty(
    bars: Bars, sma: StrategyType
) -> None:
    problem = make_problem(bars, sma, (Objective("max_drawdown", "minimize"),))
    bad, good = problem.evaluate([{"fast": 60, "slow": 20}, {"fast": 10, "slow": 60}])
    assert bad.values == (PENALTY,) and not bad.feasible and bad.violations[0] == 41.0
    assert "fast" in bad.invalid and bad.metrics == {}
    assert good.feasible and good.violations == (0.0,)


def test_metric_bounds_decide_feasibility_and_the_best_trial(bars: Bars, sma: StrategyType) -> None:
    problem = make_problem(bars, sma, bounds=(MetricBound("num_trades", min=30),))
    opt = Optimizer(problem, "tpe", seed=1, worker_id="w-1")
    trials = [f.trial for f in opt.run_batch(16) + opt.run_batch(16)]
    ok = [t for t in trials if feasible(t)]
    assert ok and len(ok) < len(trials), "the bound splits the trials"
    assert all(t.user_attrs[METRICS_ATTR]["num_trades"] >= 30 for t in ok)
    assert all(t.user_attrs[WORKER_ATTR] == "w-1" for t in trials)
    best = best_trial(trials, "maximize")
    assert best is not None and feasible(best)
    assert best.values[0] == max(t.values[0] for t in ok)
    unconstrained = max(t.values[0] for t in trials if INVALID_ATTR not in t.user_attrs)
    assert unconstrained >= best.values[0]
    impossible = make_problem(bars, sma, bounds=(MetricBound("num_trades", min=10**9),))
    none_ok = [f.trial for f in Optimizer(impossible, "random", seed=1).run_batch(8)]
    assert best_trial(none_ok, "maximize") is None


def test_multi_objective_front_is_non_dominated(bars: Bars, sma: StrategyType) -> None:
    objectives = (Objective("total_return", "maximize"), Objective("max_drawdown", "minimize"))
    opt = Optimizer(make_problem(bars, sma, objectives), "nsga2", seed=2)
    trials = [f.trial for f in opt.run_batch(16) + opt.run_batch(16)]
    front = pareto_front(trials, ["maximize", "minimize"])
    assert front
    pool = [t for t in trials if feasible(t)]
    for t in front:
        r, d = t.values
        assert not any(
            o.values[0] >= r and o.values[1] <= d and tuple(o.values) != (r, d) for o in pool
        )


def test_every_sampler_runs_and_grid_covers_its_points(bars: Bars, sma: StrategyType) -> None:
    from stratopt.optimize.space import build_space
    from stratopt.optimize.spec import ParamOverride

    for name in ("tpe", "random", "cmaes", "nsga2", "qmc"):
        assert len(run(Optimizer(make_problem(bars, sma), name, seed=1), 2, 4)) == 8, name
    problem = make_problem(bars, sma)
    problem.space = build_space(sma, (ParamOverride("fast", 2, 4), ParamOverride("slow", 5, 7)))
    seen = {(p["fast"], p["slow"]) for p, _ in run(Optimizer(problem, "grid", seed=1), 3, 3)}
    assert seen == {(f, s) for f in (2, 3, 4) for s in (5, 6, 7)}
