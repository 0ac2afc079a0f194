"""The 14 built-in types written in the rule language trade exactly like their kernels.

Exactly: the same int8 target on every bar (hence the same trades, which the backtest
comparison shows too), on the two datasets of the Pine cross-check (daily bars, and
weekday bars with overnight gaps), for the defaults and random valid parameter sets.
"""

from __future__ import annotations

import zlib
from functools import cache

import numpy as np
import pytest

from stratopt.data.bars import Bars
from stratopt.engine import ExecutionOptions, backtest
from stratopt.engine.simulator import trades_from_buffer
from stratopt.rules import compile_strategy, corpus
from stratopt.strategies import registry
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import ParamValue
from tests.unit.export.test_pine_pynecore import DATASETS, dataset

N_RANDOM = 3


@cache
def compiled(name: str) -> StrategyType:
    return compile_strategy(corpus.text(name), name=name)


def prices(bars: Bars) -> list[np.ndarray]:
    return [
        np.ascontiguousarray(getattr(bars, f)) for f in ("open", "high", "low", "close", "volume")
    ]


def random_params(stype: StrategyType, rng: np.random.Generator) -> dict[str, ParamValue]:
    """A valid parameter set drawn uniformly from the space (rejecting constraint misses)."""
    for _ in range(1000):
        values: dict[str, ParamValue] = {}
        for p in stype.params:
            if p.kind == "categorical":
                values[p.name] = str(rng.choice(p.choices))
                continue
            assert p.low is not None and p.high is not None
            if p.step:
                k = int(rng.integers(0, round((p.high - p.low) / p.step) + 1))
                value = p.low + k * p.step
            else:
                value = float(rng.uniform(p.low, p.high))
            values[p.name] = round(value) if p.kind == "int" else round(value, 10)
        if not stype.validate(values):
            return values
    raise AssertionError(f"no valid random parameters for {stype.name}")


def test_the_corpus_covers_every_builtin() -> None:
    assert corpus.names() == registry.names()


@pytest.mark.parametrize("name", corpus.names())
def test_same_parameter_space(name: str) -> None:
    builtin, rules = registry.get(name), compiled(name)
    assert rules.params == builtin.params
    assert rules.constraints == builtin.constraints


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("name", corpus.names())
def test_same_targets_as_the_kernel(name: str, data: str) -> None:
    builtin, rules = registry.get(name), compiled(name)
    arrays = prices(dataset(data))
    rng = np.random.default_rng(zlib.crc32(f"{name}/{data}".encode()))
    sets = [builtin.defaults()] + [random_params(builtin, rng) for _ in range(N_RANDOM)]
    active = 0
    for params in sets:
        vec = builtin.to_vector(params)
        want = builtin.signal(*arrays, vec)
        got = rules.signal(*arrays, vec)
        assert got.dtype == np.int8 and got.flags.c_contiguous
        diff = np.flatnonzero(got != want)
        assert diff.size == 0, f"{name} {params}: first differing bars {diff[:5]}"
        active += int(np.count_nonzero(want))
    assert active > 0, "the comparison needs bars with a position"


@pytest.mark.parametrize("data", DATASETS)
@pytest.mark.parametrize("name", corpus.names())
def test_same_trades_as_the_kernel(name: str, data: str) -> None:
    options = ExecutionOptions(commission=0.001, direction="both", stop_loss=0.05)
    bars = dataset(data)
    want = trades_from_buffer(backtest(bars, name, None, options).trade_rows)
    got = trades_from_buffer(backtest(bars, compiled(name), None, options).trade_rows)
    assert len(want) >= 2
    assert np.array_equal(got, want)
