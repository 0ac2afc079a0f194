"""Compiles (or loads from numba's cache) every kernel a request could need, off the loop.

Without it the first backtest after a start pays JIT compilation (seconds per strategy);
with a warm on-disk cache this takes well under a second per strategy.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from stratopt import engine
from stratopt.strategies import registry

log = logging.getLogger("stratopt.server.warmup")


def warm_up() -> float:
    """Runs one tiny backtest per strategy type; returns the seconds it took."""
    start = time.perf_counter()
    n = 300
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    ts = (1_600_000_000 + np.arange(n, dtype=np.int64) * 3_600) * 10**9
    import pandas as pd

    frame = pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1.0},
        index=pd.to_datetime(ts, unit="ns", utc=True),
    )
    exits = engine.ExecutionOptions(stop_loss=0.05, take_profit=0.1, trailing_stop=0.05)
    for stype in registry.all():
        engine.backtest(frame, stype, None, exits)
    seconds = time.perf_counter() - start
    log.info(
        "engine ready", extra={"seconds": round(seconds, 2), "strategies": len(registry.all())}
    )
    return seconds
