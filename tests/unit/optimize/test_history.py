"""The bounded history of long TPE studies: what the window keeps, that it stays bounded,
and that a resumed study still asks exactly what an uninterrupted one would."""

from __future__ import annotations

import random
from pathlib import Path

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import FrozenTrial, TrialState

from stratopt.data.bars import Bars
from stratopt.optimize.analysis import pareto_front
from stratopt.optimize.history import TPE_WINDOW, History, Window, best_of, window_for
from stratopt.optimize.optimizer import Optimizer
from stratopt.optimize.rdb import StudyStorage, study_name
from stratopt.optimize.spec import Objective
from stratopt.strategies.base import StrategyType
from tests.unit.optimize.conftest import make_problem

SMALL = Window(recent=250, step=50)


def trial(value: float | tuple[float, ...], violation: float = 0.0) -> FrozenTrial:
    values = list(value) if isinstance(value, tuple) else [value]
    t = optuna.trial.create_trial(
        params={"x": 1},
        distributions={"x": IntDistribution(0, 10)},
        values=values,
        system_attrs={"constraints:rule": violation},
    )
    return t


def test_the_window_starts_after_recent_plus_step_and_moves_a_step_at_a_time() -> None:
    w = Window(recent=500, step=250)
    assert [w.cut(n) for n in (0, 749, 750, 999, 1000, 20_000)] == [0, 0, 250, 250, 500, 19_500]
    assert window_for("tpe") is TPE_WINDOW and window_for("nsga2") is None
    with pytest.raises(ValueError):
        Window(recent=100)


def test_best_ranks_as_tpe_does_feasible_by_value_then_infeasible_by_violation() -> None:
    pool = list(enumerate([trial(1.0), trial(5.0, 2.0), trial(3.0), trial(3.0), trial(9.0, 0.5)]))
    assert [i for i, _ in best_of(pool, ["maximize"], 4)] == [2, 3, 0, 4]
    assert [i for i, _ in best_of(pool, ["minimize"], 2)] == [0, 2]
    failed = optuna.trial.create_trial(state=TrialState.FAIL)
    assert best_of([(0, failed)], ["maximize"], 5) == []


def test_pareto_layers_for_several_objectives() -> None:
    # maximize both: (3, 3) dominates everything; (1, 2) and (2, 1) share the next layer.
    pool = list(enumerate([trial((1.0, 2.0)), trial((3.0, 3.0)), trial((2.0, 1.0)), trial((0, 0))]))
    assert [i for i, _ in best_of(pool, ["maximize", "maximize"], 3)] == [1, 0, 2]
    assert [i for i, _ in best_of(pool, ["maximize", "maximize"], 1)] == [1]


def test_the_window_keeps_the_best_of_the_whole_history_whatever_the_batches() -> None:
    rng = random.Random(4)
    trials = [trial(rng.gauss(0, 1), max(0.0, rng.gauss(-1, 1))) for _ in range(1_000)]
    at_once = History(["maximize"], SMALL)
    at_once.add(trials)
    assert at_once.moved()
    in_batches = History(["maximize"], SMALL)
    for i in range(0, 1_000, 7):
        in_batches.add(trials[i : i + 7])
        in_batches.moved()
    assert at_once.cut == in_batches.cut == 750
    visible = at_once.visible()
    assert [id(t) for t in visible] == [id(t) for t in in_batches.visible()]
    best = {id(t) for _, t in best_of(list(enumerate(trials)), ["maximize"], 25)}
    assert best <= {id(t) for t in visible}, "TPE's good group is the whole history's"
    assert [id(t) for t in visible[-250:]] == [id(t) for t in trials[750:]]
    assert len(visible) == 25 + 250 and at_once.count == 1_000


def run(opt: Optimizer, batches: int, k: int = 16) -> list[tuple[dict[str, object], float]]:
    out = []
    for _ in range(batches):
        out += [(f.trial.params, f.trial.values[0]) for f in opt.run_batch(k)]
    return out


def test_a_long_study_samples_from_a_bounded_study_and_resumes_on_the_same_sequence(
    bars: Bars, sma: StrategyType, tmp_path: Path
) -> None:
    def fresh() -> Optimizer:
        return Optimizer(make_problem(bars, sma), "tpe", seed=3, window=SMALL)

    whole = fresh()
    seen = []
    for _ in range(30):
        seen += run(whole, 1)
        assert len(whole.study.trials) <= SMALL.recent + SMALL.step + SMALL.best + 16
    assert whole.size == 480 and len(seen) == 480
    # Interrupted after 22 batches; the restart reads them back from the durable study.
    first = fresh()
    storage = StudyStorage(f"sqlite+aiosqlite:///{tmp_path}/stratopt.db")
    study_id = storage.ensure_study(study_name("long"), ["maximize"])
    for _ in range(22):
        storage.write_trials(study_id, [f.trial for f in first.run_batch(16)])
    done = storage.read_trials(study_id)
    storage.close()
    resumed = fresh()
    assert resumed.absorb(done) == 352 and resumed.size == 352
    assert run(resumed, 8) == seen[352:]
    unbounded = Optimizer(make_problem(bars, sma), "tpe", seed=3, window=None)
    assert run(unbounded, 20)[:304] == seen[:304], "before the window starts, nothing changes"


def test_several_objectives_keep_their_pareto_layers(bars: Bars, sma: StrategyType) -> None:
    objectives = (Objective("total_return", "maximize"), Objective("max_drawdown", "minimize"))
    opt = Optimizer(make_problem(bars, sma, objectives), "tpe", seed=2, window=SMALL)
    trials = [f.trial for _ in range(24) for f in opt.run_batch(16)]
    assert opt.size == 384 and len(opt.study.trials) < 384
    kept = SMALL.kept(2)
    assert kept == 30
    window = opt.study.trials
    front = pareto_front(trials[: SMALL.cut(384)], ["maximize", "minimize"])
    assert len(front) <= kept
    shown = {(tuple(t.values), tuple(sorted(t.params.items()))) for t in window}
    assert all((tuple(t.values), tuple(sorted(t.params.items()))) in shown for t in front)
