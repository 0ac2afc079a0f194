"""A compiled `log_ndtr` for Optuna's TPE sampler.

Optuna computes the log of the normal CDF with `np.frompyfunc` over a Python function, one
call per element. For integer and log-scaled parameters the TPE acquisition evaluates it for
every candidate against every kernel, and it ends up costing about 75 % of a trial: 200 TPE
trials of a two-parameter strategy spend 1.3 s there. This module swaps in the same formula
compiled with numba (agreement to ~1e-13, checked by the tests), which makes TPE about four
times faster. `install()` is idempotent and does nothing on an Optuna without the hook
(the hook is private Optuna API, reached through `optuna_private`).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

from stratopt.optimize import optuna_private

_EPS = 2.220446049250313e-16
_SQRT2 = math.sqrt(2.0)
_LOG_2PI = math.log(2.0 * math.pi)
_installed = False


@njit(cache=True, nogil=True)
def _ndtr(a: float) -> float:
    x = a / _SQRT2
    if x < -1.0 / _SQRT2:
        return 0.5 * math.erfc(-x)
    if x < 1.0 / _SQRT2:
        return 0.5 + 0.5 * math.erf(x)
    return 1.0 - 0.5 * math.erfc(x)


@njit(cache=True, nogil=True)
def _log_ndtr_one(a: float) -> float:
    """Optuna's `_log_ndtr_single`: direct for a > -20, asymptotic series in the far tail."""
    if a > 6.0:
        return -_ndtr(-a)
    if a > -20.0:
        return math.log(_ndtr(a))
    log_lhs = -0.5 * a * a - math.log(-a) - 0.5 * _LOG_2PI
    last_total = 0.0
    rhs = 1.0
    numerator = 1.0
    denom_factor = 1.0
    denom_cons = 1.0 / (a * a)
    sign = 1.0
    i = 0
    while abs(last_total - rhs) > _EPS:
        i += 1
        last_total = rhs
        sign = -sign
        denom_factor *= denom_cons
        numerator *= 2 * i - 1
        rhs += sign * numerator * denom_factor
    return log_lhs + math.log(rhs)


@njit(cache=True, nogil=True)
def _log_ndtr_flat(a: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    out = np.empty(a.shape[0], dtype=np.float64)
    for i in range(a.shape[0]):
        out[i] = _log_ndtr_one(a[i])
    return out


def log_ndtr(a: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """log(Phi(a)) element-wise, any shape."""
    arr = np.asarray(a, dtype=np.float64)
    flat = np.ascontiguousarray(arr).reshape(-1)
    return _log_ndtr_flat(flat).reshape(arr.shape)


def install() -> bool:
    """Routes Optuna's TPE through the compiled function; True when the hook exists."""
    global _installed
    if _installed:
        return True
    if not optuna_private.has_log_ndtr_hook():  # pragma: no cover - a future Optuna
        return False
    optuna_private.set_log_ndtr(log_ndtr)
    _installed = True
    return True
