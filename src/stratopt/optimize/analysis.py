"""Reading a finished (or running) study: best trial, Pareto front, parameter importances.

Infeasible trials never win: "best" means best among the trials that satisfy every
constraint, because a result that breaks the user's own limits is not a result.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

CONSTRAINTS_KEY = "constraints"
METRICS_ATTR = "metrics"
"""The user attribute holding a trial's full metrics (written by optimize/optimizer.py)."""

IMPORTANCE_MAX_TRIALS = 1_000
"""fANOVA grows superlinearly; importances use the most recent trials beyond this many."""


def constraint_values(trial: FrozenTrial) -> list[float]:
    """Violations as Optuna stores them: `constraints:<name>` keys (Optuna 5's
    `Trial.set_constraint`), or one `constraints` list (older `constraints_func`)."""
    attrs = trial.system_attrs
    values = [float(v) for v in attrs.get(CONSTRAINTS_KEY, ())]
    prefix = f"{CONSTRAINTS_KEY}:"
    values += [float(v) for k, v in attrs.items() if k.startswith(prefix)]
    return values


def study_directions(directions: Sequence[str]) -> list[StudyDirection]:
    return [
        StudyDirection.MAXIMIZE if d == "maximize" else StudyDirection.MINIMIZE for d in directions
    ]


def feasible(trial: FrozenTrial) -> bool:
    return all(v <= 0 for v in constraint_values(trial))


def is_better(a: float, b: float | None, direction: str) -> bool:
    if b is None:
        return True
    return a > b if direction == "maximize" else a < b


def best_trial(trials: Sequence[FrozenTrial], direction: str) -> FrozenTrial | None:
    """The feasible trial with the best first objective; the earliest one wins ties."""
    best: FrozenTrial | None = None
    for t in trials:
        if t.state != TrialState.COMPLETE or not t.values or not feasible(t):
            continue
        if best is None or is_better(t.values[0], best.values[0], direction):
            best = t
    return best


def feasible_metric(trials: Sequence[FrozenTrial], metric: str) -> list[float]:
    """`metric` of every completed feasible trial (NaN where a trial did not record it)."""
    return [
        float(t.user_attrs.get(METRICS_ATTR, {}).get(metric, float("nan")))
        for t in trials
        if t.state == TrialState.COMPLETE and feasible(t)
    ]


def pareto_front(trials: Sequence[FrozenTrial], directions: Sequence[str]) -> list[FrozenTrial]:
    """Feasible completed trials that no other feasible trial dominates, by number."""
    signs = [1.0 if d == "maximize" else -1.0 for d in directions]
    pool = [t for t in trials if t.state == TrialState.COMPLETE and t.values and feasible(t)]
    scored = [(t, [s * v for s, v in zip(signs, t.values, strict=True)]) for t in pool]
    front = [t for t, a in scored if not any(_dominates(b, a) for _, b in scored)]
    return sorted(front, key=lambda t: t.number)


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(
        x > y for x, y in zip(a, b, strict=True)
    )


def importances(
    trials: Sequence[FrozenTrial], directions: Sequence[str], seed: int = 0
) -> dict[str, float]:
    """fANOVA importances of the searched parameters for the first objective."""
    pool = [t for t in trials if t.state == TrialState.COMPLETE and t.values and t.params]
    pool = pool[-IMPORTANCE_MAX_TRIALS:]
    if len(pool) < 2 or not pool[0].distributions:
        return {}
    names = set(pool[0].distributions)
    if len(names) == 1:
        return {next(iter(names)): 1.0}
    # fANOVA pulls in scikit-learn and scipy (~0.8 s): only readers of importances pay it,
    # not every worker that imports this module for `best_trial`.
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    study = optuna.create_study(directions=study_directions(directions))
    study.add_trials(pool)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = get_param_importances(
                study,
                evaluator=FanovaImportanceEvaluator(seed=seed),
                target=(lambda t: t.values[0]) if len(directions) > 1 else None,
            )
        except (ValueError, RuntimeError):
            return {}
    return {k: float(v) for k, v in result.items()}
