"""Combining several target-position arrays into one: the rule every ensemble trades by.

Pure numpy on whole target arrays, kept in the engine so that every layer above (the
``strategies.ensemble.Ensemble`` value that ``engine.backtest`` runs, paper trading) uses
this one definition.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

ENSEMBLE_METHODS: tuple[str, ...] = ("weighted_vote", "unanimous", "majority")
"""How member targets combine; see `combine`."""


def combine(
    targets: Sequence[npt.NDArray[np.int8]], weights: Sequence[float], method: str
) -> npt.NDArray[np.int8]:
    """Weighted vote: sign of the weighted sum; majority: more than half agree; unanimous: all."""
    stack = np.vstack([t.astype(np.float64) for t in targets])
    w = np.asarray(weights, dtype=np.float64)[:, None]
    if method == "weighted_vote":
        return np.sign((stack * w).sum(axis=0)).astype(np.int8)
    n = stack.shape[0]
    longs, shorts = (stack > 0).sum(axis=0), (stack < 0).sum(axis=0)
    need = n if method == "unanimous" else n // 2 + 1
    out = np.zeros(stack.shape[1], dtype=np.int8)
    out[longs >= need] = 1
    out[shorts >= need] = -1
    return out
