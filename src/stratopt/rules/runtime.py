"""Scalar helpers the generated signal functions call (inlined by numba)."""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def div(a: float, b: float) -> float:
    """`a / b`, NaN when `b` is zero: Pine's division by zero gives na, not infinity."""
    if b == 0:
        return np.nan
    return a / b


@njit(cache=True, nogil=True)
def nz(x: float, replacement: float) -> float:
    """Pine's `nz(x, y)`: x, or y where x is NaN."""
    if np.isnan(x):
        return replacement
    return x
