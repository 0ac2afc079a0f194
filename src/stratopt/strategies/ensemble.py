"""Ensembles: member strategies' target positions combined into one, as a strategy value.

An `Ensemble` has what the engine needs from a strategy (a ``signal`` function and
``to_vector()``), so an ensemble backtest is an ordinary ``engine.backtest`` call: the
signal runs every member's numba signal with the member's own parameters and merges the
targets with `combine`. The ensemble itself has no parameters (its vector is empty);
members carry theirs, resolved against their own spaces when the ensemble is built.

The combination rules themselves are ``stratopt.engine.ensemble.combine`` (re-exported
here), the one definition for backtests and paper trading alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from stratopt.engine.ensemble import ENSEMBLE_METHODS, combine
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import ParamValue, Violation, field_path

__all__ = ["ENSEMBLE_METHODS", "ENSEMBLE_TYPE", "Ensemble", "EnsembleMember", "combine"]

ENSEMBLE_TYPE = "ensemble"
"""The strategy type name under which ensembles are stored and reported."""

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]


@dataclass(frozen=True)
class EnsembleMember:
    """One member: a strategy type, its parameters (defaults fill the rest) and its weight."""

    strategy: StrategyType
    params: Mapping[str, Any] = field(default_factory=dict)
    weight: float = 1.0


@dataclass(frozen=True)
class Ensemble:
    """Several strategies trading as one; pass it to ``engine.backtest`` like a StrategyType.

    Raises ValueError when there are no members, the method is unknown, or a member's
    parameters are invalid for its strategy.
    """

    members: tuple[EnsembleMember, ...]
    method: str = "weighted_vote"
    name: str = ENSEMBLE_TYPE
    _vectors: tuple[F64, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("an ensemble needs at least one member")
        if self.method not in ENSEMBLE_METHODS:
            raise ValueError(f"unknown ensemble method {self.method!r}; one of {ENSEMBLE_METHODS}")
        vectors = tuple(
            np.ascontiguousarray(m.strategy.to_vector(m.params), dtype=np.float64)
            for m in self.members
        )
        object.__setattr__(self, "_vectors", vectors)

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(float(m.weight) for m in self.members)

    def signal(self, open_: F64, high: F64, low: F64, close: F64, volume: F64, params: F64) -> I8:
        """Every member's targets on these bars, combined (``params`` is the empty vector)."""
        targets = [
            m.strategy.signal(open_, high, low, close, volume, vec)
            for m, vec in zip(self.members, self._vectors, strict=True)
        ]
        return combine(targets, self.weights, self.method)

    def defaults(self) -> dict[str, ParamValue]:
        return {}

    def validate(self, params: Mapping[str, Any]) -> list[Violation]:
        """An ensemble takes no parameters of its own: its members carry theirs."""
        return [
            Violation(field_path(name), "an ensemble has no parameters; set them on its members")
            for name in params
        ]

    def to_vector(self, params: Mapping[str, Any] | None = None) -> F64:
        problems = self.validate(params or {})
        if problems:
            raise ValueError("; ".join(f"{v.field}: {v.description}" for v in problems))
        return np.empty(0, dtype=np.float64)
