"""User type names and the definitions that travel with jobs and live runs."""

from __future__ import annotations

import json

import pytest

from stratopt.engine.options import ExecutionOptions
from stratopt.live.manager import RunSpec
from stratopt.optimize.spec import StudySpec
from stratopt.optimize.user_types import resolve
from stratopt.strategies import registry
from stratopt.strategies.user_types import TypeSource, definition_id, is_user_type, type_name

ID = "0123456789abcdef0123456789abcdef"
SOURCE = TypeSource(
    name=type_name(ID),
    source="long_entry: close > open\n",
    indicators={"mid": "input s: series\nreturn s\n"},
    display_name="mine",
    description="why not",
)


def test_names_are_ids_that_no_builtin_can_take() -> None:
    name = type_name(ID)
    assert name == f"user_{ID}" and is_user_type(name) and definition_id(name) == ID
    for bad in ("user_", "user_xyz", f"user_{ID.upper()}", f"user_{ID}0", "sma_crossover"):
        assert not is_user_type(bad) and definition_id(bad) == ""
    assert not any(is_user_type(n) for n in registry.names())


def test_a_user_type_name_without_its_definition_is_unknown() -> None:
    with pytest.raises(KeyError, match="needs its definition"):
        resolve(type_name(ID))
    assert resolve("sma_crossover", SOURCE) is registry.get("sma_crossover")


def test_sources_round_trip_through_json() -> None:
    assert TypeSource.from_dict(json.loads(json.dumps(SOURCE.to_dict()))) == SOURCE


def test_a_job_spec_carries_the_definition_to_any_worker() -> None:
    spec = StudySpec(strategy_type=SOURCE.name, dataset_id="d", definition=SOURCE.to_dict())
    back = StudySpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and TypeSource.from_dict(back.definition) == SOURCE
    # Specs stored before user types existed still load, as built-ins.
    old = {k: v for k, v in spec.to_dict().items() if k != "definition"}
    assert StudySpec.from_dict({**old, "strategy_type": "sma_crossover"}).definition == {}


def test_a_live_run_spec_carries_the_definitions_to_any_replica() -> None:
    spec = RunSpec(
        strategy_id="s",
        owner_id="o",
        strategy_name="n",
        feed_id="f",
        symbol="X",
        strategy_type=SOURCE.name,
        parameters={},
        execution=ExecutionOptions(),
        definitions={SOURCE.name: SOURCE.to_dict()},
    )
    back = RunSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert back.definitions == {SOURCE.name: SOURCE.to_dict()}
    old = {k: v for k, v in spec.to_json().items() if k != "definitions"}
    assert RunSpec.from_json(old).definitions == {}
