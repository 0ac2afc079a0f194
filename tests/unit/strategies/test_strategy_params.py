"""Parameter specs and validation: every kind of violation is reported on the right field."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stratopt.strategies import (
    Constraint,
    ParamSpec,
    StrategyType,
    Violation,
    choice_param,
    float_param,
    int_param,
)
from stratopt.strategies.library.sma_crossover import signal as sma_signal


def make_strategy(**overrides: object) -> StrategyType:
    fields: dict[str, object] = {
        "name": "toy_strategy",
        "display_name": "Toy",
        "category": "trend_following",
        "risk_level": "low",
        "description": "A toy.",
        "params": (
            int_param("fast", 2, 50, 10),
            int_param("slow", 10, 200, 30, step=10),
            float_param("mult", 0.5, 4.0, 2.0, step=0.1),
            choice_param("source", ("close", "hl2"), "close"),
        ),
        "constraints": (Constraint("fast", "<", "slow"),),
        "signal": sma_signal,
        "pine": "",
    }
    fields.update(overrides)
    return StrategyType(**fields)  # type: ignore[arg-type]


TOY = make_strategy()


def fields_of(violations: list[Violation]) -> list[str]:
    return [v.field for v in violations]


def test_defaults_are_valid_and_complete() -> None:
    assert TOY.defaults() == {"fast": 10, "slow": 30, "mult": 2.0, "source": "close"}
    assert TOY.validate(TOY.defaults()) == []
    assert TOY.validate({}) == []


def test_unknown_parameter() -> None:
    (v,) = TOY.validate({"fastt": 5})
    assert v.field == "parameters.fastt"
    assert "unknown" in v.description


@pytest.mark.parametrize(
    ("params", "field", "fragment"),
    [
        ({"fast": 5.5}, "parameters.fast", "integer"),
        ({"fast": "5"}, "parameters.fast", "integer"),
        ({"fast": True}, "parameters.fast", "integer"),
        ({"mult": "2"}, "parameters.mult", "number"),
        ({"mult": math.nan}, "parameters.mult", "number"),
        ({"mult": math.inf}, "parameters.mult", "number"),
        ({"source": 1}, "parameters.source", "one of"),
        ({"source": "ohlc4"}, "parameters.source", "one of"),
    ],
)
def test_wrong_type_or_choice(params: dict[str, object], field: str, fragment: str) -> None:
    (v,) = TOY.validate(params)
    assert v.field == field
    assert fragment in v.description


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"fast": 1}, "parameters.fast"),
        ({"fast": 51}, "parameters.fast"),
        ({"mult": 0.49}, "parameters.mult"),
        ({"mult": 4.01}, "parameters.mult"),
    ],
)
def test_out_of_bounds(params: dict[str, object], field: str) -> None:
    (v,) = TOY.validate(params)
    assert v.field == field
    assert "between" in v.description


def test_bounds_are_inclusive() -> None:
    assert TOY.validate({"fast": 2, "slow": 200, "mult": 4.0}) == []


def test_int_step_alignment_is_enforced() -> None:
    (v,) = TOY.validate({"slow": 35})
    assert v.field == "parameters.slow"
    assert "multiple of 10" in v.description
    assert TOY.validate({"slow": 40}) == []


def test_float_step_is_a_sampling_hint_not_a_rule() -> None:
    assert TOY.validate({"mult": 2.05}) == []


def test_numpy_scalars_are_accepted() -> None:
    params = {"fast": np.int64(5), "slow": np.float64(40.0), "mult": np.float32(1.5)}
    assert TOY.validate(params) == []
    assert TOY.resolve(params) == {"fast": 5, "slow": 40, "mult": 1.5, "source": "close"}
    (v,) = TOY.validate({"fast": np.bool_(True)})
    assert v.field == "parameters.fast"


def test_integral_float_is_accepted_for_int() -> None:
    assert TOY.validate({"fast": 12.0}) == []
    assert TOY.resolve({"fast": 12.0})["fast"] == 12
    assert isinstance(TOY.resolve({"fast": 12.0})["fast"], int)


def test_constraint_violation_names_the_left_field() -> None:
    (v,) = TOY.validate({"fast": 40, "slow": 30})
    assert v.field == "parameters.fast"
    assert "< slow" in v.description
    (v,) = TOY.validate({"fast": 30})  # slow takes its default, 30
    assert v.field == "parameters.fast"


def test_constraint_skipped_when_an_operand_is_already_invalid() -> None:
    assert fields_of(TOY.validate({"fast": 100, "slow": 30})) == ["parameters.fast"]


def test_all_violations_reported_together() -> None:
    got = TOY.validate({"fast": 1.5, "mult": 9.0, "source": "x", "bogus": 1})
    assert sorted(fields_of(got)) == [
        "parameters.bogus",
        "parameters.fast",
        "parameters.mult",
        "parameters.source",
    ]


def test_violation_unpacks_as_a_pair() -> None:
    field, description = TOY.validate({"bogus": 1})[0]
    assert field == "parameters.bogus"
    assert description


def test_vector_round_trip() -> None:
    params = {"fast": 7, "slow": 120, "mult": 1.25, "source": "hl2"}
    vec = TOY.to_vector(params)
    assert vec.dtype == np.float64
    np.testing.assert_array_equal(vec, [7.0, 120.0, 1.25, 1.0])
    assert TOY.from_vector(vec) == params


def test_to_vector_fills_defaults_and_rejects_invalid() -> None:
    np.testing.assert_array_equal(TOY.to_vector({"fast": 3}), [3.0, 30.0, 2.0, 0.0])
    with pytest.raises(ValueError, match=r"parameters\.fast"):
        TOY.to_vector({"fast": 99})


def test_from_vector_rejects_wrong_length() -> None:
    with pytest.raises(ValueError):
        TOY.from_vector([1.0, 2.0])


@pytest.mark.parametrize(
    "build",
    [
        lambda: int_param("Bad Name", 1, 5, 2),
        lambda: int_param("x", 5, 1, 2),
        lambda: int_param("x", 1, 5, 9),
        lambda: int_param("x", 0, 5, 2, log=True),
        lambda: int_param("x", 1, 50, 2, step=2, log=True),
        lambda: int_param("x", 0, 10, 3, step=2),
        lambda: float_param("x", 1.0, 5.0, 2.0, step=0.5, log=True),
        lambda: float_param("x", 0.5, 4.0, 2.0, step=0.3),
        lambda: int_param("x", 10, 101, 20, step=5),
        lambda: choice_param("x", ("a", "a"), "a"),
        lambda: choice_param("x", ("a", "b"), "c"),
        lambda: ParamSpec(name="x", kind="complex", low=0, high=2, default=1),  # type: ignore[arg-type]
    ],
)
def test_inconsistent_specs_are_rejected_at_definition(build: object) -> None:
    with pytest.raises(ValueError):
        build()  # type: ignore[operator]


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": "NotSnake"},
        {"category": "arbitrage"},
        {"risk_level": "extreme"},
        {"params": (int_param("a", 1, 5, 2), int_param("a", 1, 5, 3))},
        {"constraints": (Constraint("fast", "<", "nope"),)},
        {"constraints": (Constraint("fast", "<", "source"),)},
        {"constraints": (Constraint("slow", "<", "fast"),)},  # defaults violate it
    ],
)
def test_inconsistent_strategies_are_rejected_at_definition(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make_strategy(**overrides)


def test_unknown_constraint_operator_is_rejected() -> None:
    with pytest.raises(ValueError):
        Constraint("a", "!=", "b")  # type: ignore[arg-type]
