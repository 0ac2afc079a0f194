"""The durable study: bulk-written trials are ordinary Optuna trials, numbered without gaps."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from stratopt.data.bars import Bars
from stratopt.optimize.analysis import best_trial, feasible
from stratopt.optimize.optimizer import METRICS_ATTR, Optimizer
from stratopt.optimize.rdb import StudyStorage, study_name, target_for
from stratopt.optimize.spec import MetricBound
from stratopt.strategies.base import StrategyType
from tests.unit.optimize.conftest import make_problem


def test_targets_keep_optuna_apart_from_stratopts_tables(tmp_path: Path) -> None:
    lite = target_for(f"sqlite+aiosqlite:///{tmp_path}/stratopt.db")
    assert lite.url == f"sqlite:///{tmp_path}/stratopt.optuna.db"
    pg = target_for("postgresql+asyncpg://u:pw@db:5432/strat")
    assert pg.url == "postgresql+psycopg://u:pw@db:5432/strat"
    assert pg.engine_kwargs["connect_args"] == {"options": "-c search_path=optuna"}
    assert "pw" not in pg.display
    with pytest.raises(ValueError, match="file database"):
        target_for("sqlite+aiosqlite:///:memory:")


@pytest.fixture()
def storage(tmp_path: Path) -> StudyStorage:
    s = StudyStorage(f"sqlite+aiosqlite:///{tmp_path}/stratopt.db")
    yield s
    s.close()


def test_interleaved_writers_get_unique_gap_free_numbers(
    storage: StudyStorage, bars: Bars, sma: StrategyType
) -> None:
    problem = make_problem(bars, sma, bounds=(MetricBound("num_trades", min=25),))
    study_id = storage.ensure_study(study_name("abc"), problem.directions)
    assert storage.ensure_study(study_name("abc"), problem.directions) == study_id
    a = Optimizer(problem, "random", seed=1, worker_id="a")
    b = Optimizer(problem, "random", seed=2, worker_id="b")
    written = []
    for opt in (a, b, a, b):
        written += storage.write_trials(study_id, [f.trial for f in opt.run_batch(5)])
    assert [n for _, n in written] == list(range(20))
    assert storage.count_complete(study_id) == 20
    study = optuna.load_study(study_name=study_name("abc"), storage=storage.storage)
    trials = study.trials
    assert [t.number for t in trials] == list(range(20))
    assert {t.user_attrs["worker"] for t in trials} == {"a", "b"}
    assert all(METRICS_ATTR in t.user_attrs and set(t.params) == {"fast", "slow"} for t in trials)
    assert any(not feasible(t) for t in trials) and any(feasible(t) for t in trials)
    assert all(set(t.constraints) == {"strategy_rules", "0:num_trades"} for t in trials)
    assert study.best_trial.number in range(20)


def test_reads_since_a_watermark_and_pages_in_either_order(
    storage: StudyStorage, bars: Bars, sma: StrategyType
) -> None:
    problem = make_problem(bars, sma)
    study_id = storage.ensure_study(study_name("pages"), problem.directions)
    opt = Optimizer(problem, "random", seed=3)
    first = storage.write_trials(study_id, [f.trial for f in opt.run_batch(6)])
    storage.write_trials(study_id, [f.trial for f in opt.run_batch(6)])
    later = storage.read_trials(study_id, max(i for i, _ in first))
    assert [t.number for t in later] == list(range(6, 12))
    by_number = storage.page_trials(study_id, "number", None, 5)
    assert [t.number for t in by_number] == [0, 1, 2, 3, 4]
    nxt = storage.page_trials(study_id, "number", (0.0, 4), 100)
    assert [t.number for t in nxt] == list(range(5, 12))
    desc = storage.page_trials(study_id, "value desc", None, 12)
    values = [t.values[0] for t in desc]
    assert values == sorted(values, reverse=True)
    last = desc[5]
    rest = storage.page_trials(study_id, "value desc", (last.values[0], last.number), 100)
    assert [t.number for t in desc[:6] + rest] == [t.number for t in desc]


def test_new_ids_and_the_best_trial_without_loading_the_study(
    storage: StudyStorage, bars: Bars, sma: StrategyType
) -> None:
    problem = make_problem(bars, sma, bounds=(MetricBound("num_trades", min=40),))
    study_id = storage.ensure_study(study_name("best"), problem.directions)
    opt = Optimizer(problem, "random", seed=4)
    first = storage.write_trials(study_id, [f.trial for f in opt.run_batch(16)])
    second = storage.write_trials(study_id, [f.trial for f in opt.run_batch(16)])
    assert storage.trial_ids_after(study_id, -1) == [i for i, _ in first + second]
    assert storage.trial_ids_after(study_id, first[-1][0]) == [i for i, _ in second]
    trials = storage.read_trials(study_id)
    assert any(not feasible(t) and t.values[0] > -1e11 for t in trials), "bounds bite"
    for direction in ("maximize", "minimize"):
        want = best_trial(trials, direction)
        assert want is not None
        got = storage.best_trial(study_id, direction, page=3)
        assert got is not None and got.number == want.number, direction
    impossible = storage.ensure_study(study_name("none"), problem.directions)
    strict = make_problem(bars, sma, bounds=(MetricBound("num_trades", min=10**9),))
    storage.write_trials(
        impossible, [f.trial for f in Optimizer(strict, "random", seed=1).run_batch(8)]
    )
    assert storage.best_trial(impossible, "maximize", page=3) is None
