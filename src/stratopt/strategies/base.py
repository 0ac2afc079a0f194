"""`StrategyType`: a strategy as data (parameter space, metadata, Pine template) plus a kernel.

There is no class hierarchy to subclass: a new strategy is one module that builds one
`StrategyType` around a numba signal function (see `strategies/library/`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from stratopt.strategies.params import (
    Constraint,
    ParamSpec,
    ParamValue,
    Violation,
    field_path,
)
from stratopt.strategies.pine import PineSettings, number_literal, render, string_literal

Category = Literal["trend_following", "mean_reversion", "breakout", "momentum", "volatility"]
RiskLevel = Literal["low", "medium", "high"]
CATEGORIES: tuple[Category, ...] = (
    "trend_following",
    "mean_reversion",
    "breakout",
    "momentum",
    "volatility",
)
RISK_LEVELS: tuple[RiskLevel, ...] = ("low", "medium", "high")

SignalFn = Callable[..., npt.NDArray[np.int8]]
"""`signal(open, high, low, close, volume, params) -> int8[n]`, a numba dispatcher."""

_SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


@dataclass(frozen=True, kw_only=True)
class StrategyType:
    """A strategy type; see docs/INTERFACES.md ("Strategy registry") for the contract.

    `pine` is a `str.format` template of a complete Pine Script v6 strategy (see
    `strategies/pine.py`); `render_pine()` fills it.
    """

    name: str
    display_name: str
    category: Category
    risk_level: RiskLevel
    description: str
    params: tuple[ParamSpec, ...]
    constraints: tuple[Constraint, ...] = ()
    signal: SignalFn = field(repr=False)
    pine: str = field(repr=False)

    def __post_init__(self) -> None:
        problem = self._definition_problem()
        if problem:
            raise ValueError(f"invalid strategy {self.name!r}: {problem}")

    def spec(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def defaults(self) -> dict[str, ParamValue]:
        return {p.name: p.default for p in self.params}

    def validate(self, params: Mapping[str, Any]) -> list[Violation]:
        """Every problem with a (possibly partial) parameter set; missing names take defaults.

        Constraints are checked only between values that are individually valid, so one
        bad input yields one violation rather than a cascade.
        """
        known = {p.name for p in self.params}
        violations = [
            Violation(field_path(name), f"unknown parameter; expected one of {sorted(known)}")
            for name in params
            if name not in known
        ]
        merged: dict[str, ParamValue] = self.defaults()
        bad: set[str] = set()
        for p in self.params:
            if p.name not in params:
                continue
            reason = p.check(params[p.name])
            if reason:
                violations.append(Violation(field_path(p.name), reason))
                bad.add(p.name)
            else:
                merged[p.name] = params[p.name]
        for c in self.constraints:
            if c.left in bad or c.right in bad:
                continue
            left, right = float(merged[c.left]), float(merged[c.right])
            if not c.holds(left, right):
                violations.append(Violation(field_path(c.left), c.describe_failure(left, right)))
        return violations

    def resolve(self, params: Mapping[str, Any] | None = None) -> dict[str, ParamValue]:
        """Defaults overlaid with `params`, canonicalized; ValueError listing every violation."""
        params = params or {}
        violations = self.validate(params)
        if violations:
            detail = "; ".join(f"{v.field}: {v.description}" for v in violations)
            raise ValueError(f"invalid parameters for {self.name}: {detail}")
        merged = self.defaults()
        merged.update(params)
        return {p.name: p.coerce(merged[p.name]) for p in self.params}

    def to_vector(self, params: Mapping[str, Any] | None = None) -> npt.NDArray[np.float64]:
        """The float64 vector the signal function takes, in `params` order (ValueError if bad)."""
        values = self.resolve(params)
        return np.array([p.encode(values[p.name]) for p in self.params], dtype=np.float64)

    def from_vector(self, vec: npt.ArrayLike) -> dict[str, ParamValue]:
        arr = np.asarray(vec, dtype=np.float64)
        if arr.shape != (len(self.params),):
            raise ValueError(f"{self.name} expects a vector of {len(self.params)} values")
        return {p.name: p.decode(float(x)) for p, x in zip(self.params, arr, strict=True)}

    def render_pine(
        self, params: Mapping[str, Any] | None = None, settings: PineSettings | None = None
    ) -> str:
        """The Pine Script v6 source with `params` (defaults filled) as input defaults."""
        values = self.resolve(params)
        literals = {
            p.name: string_literal(str(values[p.name]))
            if p.kind == "categorical"
            else number_literal(values[p.name])  # type: ignore[arg-type]
            for p in self.params
        }
        return render(self.pine, literals, settings or PineSettings(title=self.display_name))

    def _definition_problem(self) -> str | None:
        if not _SNAKE.match(self.name):
            return "name must be snake_case"
        if self.category not in CATEGORIES:
            return f"category must be one of {CATEGORIES}"
        if self.risk_level not in RISK_LEVELS:
            return f"risk_level must be one of {RISK_LEVELS}"
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            return "duplicate parameter names"
        for c in self.constraints:
            if c.left not in names or c.right not in names:
                return f"constraint {c} names an unknown parameter"
            if any(self.spec(n).kind == "categorical" for n in (c.left, c.right)):
                return f"constraint {c} compares a categorical parameter"
        if self.validate(self.defaults()):
            return "defaults violate the parameter space"
        return None
