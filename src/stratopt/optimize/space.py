"""Search spaces: a strategy type's parameter space with the user's overrides applied.

The strategy's `ParamSpec` bounds are the limits of validity, so overrides may narrow a
range but never widen it. Distributions map 1:1 onto Optuna's; every trial of a study uses
the same distributions, which multivariate TPE and the RDB storage both require.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import Trial

from stratopt.errors import FieldViolation
from stratopt.optimize.spec import ParamOverride, ParamValue
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import ParamKind, ParamSpec

GRID_ALL_UP_TO = 30
"""A numeric parameter with at most this many grid values is gridded exhaustively."""
GRID_POINTS = 20
FLOAT_GRID_POINTS = 10


@dataclass(frozen=True)
class Dimension:
    """One searched parameter."""

    name: str
    kind: ParamKind
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple[str, ...] = ()

    def distribution(self) -> BaseDistribution:
        if self.kind == "categorical":
            return CategoricalDistribution(self.choices)
        if self.kind == "int":
            return IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial: Trial) -> ParamValue:
        if self.kind == "categorical":
            return str(trial.suggest_categorical(self.name, self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value: Any) -> bool:
        if self.kind == "categorical":
            return value in self.choices
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if not self.low <= value <= self.high:
            return False
        if self.kind == "int":
            return value == int(value) and (int(value) - int(self.low)) % int(self.step or 1) == 0
        return True

    def grid_values(self, points: int | None = None) -> list[ParamValue]:
        """Values a grid search visits: every value of small spaces, else a spread.

        With ``points``, a spread of that many values over the range whatever its size
        (geometric on a log scale, snapped to the step, so an integer range narrower than
        ``points`` gives each of its values once); categorical choices are all visited.
        """
        if self.kind == "categorical":
            return list(self.choices)
        if points is not None:
            return self._spread_values(points)
        if self.kind == "int":
            step = int(self.step or 1)
            count = (int(self.high) - int(self.low)) // step + 1
            if count <= GRID_ALL_UP_TO:
                return list(range(int(self.low), int(self.high) + 1, step))
            raw = _spread(self.low, self.high, GRID_POINTS, self.log)
            snapped = {int(self.low + round((x - self.low) / step) * step) for x in raw}
            return sorted(v for v in snapped if self.low <= v <= self.high)
        if self.step:
            count = math.floor((self.high - self.low) / self.step + 1e-9) + 1
            if count <= GRID_ALL_UP_TO:
                return [float(self.low + i * self.step) for i in range(count)]
        return [float(x) for x in _spread(self.low, self.high, FLOAT_GRID_POINTS, self.log)]

    def _spread_values(self, points: int) -> list[ParamValue]:
        raw = _spread(self.low, self.high, points, self.log)
        if self.kind == "int" or self.step:
            step = int(self.step or 1) if self.kind == "int" else float(self.step or 0.0)
            ticks = sorted({round((x - self.low) / step) for x in raw})
            values = [self.low + i * step for i in ticks]
            kept = [v for v in values if v <= self.high + 1e-9 * abs(step)]
            return [int(v) for v in kept] if self.kind == "int" else [round(v, 10) for v in kept]
        return [float(x) for x in raw]


def _spread(low: float, high: float, points: int, log: bool) -> npt.NDArray[np.float64]:
    if log and low > 0:
        return np.geomspace(low, high, points)
    return np.linspace(low, high, points)


@dataclass(frozen=True)
class SearchSpace:
    """The dimensions searched plus the parameters pinned to one value."""

    strategy: StrategyType
    dimensions: tuple[Dimension, ...]
    fixed: Mapping[str, ParamValue]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dimensions)

    def distributions(self) -> dict[str, BaseDistribution]:
        return {d.name: d.distribution() for d in self.dimensions}

    def suggest(self, trial: Trial) -> dict[str, ParamValue]:
        return {d.name: d.suggest(trial) for d in self.dimensions}

    def full_params(self, sampled: Mapping[str, Any]) -> dict[str, ParamValue]:
        """Every parameter of the strategy: defaults, then pinned values, then sampled ones."""
        merged: dict[str, ParamValue] = self.strategy.defaults()
        merged.update(self.fixed)
        merged.update(sampled)
        return {p.name: p.coerce(merged[p.name]) for p in self.strategy.params}

    def searched_part(self, params: Mapping[str, Any]) -> dict[str, ParamValue] | None:
        """The searched subset of a full parameter set, or None if it lies outside the space."""
        out: dict[str, ParamValue] = {}
        for d in self.dimensions:
            if d.name not in params or not d.contains(params[d.name]):
                return None
            out[d.name] = params[d.name]
        return out

    def grid(self, points: int | None = None) -> dict[str, list[ParamValue]]:
        """Every dimension's grid values (see Dimension.grid_values for ``points``)."""
        return {d.name: d.grid_values(points) for d in self.dimensions}

    def grid_size(self, points: int | None = None) -> int:
        return math.prod(len(v) for v in self.grid(points).values())


def build_space(strategy: StrategyType, overrides: Sequence[ParamOverride]) -> SearchSpace:
    """The space of an already-validated spec (see `check_overrides`)."""
    by_name = {o.name: o for o in overrides}
    dims: list[Dimension] = []
    fixed: dict[str, ParamValue] = {}
    for p in strategy.params:
        o = by_name.get(p.name)
        if o is not None and o.fixed is not None:
            fixed[p.name] = p.coerce(o.fixed)
            continue
        dims.append(_dimension(p, o))
    return SearchSpace(strategy=strategy, dimensions=tuple(dims), fixed=fixed)


