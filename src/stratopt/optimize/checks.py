"""Validation of a `StudySpec`, reporting every problem at once on the field that causes it.

Field paths follow the API (`spec.search_space[0].min`, `spec.objectives[1].metric`), so the
servicer can pass the violations straight into a `BadRequest`.
"""

from __future__ import annotations

import math

from stratopt.engine import METRIC_NAMES, METRICS
from stratopt.errors import FieldViolation
from stratopt.optimize.samplers import missing_dependency
from stratopt.optimize.space import build_space, check_overrides
from stratopt.optimize.spec import (
    MAX_BOUNDS,
    MAX_OBJECTIVES,
    MAX_TIMEOUT_S,
    MAX_TRIALS,
    SAMPLERS,
    StudySpec,
)
from stratopt.strategies.base import StrategyType

MAX_HOLDOUT = 0.5
MAX_WALK_FORWARD_WINDOWS = 50
MAX_GRID = 1_000_000


def check_spec(
    spec: StudySpec, strategy: StrategyType, prefix: str = "spec"
) -> list[FieldViolation]:
    out = check_overrides(strategy, spec.overrides, f"{prefix}.search_space")
    out += _check_objectives(spec, prefix)
    out += _check_bounds(spec, prefix)
    out += _check_budget(spec, prefix)
    out += _check_validation(spec, prefix)
    if spec.sampler not in SAMPLERS:
        out.append(FieldViolation(f"{prefix}.sampler", f"unknown sampler {spec.sampler!r}"))
    elif missing := missing_dependency(spec.sampler):
        out.append(
            FieldViolation(f"{prefix}.sampler", f"this server lacks the {missing!r} package")
        )
    elif spec.sampler == "cmaes" and spec.multi_objective:
        out.append(
            FieldViolation(
                f"{prefix}.sampler", "CMA-ES optimizes a single objective; use NSGA-II or TPE"
            )
        )
    elif spec.sampler == "grid" and not out:
        size = build_space(strategy, spec.overrides).grid_size()
        if size > MAX_GRID:
            out.append(
                FieldViolation(
                    f"{prefix}.sampler",
                    f"the grid has {size:,} points (max {MAX_GRID:,}); narrow the search space",
                )
            )
    if spec.start_ns and spec.end_ns and spec.end_ns <= spec.start_ns:
        out.append(FieldViolation(f"{prefix}.time_range.end_time", "must be after start_time"))
    return out


def _check_objectives(spec: StudySpec, prefix: str) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if len(spec.objectives) > MAX_OBJECTIVES:
        out.append(FieldViolation(f"{prefix}.objectives", f"at most {MAX_OBJECTIVES} objectives"))
    seen: set[str] = set()
    for i, o in enumerate(spec.objectives):
        f = f"{prefix}.objectives[{i}].metric"
        if o.metric not in METRICS:
            out.append(
                FieldViolation(f, f"unknown metric {o.metric!r}; one of {', '.join(METRIC_NAMES)}")
            )
        elif o.metric in seen:
            out.append(FieldViolation(f, f"metric {o.metric!r} appears twice"))
        seen.add(o.metric)
    return out


def _check_bounds(spec: StudySpec, prefix: str) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if len(spec.bounds) > MAX_BOUNDS:
        out.append(FieldViolation(f"{prefix}.constraints", f"at most {MAX_BOUNDS} constraints"))
    for i, b in enumerate(spec.bounds):
        f = f"{prefix}.constraints[{i}]"
        if b.metric not in METRICS:
            out.append(
                FieldViolation(
                    f"{f}.metric", f"unknown metric {b.metric!r}; one of {', '.join(METRIC_NAMES)}"
                )
            )
        if b.min is None and b.max is None:
            out.append(FieldViolation(f, "give min, max or both"))
        elif any(x is not None and not math.isfinite(x) for x in (b.min, b.max)):
            out.append(FieldViolation(f, "bounds must be finite"))
        elif b.min is not None and b.max is not None and b.min > b.max:
            out.append(FieldViolation(f"{f}.min", f"min {b.min:g} is greater than max {b.max:g}"))
    return out


def _check_budget(spec: StudySpec, prefix: str) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if not 0 <= spec.timeout_s <= MAX_TIMEOUT_S or not math.isfinite(spec.timeout_s):
        out.append(
            FieldViolation(
                f"{prefix}.timeout", f"must be between 0 and {MAX_TIMEOUT_S / 86_400:g} days"
            )
        )
    if spec.trials < 0 or spec.trials > MAX_TRIALS:
        out.append(FieldViolation(f"{prefix}.trials", f"must be 1..{MAX_TRIALS:,}"))
    elif spec.trials == 0 and spec.timeout_s <= 0:
        out.append(
            FieldViolation(f"{prefix}.trials", f"must be 1..{MAX_TRIALS:,}, or 0 with a timeout")
        )
    if spec.patience < 0 or spec.patience > MAX_TRIALS:
        out.append(
            FieldViolation(f"{prefix}.early_stopping_patience", f"must be 0..{MAX_TRIALS:,}")
        )
    return out


def _check_validation(spec: StudySpec, prefix: str) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    v = spec.validation
    if not 0.0 <= v.holdout_fraction <= MAX_HOLDOUT or not math.isfinite(v.holdout_fraction):
        out.append(
            FieldViolation(
                f"{prefix}.validation.holdout_fraction", f"must be between 0 and {MAX_HOLDOUT}"
            )
        )
    w = v.walk_forward_windows
    if w and not 2 <= w <= MAX_WALK_FORWARD_WINDOWS:
        out.append(
            FieldViolation(
                f"{prefix}.validation.walk_forward_windows",
                f"0 (off) or 2..{MAX_WALK_FORWARD_WINDOWS}",
            )
        )
    return out
