"""Search spaces: overrides narrow the strategy's space, and bad overrides name their field."""

from __future__ import annotations

import itertools

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from stratopt.optimize.space import build_space, check_overrides
from stratopt.optimize.spec import ParamOverride
from stratopt.strategies import registry
from stratopt.strategies.base import StrategyType

P = "spec.search_space"


def fields(strategy: StrategyType, *overrides: ParamOverride) -> dict[str, str]:
    return {v.field: v.description for v in check_overrides(strategy, overrides, P)}


def test_default_space_mirrors_the_strategy_parameters(sma: StrategyType) -> None:
    space = build_space(sma, ())
    assert space.names == ("fast", "slow")
    assert space.distributions() == {
        "fast": IntDistribution(2, 200, log=True),
        "slow": IntDistribution(5, 400, log=True),
    }
    assert space.fixed == {}


def test_range_override_replaces_the_distribution_and_fixed_pins(sma: StrategyType) -> None:
    space = build_space(
        sma, (ParamOverride("fast", 5, 50, step=5), ParamOverride("slow", fixed=100))
    )
    assert space.distributions() == {"fast": IntDistribution(5, 50, step=5)}
    assert space.fixed == {"slow": 100}
    assert space.full_params({"fast": 10}) == {"fast": 10, "slow": 100}


def test_categorical_choices_and_float_ranges() -> None:
    strategy = next(s for s in registry.all() if any(p.kind == "categorical" for p in s.params))
    cat = next(p for p in strategy.params if p.kind == "categorical")
    space = build_space(strategy, (ParamOverride(cat.name, choices=cat.choices[:1]),))
    assert space.distributions()[cat.name] == CategoricalDistribution(cat.choices[:1])
    floats = [s for s in registry.all() if any(p.kind == "float" for p in s.params)]
    assert floats, "the library has float parameters"
    f = next(p for p in floats[0].params if p.kind == "float")
    assert f.low is not None and f.high is not None
    mid = (f.low + f.high) / 2
    d = build_space(floats[0], (ParamOverride(f.name, f.low, mid),)).distributions()[f.name]
    assert d == FloatDistribution(f.low, mid, step=f.step)
    logd = build_space(floats[0], (ParamOverride(f.name, f.low, mid, log=True),)).distributions()
    assert logd[f.name] == FloatDistribution(f.low, mid, log=True)


@pytest.mark.parametrize(
    ("override", "field", "phrase"),
    [
        (ParamOverride("fastest", 1, 2), f"{P}[0].name", "unknown parameter"),
        (ParamOverride("fast", 50, 10), f"{P}[0].min", "empty range"),
        (ParamOverride("fast", 1, 10), f"{P}[0].min", "bounds [2, 200]"),
        (ParamOverride("slow", 10, 900), f"{P}[0].max", "bounds [5, 400]"),
        (ParamOverride("fast", 2.5, 10), f"{P}[0].min", "whole numbers"),
        (ParamOverride("fast", 2, 10, step=0.5), f"{P}[0].step", "whole multiple"),
        (ParamOverride("fast", fixed=1000), f"{P}[0].fixed", "between"),
        (ParamOverride("fast", 2, 10, fixed=5), f"{P}[0].fixed", "no range"),
        (ParamOverride("fast", choices=("a",)), f"{P}[0].choices", "only categorical"),
        (ParamOverride("fast", 2, 10, step=2, log=True), f"{P}[0].log_scale", "cannot be combined"),
    ],
)
def test_bad_overrides_name_the_field(
    sma: StrategyType, override: ParamOverride, field: str, phrase: str
) -> None:
    problems = fields(sma, override)
    assert field in problems, problems
    assert phrase in problems[field]


def test_duplicate_and_all_fixed_are_rejected(sma: StrategyType) -> None:
    assert (
        "twice"
        in fields(sma, ParamOverride("fast", 2, 9), ParamOverride("fast", 2, 8))[f"{P}[1].name"]
    )
    everything = fields(sma, ParamOverride("fast", fixed=5), ParamOverride("slow", fixed=50))
    assert "nothing left to optimize" in everything[P]


def test_grid_values_cover_small_spaces_and_spread_large_ones(sma: StrategyType) -> None:
    small = build_space(
        sma, (ParamOverride("fast", 2, 10), ParamOverride("slow", 20, 200, step=20))
    )
    assert small.grid() == {"fast": list(range(2, 11)), "slow": list(range(20, 201, 20))}
    assert small.grid_size() == 9 * 10
    wide = build_space(sma, ()).grid()["slow"]
    assert wide[0] == 5 and wide[-1] == 400 and 10 <= len(wide) <= 20
    assert wide == sorted(set(wide))
    gaps = [b - a for a, b in itertools.pairwise(wide)]
    assert gaps[-1] > gaps[0], "a log-scaled parameter is gridded geometrically"


def test_searched_part_rejects_values_outside_the_space(sma: StrategyType) -> None:
    space = build_space(sma, (ParamOverride("fast", 5, 20),))
    assert space.searched_part({"fast": 10, "slow": 50}) == {"fast": 10, "slow": 50}
    assert space.searched_part({"fast": 30, "slow": 50}) is None


def test_grid_with_a_number_of_points_per_parameter(sma: StrategyType) -> None:
    """What a walk-forward backtest asks for: `points` values per parameter, any range."""
    grid = build_space(sma, ()).grid(5)
    assert grid == {"fast": [2, 6, 20, 63, 200], "slow": [5, 15, 45, 134, 400]}
    assert build_space(sma, ()).grid_size(5) == 25
    narrow = build_space(sma, (ParamOverride("fast", 2, 4), ParamOverride("slow", 20, 60)))
    assert narrow.grid(5) == {"fast": [2, 3, 4], "slow": [20, 30, 40, 50, 60]}
    rsi = build_space(registry.get("rsi_reversion"), ())
    values = rsi.grid(3)
    assert values["source"] == ["close", "hl2", "hlc3", "ohlc4"], "every choice is visited"
    assert values["oversold"] == [5.0, 25.0, 45.0]
    assert all(isinstance(v, int) for v in values["period"])
