"""Public entry points of the rule language: check, check_indicator, compile_strategy."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, TypeVar

from stratopt.rules.build import load_signal_isolated
from stratopt.rules.checker import RULES, Program, check_indicator_text, check_strategy
from stratopt.rules.codegen_numba import load_signal, numba_source
from stratopt.rules.codegen_pine import pine_template
from stratopt.rules.errors import RuleError, RuleErrors
from stratopt.strategies.base import Category, RiskLevel, StrategyType
from stratopt.strategies.params import Constraint, ParamSpec

InputKind = Literal["series", "int", "float"]

_NO_INDICATORS: Mapping[str, str] = {}


@dataclass(frozen=True)
class IndicatorInput:
    """One argument of a user indicator: a price/indicator series, an int length or a float."""

    name: str
    kind: InputKind


@dataclass(frozen=True)
class CheckedIndicator:
    """A valid indicator definition: what it takes and how many values it has."""

    inputs: tuple[IndicatorInput, ...]
    outputs: tuple[str, ...]
    """Names of its results; one unnamed result is `("value",)`."""


@dataclass(frozen=True)
class Checked:
    """A valid strategy definition, as the API's dry-run check reports it.

    `params` and `constraints` are exactly what `compile_strategy(...).params` and
    `.constraints` will be, so the parameter space can be shown without compiling.
    """

    params: tuple[ParamSpec, ...]
    constraints: tuple[Constraint, ...]
    series: tuple[str, ...]
    """Named intermediate series, in definition order."""
    rules: tuple[str, ...]
    """The rules present, among long_entry, long_exit, short_entry, short_exit."""
    indicators: tuple[str, ...]
    """User indicators the definition uses (directly or through another indicator)."""
    hash: str
    """`definition_hash` of the text and the indicators it uses."""


def definition_hash(text: str, indicators: Mapping[str, str] = _NO_INDICATORS) -> str:
    """sha256 hex of a definition plus the indicator definitions given with it.

    The compiled-kernel cache is keyed by it: the same text with the same indicators never
    compiles twice in a process (nor across processes, thanks to numba's on-disk cache).
    """
    blob = json.dumps([text, sorted(indicators.items())], ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def check(text: str, *, indicators: Mapping[str, str] = _NO_INDICATORS) -> Checked:
    """Parse and type-check a strategy definition; fast (no numba), for validation.

    Raises RuleErrors (a RuleError) listing every problem found, with line and column.
    """
    program = _checked(text, indicators)
    return Checked(
        params=program.params,
        constraints=program.constraints,
        series=program.series,
        rules=tuple(r for r in RULES if r in program.rules),
        indicators=program.indicators,
        hash=definition_hash(text, _used(indicators, program.indicators)),
    )


def check_indicator(
    text: str, *, indicators: Mapping[str, str] = _NO_INDICATORS
) -> CheckedIndicator:
    """Parse and type-check one custom indicator definition (docs/rules.md, "Indicators").

    `indicators` are the other user indicators it may call, by name. Raises RuleErrors.
    """
    definition = _guarded(lambda: check_indicator_text("indicator", text, indicators))
    return CheckedIndicator(
        inputs=tuple(IndicatorInput(n, k) for n, k in definition.inputs),  # type: ignore[arg-type]
        outputs=definition.outputs,
    )


def compile_strategy(
    text: str,
    *,
    name: str,
    display_name: str = "",
    description: str = "",
    indicators: Mapping[str, str] = _NO_INDICATORS,
    category: Category = "trend_following",
    risk_level: RiskLevel = "medium",
    isolated: bool = False,
) -> StrategyType:
    """A `StrategyType` built from a definition: numba signal, Pine template, param space.

    `name` must be snake_case (it is the type's name everywhere). The numba kernel is
    generated from the checked tree, compiled (or read from numba's disk cache) before
    this returns, and kept per process by `definition_hash`. With `isolated`, a kernel
    this process has not loaded yet is compiled in a child process first and then read
    from the disk cache here (`rules.build`): a long compile then does not hold this
    process' GIL. Raises RuleErrors for a bad definition; CompileError if an isolated
    compile fails (the child crashed or timed out).
    """
    program = _checked(text, indicators)
    digest = definition_hash(text, _used(indicators, program.indicators))
    load = load_signal_isolated if isolated else load_signal
    signal = load(digest, numba_source(program))
    try:
        return StrategyType(
            name=name,
            display_name=display_name or name.replace("_", " ").title(),
            category=category,
            risk_level=risk_level,
            description=description,
            params=program.params,
            constraints=program.constraints,
            signal=signal,
            pine=pine_template(program),
        )
    except ValueError as e:
        raise RuleError(str(e), 1, 1) from e


def _used(indicators: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    """Only the indicators a definition uses count toward its hash."""
    return {n: indicators[n] for n in sorted(names)}


def _checked(text: str, indicators: Mapping[str, str]) -> Program:
    return _guarded(lambda: check_strategy(text, indicators))


T = TypeVar("T")


def _guarded(fn: Callable[[], T]) -> T:
    """Runs a check; a RecursionError or any other surprise becomes a positioned RuleError.

    The parser and checker bound depth and size themselves; this is the last line of the
    promise that no input raises anything but RuleError.
    """
    try:
        return fn()
    except RuleErrors:
        raise
    except RuleError as e:
        raise RuleErrors([e if e.line else RuleError(e.message, 1, 1)]) from None
    except RecursionError:
        raise RuleErrors([RuleError("definition nested too deeply", 1, 1)]) from None
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as e:
        raise RuleErrors([RuleError(f"invalid definition: {e}", 1, 1)]) from None
