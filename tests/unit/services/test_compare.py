"""CompareStrategies' pure parts: ranking direction, bar returns, aligned correlations."""

from __future__ import annotations

import numpy as np
import pytest

from stratopt.engine.metrics import METRICS
from stratopt.errors import InvalidArgument
from stratopt.services.compare import (
    ComparisonSpec,
    _check,
    bar_returns,
    rank_order,
    return_correlations,
)


def test_rank_order_follows_the_metric_direction_and_keeps_ties_in_order() -> None:
    assert METRICS["sharpe"].direction == "maximize"
    assert rank_order([0.5, 2.0, 0.5, 1.0], "sharpe") == [1, 3, 0, 2]
    assert METRICS["max_drawdown"].direction == "minimize"
    assert rank_order([0.3, 0.1, 0.3, 0.2], "max_drawdown") == [1, 3, 0, 2]


def test_bar_returns_are_zero_after_the_account_dies() -> None:
    r = bar_returns(np.array([100.0, 110.0, 0.0, 0.0, 5.0]))
    np.testing.assert_allclose(r, [0.1, -1.0, 0.0, 0.0])


def test_correlations_match_numpy_on_common_timestamps() -> None:
    rng = np.random.default_rng(7)
    ts = np.arange(0, 200, dtype=np.int64) * 60
    a = 100 * np.cumprod(1 + rng.normal(0, 0.01, 200))
    b = 100 * np.cumprod(1 + rng.normal(0, 0.01, 200))
    # The second curve starts later and misses a bar: only the shared times count.
    keep = np.ones(200, dtype=bool)
    keep[:20] = False
    keep[100] = False
    m, common = return_correlations([(ts, a), (ts[keep], b[keep])])
    assert len(common) == keep.sum()
    ra = np.diff(a[keep]) / a[keep][:-1]
    rb = np.diff(b[keep]) / b[keep][:-1]
    assert m[0, 1] == m[1, 0] == pytest.approx(np.corrcoef(ra, rb)[0, 1], abs=1e-12)
    assert m[0, 0] == m[1, 1] == 1.0


def test_a_flat_curve_correlates_zero_not_nan() -> None:
    ts = np.arange(50, dtype=np.int64)
    flat = np.full(50, 1000.0)
    moving = 1000.0 + np.sin(np.arange(50))
    m, _ = return_correlations([(ts, flat), (ts, moving), (ts, moving * 2)])
    assert np.isfinite(m).all()
    np.testing.assert_array_equal(np.diag(m), 1.0)
    assert m[0, 1] == m[1, 0] == m[0, 2] == 0.0
    assert m[1, 2] == pytest.approx(1.0)


def test_too_few_common_bars_give_the_identity() -> None:
    m, common = return_correlations(
        [(np.array([1, 2, 3]), np.ones(3)), (np.array([3, 4, 5]), np.ones(3))]
    )
    assert len(common) == 1
    np.testing.assert_array_equal(m, np.eye(2))


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        (ComparisonSpec(strategy_ids=("a",), dataset_id="d"), "strategy_ids"),
        (ComparisonSpec(strategy_ids=tuple("abcdef"), backtest_ids=tuple("ghijk")), "strategy_ids"),
        (ComparisonSpec(strategy_ids=("a", "b"), dataset_id="d", rank_by="nope"), "rank_by"),
        (ComparisonSpec(strategy_ids=("a", "b")), "dataset_id"),
        (ComparisonSpec(strategy_ids=("a", "a"), dataset_id="d"), "strategy_ids[1]"),
        (ComparisonSpec(strategy_ids=("a", ""), dataset_id="d"), "strategy_ids[1]"),
    ],
)
def test_bad_specs(spec: ComparisonSpec, field: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        _check(spec, spec.rank_by or "sharpe")
    assert field in {v.field for v in e.value.violations}
