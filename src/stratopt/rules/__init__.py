"""The user strategy language: definitions checked, compiled to numba and to Pine v6.

A user strategy type is text (docs/rules.md): parameters, named series, and the four rules
`long_entry`, `long_exit`, `short_entry`, `short_exit`. `compile_strategy` turns it into an
ordinary `StrategyType`, so a user type works wherever a built-in does (backtests, sweeps,
optimization, live runs, Pine export). The text is never run as Python: a hand-written
parser builds an AST, a checker resolves every name against a fixed whitelist, and the
numba source is generated from the checked tree with identifiers and number literals of
our own making (see `codegen_numba`).

Custom indicators are named, parameterised expressions; callers pass them as
`indicators={"name": definition_text}` and rules call them like built-ins. They are
expanded inline, so a user indicator costs what its expression costs.

Every problem is a `RuleError` (or `RuleErrors` for several) with a 1-based line and
column; no other exception escapes `check`, `check_indicator` or `compile_strategy` for
any input text (except `CompileError` from `compile_strategy(..., isolated=True)` when
the process compiling the kernel crashes or times out: a failure of the build, not of
the text).
"""

from __future__ import annotations

from stratopt.rules.api import (
    Checked,
    CheckedIndicator,
    IndicatorInput,
    check,
    check_indicator,
    compile_strategy,
    definition_hash,
)
from stratopt.rules.errors import CompileError, RuleError, RuleErrors
from stratopt.rules.limits import LIMITS, Limits

__all__ = [
    "LIMITS",
    "Checked",
    "CheckedIndicator",
    "CompileError",
    "IndicatorInput",
    "Limits",
    "RuleError",
    "RuleErrors",
    "check",
    "check_indicator",
    "compile_strategy",
    "definition_hash",
]
