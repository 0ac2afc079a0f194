"""Errors of the rule language: every problem carries the 1-based line and column it is at.

`RuleError` subclasses ValueError so callers that already map ValueError to
INVALID_ARGUMENT keep doing the right thing; `RuleErrors` carries several at once (a type
checker that stops at the first problem makes users fix definitions one error at a time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class RuleError(ValueError):
    """One problem in a definition, at `line`:`column` (1-based; 0:0 when it has no place)."""

    def __init__(self, message: str, line: int = 0, column: int = 0) -> None:
        super().__init__(f"{line}:{column}: {message}" if line else message)
        self.message = message
        self.line = line
        self.column = column

    def __reduce__(self) -> tuple[type[RuleError], tuple[str, int, int]]:
        return (type(self), (self.message, self.line, self.column))


class RuleErrors(RuleError):
    """Several problems; `errors` is never empty and is sorted by position.

    It is itself a RuleError positioned at the first problem, so code that handles one
    error handles this too.
    """

    def __init__(self, errors: Sequence[RuleError]) -> None:
        if not errors:
            raise ValueError("RuleErrors needs at least one error")
        ordered = sorted(errors, key=lambda e: (e.line, e.column))
        first = ordered[0]
        super().__init__(first.message, first.line, first.column)
        self.errors: list[RuleError] = list(ordered)
        if len(ordered) > 1:
            self.args = ("; ".join(str(e) for e in ordered),)

    def __reduce__(self) -> tuple[type[RuleErrors], tuple[list[RuleError]]]:  # type: ignore[override]
        return (type(self), (self.errors,))


class CompileError(RuntimeError):
    """A checked definition's numba kernel could not be built: the process compiling it
    crashed, ran out of time, or numba refused the generated code. Not a problem in the
    text (that is a RuleError): the message says what happened and is safe to show.

    `transient`: the build itself did not finish (a crash, a timeout, no process could
    start), so the same request may well succeed later; numba refusing the code will not.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient

    def __reduce__(self) -> tuple[Any, ...]:
        return (_compile_error, (str(self), self.transient))


def _compile_error(message: str, transient: bool) -> CompileError:
    return CompileError(message, transient=transient)
