from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pytest

F64 = npt.NDArray[np.float64]


class Arrays(NamedTuple):
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    def prefix(self, stop: int) -> Arrays:
        return Arrays(*(np.ascontiguousarray(a[:stop]) for a in self))


def make_bars(seed: int, n: int) -> Arrays:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.012, n)))
    open_ = np.concatenate(([close[0]], close[:-1])) * (1 + rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0.0, 0.008, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0.0, 0.008, n))
    return Arrays(open_, high, low, close, rng.uniform(100.0, 1000.0, n))


def from_close(close: Sequence[float]) -> Arrays:
    """Bars whose open/high/low sit on the close, for hand-checked cases."""
    c = np.asarray(close, dtype=np.float64)
    return Arrays(c.copy(), c.copy(), c.copy(), c, np.ones_like(c))


@pytest.fixture(scope="session")
def bars() -> Arrays:
    return make_bars(7, 1500)
