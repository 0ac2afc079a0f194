"""Exceptions raised by the data package.

Each error class says *which kind* of failure happened, so the API layer can map it to a
status code (bad input, not found, too large, corrupt storage) without parsing messages.
"""

from __future__ import annotations

from dataclasses import dataclass

from stratopt.data.timestamps import format_ts

#: How many problems a validation error lists; the rest are only counted, because a file
#: with a systematic error (swapped columns, wrong separator) would otherwise produce a
#: million-line message.
MAX_REPORTED_PROBLEMS = 20


class DataError(Exception):
    """Base class of every error the data package raises on purpose."""


class ImportFormatError(DataError, ValueError):
    """The input cannot be read as bars at all (unknown columns, not CSV/Parquet, ...)."""


class UploadTooLargeError(DataError):
    """An upload went over its configured byte or row limit."""


class UploadBudgetError(DataError):
    """The uploads in progress already hold the memory set aside for uploads; try later."""


class InvalidDatasetIdError(DataError, ValueError):
    """A dataset id that could escape the storage folder or is otherwise unusable."""


class DatasetNotFoundError(DataError, LookupError):
    """No stored dataset has this id."""


class CorruptDatasetError(DataError):
    """A stored dataset file is truncated, has a bad header or fails its checksum."""


class TimeframeError(DataError, ValueError):
    """A timeframe string cannot be parsed or cannot be produced from the source bars."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one row (or with the whole dataset when ``row`` is None).

    ``row`` is the 1-based data row of the source (the header is not counted), which is
    what a user needs to find the line in their file; ``field`` is the column name so the
    API can report it as a field violation.
    """

    row: int | None
    ts: int | None
    field: str
    message: str

    def __str__(self) -> str:
        if self.row is None:
            return self.message
        where = f"row {self.row}"
        if self.ts is not None:
            where += f" ({format_ts(self.ts)})"
        return f"{where}: {self.message}"


class BarValidationError(DataError, ValueError):
    """Bars that break the rules; carries the first problems and the total count."""

    def __init__(self, problems: list[Problem], total: int | None = None) -> None:
        self.problems = problems[:MAX_REPORTED_PROBLEMS]
        self.total = max(total if total is not None else len(problems), len(self.problems))
        super().__init__(self._render())

    @property
    def omitted(self) -> int:
        """How many problems exist beyond the ones listed."""
        return self.total - len(self.problems)

    def _render(self) -> str:
        if self.total == 1:
            return f"invalid bars: {self.problems[0]}"
        lines = [f"invalid bars: {self.total} problems"]
        lines.extend(f"  {problem}" for problem in self.problems)
        if self.omitted:
            lines.append(f"  ... and {self.omitted} more")
        return "\n".join(lines)
