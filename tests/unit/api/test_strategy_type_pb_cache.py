"""Strategy types are converted to messages once, and the shared message stays correct."""

from __future__ import annotations

from dataclasses import replace

from stratopt.v1 import strategy_pb2 as pb

from stratopt.api.strategy_convert import _strategy_type_to_pb, strategy_type_to_pb
from stratopt.strategies import registry


def test_each_type_is_converted_once_and_matches_a_fresh_conversion() -> None:
    for t in registry.all():
        first = strategy_type_to_pb(t)
        assert strategy_type_to_pb(t) is first
        assert first == _strategy_type_to_pb(t)


def test_an_equal_but_distinct_type_gets_its_own_message() -> None:
    t = registry.all()[0]
    changed = replace(t, description=t.description + " (changed)")
    assert strategy_type_to_pb(changed).description.endswith("(changed)")
    assert not strategy_type_to_pb(t).description.endswith("(changed)")


def test_responses_copy_the_shared_message() -> None:
    t = registry.all()[0]
    response = pb.ListStrategyTypesResponse(strategy_types=[strategy_type_to_pb(t)])
    response.strategy_types[0].display_name = "edited"
    assert strategy_type_to_pb(t).display_name == t.display_name
