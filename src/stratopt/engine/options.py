"""Execution options: how a backtest (or a paper run) fills orders and sizes positions.

One frozen, validated value carries every execution setting from the API edge to the numba
kernels; the defaults and the bounds below are the only ones in the code base. Names and
units are the API's (`ExecutionOptions` in protos/stratopt/v1/common.proto).

Presence. A value remembers which fields were given (``explicit``): the keywords passed to
the constructor, or the keys of the mapping given to ``from_dict``. Giving a field its
default still counts, so ``ExecutionOptions(commission=0.0).over(stored)`` runs without
commission whatever ``stored`` says. ``None`` given for a field means its default, given
explicitly (for ``periods_per_year``, None and 0 both mean "infer from the bar spacing").

Forms, each made in one place:

* from the API: ``api/convert.py`` ``execution_from_pb`` (a proto field counts as given when
  it is non-zero or named in ``set_fields``);
* to the kernels: ``to_vector()``, the float64 vector laid out by ``simulator.CFG_*``;
* for storage (JSON columns, job specs): ``to_dict()`` / ``from_dict()``, the explicit
  fields only, e.g. ``{"commission": 0.001, "direction": "long"}``.

What responses show: a stored strategy (or a template) shows what its owner set, explicit
fields only, since that is their configuration and a later change of a default should
reach it; a backtest or an optimization job shows ``resolved()``, every field as the run
used it, and stores it that way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypedDict, Unpack

import numpy as np

from stratopt.engine.simulator import (
    CFG_CASH,
    CFG_COMMISSION,
    CFG_DIRECTION,
    CFG_FILL_ON_CLOSE,
    CFG_LENGTH,
    CFG_SIZE,
    CFG_SLIPPAGE,
    CFG_STOP_LOSS,
    CFG_TAKE_PROFIT,
    CFG_TRAILING,
    DIRECTIONS,
)

Direction = Literal["long", "short", "both"]

# name: (low, high, low inclusive); the high end is always inclusive.
BOUNDS: Mapping[str, tuple[float, float, bool]] = {
    "initial_cash": (0.0, 1e12, False),
    "position_size": (0.0, 1.0, False),
    "commission": (0.0, 0.1, True),
    "slippage": (0.0, 0.1, True),
    "stop_loss": (0.0, 0.99, True),
    "take_profit": (0.0, 100.0, True),
    "trailing_stop": (0.0, 0.99, True),
    "periods_per_year": (0.0, 1e7, True),
}


class OptionValues(TypedDict, total=False):
    """Keyword arguments of ExecutionOptions (None: the field's default, given explicitly)."""

    initial_cash: float | None
    position_size: float | None
    direction: Direction | None
    fill_on_close: bool | None
    commission: float | None
    slippage: float | None
    stop_loss: float | None
    take_profit: float | None
    trailing_stop: float | None
    periods_per_year: float | None


class InvalidExecutionOptions(ValueError):
    """Out-of-range or unknown options; ``violations`` are (field, message) pairs."""

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        self.violations = tuple(violations)
        super().__init__(
            "invalid execution options: " + "; ".join(f"{f} {m}" for f, m in self.violations)
        )


@dataclass(frozen=True, init=False)
class ExecutionOptions:
    """Execution assumptions of one run (semantics in engine/simulator.py and the README).

    Construct with keywords (``ExecutionOptions(commission=0.001)``) or ``from_dict``; both
    validate and raise InvalidExecutionOptions (a ValueError) naming every bad field.
    """

    initial_cash: float = 10_000.0
    # Fraction of equity committed per position, commission included.
    position_size: float = 1.0
    direction: Direction = "long"
    # Fill at the close of the signal bar instead of the next open.
    fill_on_close: bool = False
    # Fraction of traded notional per side.
    commission: float = 0.0
    # Fraction of price, always against the trader.
    slippage: float = 0.0
    # Fractions of the entry price (trailing: of the best price since entry); 0 = off.
    stop_loss: float = 0.0
    take_profit: float = 0.0
    trailing_stop: float = 0.0
    # None = inferred from the bar spacing.
    periods_per_year: float | None = None
    # The fields that were given (see the module docstring).
    explicit: frozenset[str] = field(default=frozenset(), init=False)

    def __init__(self, **values: Unpack[OptionValues]) -> None:
        found = self.problems(values)
        if found:
            raise InvalidExecutionOptions(found)
        given: Mapping[str, Any] = values
        for name, default in DEFAULTS.items():
            value = given.get(name)
            if value is None:
                value = default
            elif name == "direction":
                pass
            elif name == "fill_on_close":
                value = bool(value)
            elif name == "periods_per_year":
                value = float(value) or None
            else:
                value = float(value)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "explicit", frozenset(given))

    @staticmethod
    def problems(values: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Every problem of a mapping of options, as (field, message) pairs for users."""
        found: list[tuple[str, str]] = []
        for name, value in values.items():
            if name not in DEFAULTS:
                found.append((name, f"is not an execution option; one of {', '.join(DEFAULTS)}"))
            elif value is None:
                continue
            elif name == "direction":
                if value not in DIRECTIONS:
                    found.append((name, f"must be one of {', '.join(DIRECTIONS)}"))
            elif name == "fill_on_close":
                if not isinstance(value, bool | np.bool_):
                    found.append((name, "must be true or false"))
            elif isinstance(value, bool) or not isinstance(
                value, int | float | np.integer | np.floating
            ):
                found.append((name, "must be a number"))
            else:
                lo, hi, lo_inclusive = BOUNDS[name]
                x = float(value)
                if not (math.isfinite(x) and (x >= lo if lo_inclusive else x > lo) and x <= hi):
                    found.append(
                        (name, f"must be in {'[' if lo_inclusive else '('}{lo:g}, {hi:g}]")
                    )
        return found

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ExecutionOptions:
        """Options from a mapping (storage, JSON); its keys become the explicit fields."""
        return cls(**values)

    def given(self) -> dict[str, Any]:
        """The explicit fields and their values."""
        return {name: getattr(self, name) for name in DEFAULTS if name in self.explicit}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form for storage: explicit fields only ("infer" periods_per_year is 0)."""
        out = self.given()
        if "periods_per_year" in out:
            out["periods_per_year"] = out["periods_per_year"] or 0.0
        return out

    def over(self, base: ExecutionOptions) -> ExecutionOptions:
        """These options merged over ``base``: fields given here win, the rest come from base."""
        return ExecutionOptions(**{**base.given(), **self.given()})

    def replace(self, **changes: Unpack[OptionValues]) -> ExecutionOptions:
        """A copy with ``changes`` applied (and counted as given)."""
        return ExecutionOptions(**{**self.given(), **changes})

    def resolved(self) -> ExecutionOptions:
        """The same values with every field explicit: what a run used, for echoing and storing."""
        return ExecutionOptions(**{name: getattr(self, name) for name in DEFAULTS})

    def to_vector(self) -> np.ndarray:
        """Pack the settings into the float64 vector the numba kernels take."""
        vec = np.empty(CFG_LENGTH, dtype=np.float64)
        vec[CFG_CASH] = self.initial_cash
        vec[CFG_COMMISSION] = self.commission
        vec[CFG_SLIPPAGE] = self.slippage
        vec[CFG_SIZE] = self.position_size
        vec[CFG_DIRECTION] = DIRECTIONS[self.direction]
        vec[CFG_FILL_ON_CLOSE] = 1.0 if self.fill_on_close else 0.0
        vec[CFG_STOP_LOSS] = self.stop_loss
        vec[CFG_TAKE_PROFIT] = self.take_profit
        vec[CFG_TRAILING] = self.trailing_stop
        return vec


DEFAULTS: Mapping[str, Any] = {
    f.name: f.default for f in fields(ExecutionOptions) if f.name != "explicit"
}
"""Every option's default, read from the class above (the one place they are written)."""

FIELDS: tuple[str, ...] = tuple(DEFAULTS)
"""Option names, in the proto's field order."""
