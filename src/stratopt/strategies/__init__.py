"""The built-in strategy library: parameter spaces, signal functions, Pine templates, registry.

Importing this package compiles nothing and imports no strategy module; `registry` loads
the library on first use and numba compiles a signal function on its first call (then
reuses its on-disk cache).
"""

from stratopt.strategies import registry
from stratopt.strategies.base import CATEGORIES, RISK_LEVELS, StrategyType
from stratopt.strategies.params import (
    Constraint,
    ParamSpec,
    Violation,
    choice_param,
    float_param,
    int_param,
)
from stratopt.strategies.pine import PineSettings

__all__ = [
    "CATEGORIES",
    "RISK_LEVELS",
    "Constraint",
    "ParamSpec",
    "PineSettings",
    "StrategyType",
    "Violation",
    "choice_param",
    "float_param",
    "int_param",
    "registry",
]
