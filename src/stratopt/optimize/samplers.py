"""Optuna samplers by name, built fresh for every batch with a seed derived from the history.

Reseeding per batch from (job seed, trials so far, salt) is what makes seeded studies
reproducible across restarts: a resumed study asks its next batch with exactly the seed an
uninterrupted one would have used. Workers sharing an unseeded study use their id as salt,
so two workers with the same view of the history still propose different batches.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

from optuna.exceptions import ExperimentalWarning
from optuna.samplers import (
    BaseSampler,
    CmaEsSampler,
    GridSampler,
    NSGAIISampler,
    QMCSampler,
    RandomSampler,
    TPESampler,
)

from stratopt.optimize.space import SearchSpace

CONSTRAINT_AWARE = ("tpe", "nsga2")
"""Samplers that steer by the trials' constraint values (Optuna's `Trial.set_constraint`);
the others only see the objective values."""
_MASK = 2**32 - 1


class _BudgetedGridSampler(GridSampler):
    """A grid sampler that leaves stopping to the job's trial budget.

    Optuna's calls `study.stop()` once the grid is used up, which only works inside
    `study.optimize`; the jobs size a grid study's budget to the grid instead.
    """

    def after_trial(self, *args: Any, **kwargs: Any) -> None:
        return None


_EXTRAS = {"cmaes": "cmaes", "qmc": "scipy"}


def missing_dependency(name: str) -> str | None:
    """The package a sampler needs that is not installed, if any (CMA-ES, QMC)."""
    package = _EXTRAS.get(name)
    if package is None:
        return None
    try:
        importlib.import_module(package)
    except ImportError:
        return package
    return None


def default_sampler(objectives: int) -> str:
    return "nsga2" if objectives > 1 else "tpe"


def batch_seed(seed: int, trials_so_far: int, salt: int = 0) -> int:
    """A 32-bit seed that depends only on its inputs (no Python hash randomization)."""
    x = (seed & 0xFFFFFFFFFFFF) * 0x9E3779B1 + trials_so_far * 0x85EBCA6B + salt * 0xC2B2AE35
    x ^= x >> 16
    return (x * 0x27D4EB2F) & _MASK


def make_sampler(
    name: str,
    *,
    seed: int,
    base_seed: int,
    space: SearchSpace,
) -> BaseSampler:
    """The sampler for one batch. QMC and grid keep `base_seed`: their sequence is global."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        if name == "tpe":
            return TPESampler(seed=seed, constant_liar=True)
        if name == "nsga2":
            return NSGAIISampler(seed=seed)
        if name == "random":
            return RandomSampler(seed=seed)
        if name == "cmaes":
            return CmaEsSampler(seed=seed, warn_independent_sampling=False)
        if name == "qmc":
            return QMCSampler(
                seed=base_seed & _MASK, scramble=True, warn_independent_sampling=False
            )
        if name == "grid":
            return _BudgetedGridSampler(space.grid(), seed=base_seed & _MASK)  # type: ignore[arg-type]
    raise ValueError(f"unknown sampler {name!r}")
