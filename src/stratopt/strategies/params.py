"""Parameter spaces: what a strategy accepts, and the checks that turn bad input into field errors.

A `ParamSpec` serves three readers: the API (validation messages that become gRPC
`BadRequest` field violations), the optimizer (bounds, step and log scale map directly onto
Optuna's `suggest_int` / `suggest_float` / `suggest_categorical`), and the Pine exporter
(input defaults and bounds).

Int values may arrive as integral floats (`20.0`) because protobuf and JSON numbers are
doubles, and as numpy scalars from grids built with `np.arange`; both are accepted. Step
alignment is enforced for ints with step > 1 only: a float step is a sampling grid for the
optimizer, and a user typing 2.05 for a multiplier with step 0.1 is not wrong.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np

ParamKind = Literal["int", "float", "categorical"]
ParamValue = int | float | str
ConstraintOp = Literal["<", "<=", ">", ">="]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_NEGATED = {"<": ">=", "<=": ">", ">": "<=", ">=": "<"}


class Violation(NamedTuple):
    """One invalid field; `field` is a path like `parameters.fast` for gRPC field violations."""

    field: str
    description: str


def field_path(name: str) -> str:
    """Violation path of a strategy parameter, as the API exposes it."""
    return f"parameters.{name}"


@dataclass(frozen=True, kw_only=True)
class ParamSpec:
    """One tunable parameter; build it with `int_param`, `float_param` or `choice_param`.

    `low`/`high` are inclusive bounds; `step` is the optimizer's grid (enforced for ints
    only); `log` asks the optimizer to sample on a log scale.
    """

    name: str
    kind: ParamKind
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    default: ParamValue
    log: bool = False
    description: str = ""

    def __post_init__(self) -> None:
        problem = _spec_problem(self)
        if problem:
            raise ValueError(f"invalid ParamSpec {self.name!r}: {problem}")

    def check(self, value: object) -> str | None:
        """Why `value` is not acceptable for this parameter, or None if it is."""
        if self.kind == "categorical":
            if not isinstance(value, str):
                return f"must be one of {list(self.choices)}, got {type(value).__name__}"
            if value not in self.choices:
                return f"must be one of {list(self.choices)}, got {value!r}"
            return None
        number = _as_number(value, integer=self.kind == "int")
        if isinstance(number, str):
            return number
        assert self.low is not None and self.high is not None
        if not self.low <= number <= self.high:
            return f"must be between {_fmt(self.low)} and {_fmt(self.high)}, got {_fmt(number)}"
        if self.kind == "int" and self.step is not None and (number - self.low) % self.step != 0:
            return (
                f"must be {_fmt(self.low)} plus a multiple of {_fmt(self.step)}, got {_fmt(number)}"
            )
        return None

    def coerce(self, value: ParamValue) -> ParamValue:
        """Canonical Python value of an already-checked input (`20.0` -> `20` for ints)."""
        if self.kind == "int":
            return int(value)
        if self.kind == "float":
            return float(value)
        return value

    def encode(self, value: ParamValue) -> float:
        """The float64 a signal function receives: the number, or the index of a choice."""
        if self.kind == "categorical":
            return float(self.choices.index(str(value)))
        return float(value)

    def decode(self, number: float) -> ParamValue:
        """Inverse of `encode`."""
        if self.kind == "categorical":
            return self.choices[round(number)]
        if self.kind == "int":
            return round(number)
        return float(number)


@dataclass(frozen=True)
class Constraint:
    """A relation between two parameters that every valid combination satisfies (fast < slow)."""

    left: str
    op: ConstraintOp
    right: str

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"unknown constraint operator {self.op!r}")

    def holds(self, left: float, right: float) -> bool:
        return _OPS[self.op](left, right)

    def describe_failure(self, left: float, right: float) -> str:
        return (
            f"must be {self.op} {self.right} (got {_fmt(left)} {_NEGATED[self.op]} {_fmt(right)})"
        )

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


def int_param(
    name: str,
    low: int,
    high: int,
    default: int,
    *,
    step: int = 1,
    log: bool = False,
    description: str = "",
) -> ParamSpec:
    return ParamSpec(
        name=name,
        kind="int",
        low=low,
        high=high,
        step=step,
        default=default,
        log=log,
        description=description,
    )


def float_param(
    name: str,
    low: float,
    high: float,
    default: float,
    *,
    step: float | None = None,
    log: bool = False,
    description: str = "",
) -> ParamSpec:
    return ParamSpec(
        name=name,
        kind="float",
        low=low,
        high=high,
        step=step,
        default=float(default),
        log=log,
        description=description,
    )


def choice_param(
    name: str, choices: tuple[str, ...], default: str, *, description: str = ""
) -> ParamSpec:
    return ParamSpec(
        name=name, kind="categorical", choices=choices, default=default, description=description
    )


def _as_number(value: object, *, integer: bool) -> float | str:
    """The value as a finite number, or the reason it is not one of the wanted kind."""
    wanted = "an integer" if integer else "a number"
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        return f"must be {wanted}, got {type(value).__name__}"
    number = float(value)
    if not math.isfinite(number):
        return f"must be {wanted}, got {value!r}"
    if integer and not number.is_integer():
        return f"must be {wanted}, got {value!r}"
    return number


def _spec_problem(spec: ParamSpec) -> str | None:
    """Catches inconsistent specs at definition time, so a bad library entry fails on import."""
    if not spec.name.isidentifier() or spec.name != spec.name.lower():
        return "name must be a lower-case identifier"
    if spec.kind == "categorical":
        if not spec.choices or len(set(spec.choices)) != len(spec.choices):
            return "categorical needs distinct choices"
        if spec.default not in spec.choices:
            return "default is not one of the choices"
        return None
    if spec.kind not in ("int", "float"):
        return f"unknown kind {spec.kind!r}"
    if spec.low is None or spec.high is None or spec.low > spec.high:
        return "needs low <= high"
    if spec.log and spec.low <= 0:
        return "log scale needs low > 0"
    if spec.step is not None and spec.step <= 0:
        return "step must be positive"
    if spec.step is not None and not _is_multiple(spec.high - spec.low, spec.step):
        return "high - low must be a multiple of step (Optuna samples low + k * step)"
    if spec.log and spec.step is not None and spec.kind == "int" and spec.step != 1:
        return "log scale cannot be combined with step > 1"
    if spec.log and spec.step is not None and spec.kind == "float":
        return "log scale cannot be combined with a float step"
    return spec.check(spec.default)


def _is_multiple(span: float, step: float) -> bool:
    ratio = span / step
    return abs(ratio - round(ratio)) <= 1e-9 * max(1.0, abs(ratio))


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))
