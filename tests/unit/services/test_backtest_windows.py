"""Walk-forward windows as stored with a backtest: JSON-safe, times in epoch nanoseconds."""

from __future__ import annotations

import json

import numpy as np

import stratopt.engine as engine
from stratopt.data import generate_bars
from stratopt.services.backtests import windows_json


def test_windows_are_json_with_bar_times_in_ns() -> None:
    bars = generate_bars(3_000, seed=5)
    report = engine.walk_forward(
        bars, "sma_crossover", {"fast": [5, 10], "slow": [30, 60]}, n_windows=3
    )
    rows = windows_json(report.windows)
    assert json.loads(json.dumps(rows)) == rows, "plain JSON values only"
    assert len(rows) == 3
    stamps = set(bars.ts.tolist())
    for row, (_, window) in zip(rows, report.windows.iterrows(), strict=True):
        for key in ("train_start", "train_end", "test_start", "test_end"):
            assert isinstance(row[key], int) and row[key] in stamps
            assert row[key] == window[key].value
        assert {row["fast"], row["slow"]} <= {5, 10, 30, 60}
        assert isinstance(row["oos_sharpe"], float)
    assert rows[0]["train_start"] == int(bars.ts[0])
    assert np.isfinite([r["is_sharpe"] for r in rows]).all()