def _dimension(p: ParamSpec, o: ParamOverride | None) -> Dimension:
    if p.kind == "categorical":
        choices = o.choices if o is not None and o.choices else p.choices
        return Dimension(p.name, "categorical", choices=tuple(choices))
    assert p.low is not None and p.high is not None
    if o is None or not o.reshapes:
        return Dimension(p.name, p.kind, p.low, p.high, _type_step(p), p.log)
    low = o.low if o.low is not None else p.low
    high = o.high if o.high is not None else p.high
    step = o.step if o.step is not None else _type_step(p)
    if o.log:
        step = None
    return Dimension(p.name, p.kind, float(low), float(high), step, o.log)


def _type_step(p: ParamSpec) -> float | None:
    if p.log:
        return None
    if p.kind == "int":
        return float(p.step or 1)
    return p.step


def check_overrides(
    strategy: StrategyType, overrides: Sequence[ParamOverride], prefix: str
) -> list[FieldViolation]:
    """Every problem with the overrides, each on the field that causes it."""
    out: list[FieldViolation] = []
    known = [p.name for p in strategy.params]
    seen: set[str] = set()
    for i, o in enumerate(overrides):
        f = f"{prefix}[{i}]"
        if o.name not in known:
            out.append(
                FieldViolation(
                    f"{f}.name", f"unknown parameter {o.name!r}; expected one of {known}"
                )
            )
            continue
        if o.name in seen:
            out.append(FieldViolation(f"{f}.name", f"parameter {o.name!r} is overridden twice"))
            continue
        seen.add(o.name)
        out += _check_override(strategy.spec(o.name), o, f)
    if overrides and not out and not build_space(strategy, overrides).dimensions:
        out.append(FieldViolation(prefix, "every parameter is fixed: nothing left to optimize"))
    return out


def _check_override(p: ParamSpec, o: ParamOverride, f: str) -> list[FieldViolation]:
    if o.fixed is not None:
        if o.reshapes or o.choices:
            return [
                FieldViolation(
                    f"{f}.fixed", "a fixed parameter takes no range, step, scale or choices"
                )
            ]
        reason = p.check(o.fixed)
        return [FieldViolation(f"{f}.fixed", reason)] if reason else []
    if p.kind == "categorical":
        return _check_choices(p, o, f)
    if o.choices:
        return [FieldViolation(f"{f}.choices", "only categorical parameters take choices")]
    return _check_range(p, o, f)


def _check_choices(p: ParamSpec, o: ParamOverride, f: str) -> list[FieldViolation]:
    if o.reshapes:
        return [FieldViolation(f, f"{p.name} is categorical: give choices or a fixed value")]
    unknown = [c for c in o.choices if c not in p.choices]
    if unknown:
        return [
            FieldViolation(f"{f}.choices", f"unknown choices {unknown}; allowed: {list(p.choices)}")
        ]
    if len(set(o.choices)) != len(o.choices):
        return [FieldViolation(f"{f}.choices", "duplicate choices")]
    return []


def _check_range(p: ParamSpec, o: ParamOverride, f: str) -> list[FieldViolation]:
    assert p.low is not None and p.high is not None
    low = o.low if o.low is not None else p.low
    high = o.high if o.high is not None else p.high
    values = [x for x in (low, high, o.step) if x is not None]
    if not all(math.isfinite(x) for x in values):
        return [FieldViolation(f, "min, max and step must be finite")]
    if low > high:
        return [
            FieldViolation(f"{f}.min", f"empty range: min {low:g} is greater than max {high:g}")
        ]
    out: list[FieldViolation] = []
    if low < p.low or high > p.high:
        out.append(
            FieldViolation(
                f"{f}.min" if low < p.low else f"{f}.max",
                f"must stay within {p.name}'s bounds [{p.low:g}, {p.high:g}]",
            )
        )
    if p.kind == "int":
        out += _check_int_grid(p, o, low, high, f)
    elif o.step is not None and (o.step <= 0 or (high > low and o.step > high - low)):
        out.append(FieldViolation(f"{f}.step", "must be positive and no larger than the range"))
    if o.log and low <= 0:
        out.append(FieldViolation(f"{f}.log_scale", "a log scale needs min > 0"))
    if o.log and o.step is not None and (p.kind == "float" or o.step != 1):
        out.append(FieldViolation(f"{f}.log_scale", "a log scale cannot be combined with a step"))
    return out


def _check_int_grid(
    p: ParamSpec, o: ParamOverride, low: float, high: float, f: str
) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if low != int(low) or high != int(high):
        out.append(
            FieldViolation(f"{f}.min", f"{p.name} is an integer: min and max must be whole numbers")
        )
    type_step = int(p.step or 1)
    if o.step is not None and (o.step < 1 or o.step != int(o.step) or o.step % type_step):
        out.append(FieldViolation(f"{f}.step", f"must be a whole multiple of {type_step}"))
    assert p.low is not None
    if type_step > 1 and (low - p.low) % type_step:
        out.append(FieldViolation(f"{f}.min", f"must be {p.low:g} plus a multiple of {type_step}"))
    return out
