from __future__ import annotations

import numpy as np
import pytest

from stratopt.data import Bars, check_dataset_id, sample_datasets, validate_bars
from stratopt.data.synthetic import (
    CRYPTO_REGIMES,
    Regime,
    generate_bars,
    generate_with_regimes,
    regime_path,
)

S = 1_000_000_000


def test_same_seed_same_bars_other_seed_other_bars() -> None:
    a = generate_bars(5_000, seed=42, timeframe="15m")
    assert a.equals(generate_bars(5_000, seed=42, timeframe="15m"))
    assert not np.array_equal(a.close, generate_bars(5_000, seed=43, timeframe="15m").close)


@pytest.mark.parametrize("seed", range(5))
def test_bars_are_valid_and_consistent(seed: int) -> None:
    bars = generate_bars(20_000, seed=seed, timeframe="1h", gap_volatility=0.5)
    validate_bars(bars)
    assert (bars.high >= np.maximum(bars.open, bars.close)).all()
    assert (bars.low <= np.minimum(bars.open, bars.close)).all()
    assert (bars.volume > 0).all()


def test_time_axis_and_start_price() -> None:
    bars = generate_bars(100, start="2024-01-01T00:00:00Z", timeframe="4h", start_price=50.0)
    assert bars.first_ts == 1_704_067_200 * S
    assert set(np.diff(bars.ts).tolist()) == {4 * 3600 * S}
    assert bars.open[0] == pytest.approx(50.0)
    # without gaps every bar opens at the previous close
    assert np.allclose(bars.open[1:], bars.close[:-1])


def test_weekdays_only_skips_weekends() -> None:
    bars = generate_bars(300, start="2024-01-05", timeframe="1d", weekdays_only=True)
    weekdays = bars.to_frame().index.day_of_week
    assert len(bars) == 300 and weekdays.max() <= 4
    assert bars.timeframe_seconds == 86_400


def test_price_decimals_round_to_tick() -> None:
    bars = generate_bars(2_000, price_decimals=2, start_price=3.0, seed=9)
    validate_bars(bars)
    for prices in (bars.open, bars.high, bars.low, bars.close):
        assert np.allclose(prices * 100, np.round(prices * 100))


def test_regimes_change_volatility() -> None:
    calm = Regime("calm", drift=0.0, volatility=0.1, mean_duration_days=30)
    wild = Regime("wild", drift=0.0, volatility=1.0, mean_duration_days=30)
    bars, path = generate_with_regimes(50_000, timeframe="1h", regimes=(calm, wild), seed=1)
    returns = np.diff(np.log(bars.close))
    state = path[1:]
    assert {0, 1} <= set(np.unique(path).tolist())
    ratio = returns[state == 1].std() / returns[state == 0].std()
    assert 8 < ratio < 12  # 1.0 vs 0.1 annualised volatility


def test_regime_path_follows_mean_durations() -> None:
    rng = np.random.default_rng(0)
    path = regime_path(200_000, CRYPTO_REGIMES, 3600, rng)
    switches = int(np.count_nonzero(np.diff(path)))
    mean_run_hours = len(path) / (switches + 1)
    shortest = min(r.mean_duration_days for r in CRYPTO_REGIMES) * 24
    longest = max(r.mean_duration_days for r in CRYPTO_REGIMES) * 24
    assert shortest < mean_run_hours < longest
    assert set(np.unique(path).tolist()) == set(range(len(CRYPTO_REGIMES)))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate_bars(0)
    with pytest.raises(ValueError):
        generate_bars(10, start_price=-1.0)


def test_sample_datasets() -> None:
    samples = sample_datasets()
    assert len({s.dataset_id for s in samples}) == len(samples) >= 2
    expected = {"SAMPLE-BTC": 3600, "SAMPLE-SPY": 86_400, "SAMPLE-ETH": 900}
    for sample in samples:
        check_dataset_id(sample.dataset_id)
        bars = sample.generate()
        assert isinstance(bars, Bars)
        validate_bars(bars)
        assert len(bars) == sample.n_bars
        assert bars.timeframe_seconds == expected[sample.dataset_id]
        assert bars.equals(sample.generate())
