"""Small shared inputs: synthetic bars and the SMA crossover space."""

from __future__ import annotations

import pytest

from stratopt.data.bars import Bars
from stratopt.data.synthetic import generate_bars
from stratopt.engine import ExecutionOptions
from stratopt.optimize.evaluate import Problem
from stratopt.optimize.space import build_space
from stratopt.optimize.spec import MetricBound, Objective
from stratopt.strategies import registry
from stratopt.strategies.base import StrategyType


@pytest.fixture(scope="session")
def bars() -> Bars:
    return generate_bars(3_000, seed=11)


@pytest.fixture(scope="session")
def sma() -> StrategyType:
    return registry.get("sma_crossover")


def make_problem(
    bars: Bars,
    strategy: StrategyType,
    objectives: tuple[Objective, ...] = (Objective("sharpe", "maximize"),),
    bounds: tuple[MetricBound, ...] = (),
) -> Problem:
    return Problem(build_space(strategy, ()), bars, ExecutionOptions(), objectives, bounds)
