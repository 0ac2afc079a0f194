"""Execution options at the API edge: proto -> ExecutionOptions once, then whole to the kernel."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from stratopt.v1 import common_pb2 as c

from stratopt import engine
from stratopt.api.convert import execution_from_pb, execution_to_pb
from stratopt.data.synthetic import generate_bars
from stratopt.engine import ExecutionOptions, simulator
from stratopt.engine import api as engine_api
from stratopt.engine.options import FIELDS
from stratopt.errors import FieldViolation, InvalidArgument
from stratopt.strategies import registry


def test_only_non_zero_or_named_fields_count_as_set() -> None:
    msg = c.ExecutionOptions(
        commission=0.0,
        stop_loss=0.0,
        take_profit=0.2,
        fill_on_close=False,
        set_fields=FieldMask(paths=["commission", "stop_loss", "fill_on_close"]),
    )
    options = execution_from_pb(msg, "execution")
    assert isinstance(options, ExecutionOptions)
    assert options.given() == {
        "fill_on_close": False,
        "commission": 0.0,
        "stop_loss": 0.0,
        "take_profit": 0.2,
    }
    assert execution_from_pb(c.ExecutionOptions(), "execution").explicit == frozenset()


def test_a_named_unspecified_direction_means_the_default() -> None:
    msg = c.ExecutionOptions(set_fields=FieldMask(paths=["direction"]))
    options = execution_from_pb(msg, "execution")
    assert options.explicit == {"direction"} and options.direction == "long"


def test_problems_become_field_violations_under_the_prefix() -> None:
    msg = c.ExecutionOptions(
        commission=0.5,
        position_size=2.0,
        direction=7,  # type: ignore[arg-type]
        set_fields=FieldMask(paths=["leverage"]),
    )
    with pytest.raises(InvalidArgument) as e:
        execution_from_pb(msg, "strategy.execution")
    fields = {v.field for v in e.value.violations}
    assert fields == {
        "strategy.execution.set_fields",
        "strategy.execution.direction",
        "strategy.execution.commission",
        "strategy.execution.position_size",
    }
    collected: list[FieldViolation] = []
    fallback = execution_from_pb(msg, "execution", collected)
    assert fallback == ExecutionOptions() and len(collected) == 4


def test_responses_list_every_given_field_so_zeros_round_trip() -> None:
    resolved = ExecutionOptions(commission=0.0, direction="both").resolved()
    msg = execution_to_pb(resolved)
    assert list(msg.set_fields.paths) == list(FIELDS)
    assert msg.direction == c.TRADE_DIRECTION_BOTH and msg.initial_cash == 10_000.0
    assert execution_from_pb(msg, "execution") == resolved
    own = execution_to_pb(ExecutionOptions(stop_loss=0.05))
    assert list(own.set_fields.paths) == ["stop_loss"] and own.direction == 0


def test_a_commission_changes_form_twice_on_its_way_to_the_kernel(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """proto -> ExecutionOptions (the edge), ExecutionOptions -> config vector (the engine)."""
    options = execution_from_pb(c.ExecutionOptions(commission=0.0015), "execution")
    assert type(options) is ExecutionOptions and options.commission == 0.0015

    packed: list[np.ndarray] = []
    to_vector = ExecutionOptions.to_vector

    def spy_to_vector(self: ExecutionOptions) -> np.ndarray:
        packed.append(to_vector(self))
        return packed[-1]

    kernel_cfg: list[np.ndarray] = []
    kernel = simulator.simulate_into

    def spy_kernel(*args: Any) -> int:
        kernel_cfg.append(args[5])
        return int(kernel(*args))

    monkeypatch.setattr(ExecutionOptions, "to_vector", spy_to_vector)
    for module in (simulator, engine_api):  # wherever the engine looks the kernel up
        if getattr(module, "simulate_into", None) is kernel:
            monkeypatch.setattr(module, "simulate_into", spy_kernel)
    sma = registry.get("sma_crossover")
    result = engine.backtest(generate_bars(500, seed=1), sma, None, options)

    assert len(packed) == 1 and len(kernel_cfg) == 1
    assert kernel_cfg[0] is packed[0], "the kernel gets the vector to_vector made, untouched"
    assert kernel_cfg[0][simulator.CFG_COMMISSION] == 0.0015
    assert result.config is options
