"""The bar buffer: appends, growth, trimming past ``keep``, and contiguous views."""

from __future__ import annotations

import numpy as np
import pytest

from stratopt.live.history import BarHistory


def fill(history: BarHistory, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        history.append(i, i + 0.1, i + 0.2, i + 0.05, i + 0.15, float(i % 7))


def test_grows_and_keeps_every_bar_without_a_limit() -> None:
    history = BarHistory(capacity=16)
    fill(history, 1000)
    assert len(history) == history.total == 1000
    window = history.window()
    assert window.ts.tolist() == list(range(1000))
    np.testing.assert_array_equal(window.close, np.arange(1000) + 0.15)
    assert history.last_ts == 999


def test_keep_trims_old_bars_but_always_holds_the_last_keep() -> None:
    history = BarHistory(keep=100, capacity=16)  # capacity becomes 2 * keep
    for i in range(1000):
        fill(history, 1, start=i)
        assert len(history) >= min(i + 1, 100)
        recent = history.window(100)
        assert recent.ts.tolist() == list(range(max(0, i - 99), i + 1))
    assert history.total == 1000 and len(history) <= 200


def test_views_are_contiguous_float64_in_signal_order() -> None:
    history = BarHistory(keep=50)
    fill(history, 333)
    window = history.window(50)
    assert len(window) == 50
    for arr in window.prices():
        assert arr.dtype == np.float64 and arr.flags["C_CONTIGUOUS"]
    o, h, lo, _, v = window.prices()
    np.testing.assert_array_equal(o, np.arange(283, 333) + 0.1)
    np.testing.assert_array_equal(h, np.arange(283, 333) + 0.2)
    np.testing.assert_array_equal(lo, np.arange(283, 333) + 0.05)
    np.testing.assert_array_equal(v, (np.arange(283, 333) % 7).astype(float))
    assert len(history.window(10_000)) == len(history)


def test_drop_last_undoes_an_append() -> None:
    history = BarHistory()
    fill(history, 3)
    history.drop_last()
    assert history.last_ts == 1 and history.total == 2
    history.drop_last()
    history.drop_last()
    assert history.last_ts is None
    with pytest.raises(IndexError):
        history.drop_last()


def test_keep_must_be_positive() -> None:
    with pytest.raises(ValueError, match="keep"):
        BarHistory(keep=0)
