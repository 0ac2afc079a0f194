"""Timeframe strings ("15m", "4h", "1d") <-> seconds.

Accepted forms (whitespace and case are ignored, except that a lone ``M`` is refused):

* an integer or a string of digits: seconds (``900``, ``"900"``);
* a number followed by a unit: ``s``/``sec``/``second(s)``, ``m``/``min``/``minute(s)``,
  ``h``/``hr``/``hour(s)``, ``d``/``day(s)``, ``w``/``wk``/``week(s)``;
  e.g. ``"30s"``, ``"1m"``, ``"15min"``, ``"4h"``, ``"1d"``, ``"1w"``.

Months and years are not fixed lengths, so they are refused rather than approximated;
``"1M"`` is refused too because some tools mean minutes by it and others months.
"""

from __future__ import annotations

import re

from stratopt.data.errors import TimeframeError

UNIT_SECONDS: dict[str, int] = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86_400),
    **dict.fromkeys(("w", "wk", "week", "weeks"), 604_800),
}
_PATTERN = re.compile(r"^(\d+)\s*([a-z]*)$")
_SHORT = ((604_800, "w"), (86_400, "d"), (3600, "h"), (60, "m"), (1, "s"))


def parse_timeframe(timeframe: str | int) -> int:
    """Seconds in ``timeframe`` (see the module docstring for the accepted forms)."""
    if isinstance(timeframe, bool):
        raise TimeframeError("a timeframe cannot be a boolean")
    if isinstance(timeframe, int):
        seconds = timeframe
    else:
        text = timeframe.strip()
        if re.fullmatch(r"\d+\s*M", text):
            raise TimeframeError(
                f"timeframe {timeframe!r} is ambiguous (minutes or months?); "
                "write minutes as '1m'/'1min'; months are not supported"
            )
        match = _PATTERN.match(text.lower())
        if match is None or (match.group(2) and match.group(2) not in UNIT_SECONDS):
            raise TimeframeError(
                f"cannot read timeframe {timeframe!r}; use e.g. 30s, 1m, 15m, 1h, 4h, 1d, 1w "
                "or a number of seconds"
            )
        seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2) or "s"]
    if seconds <= 0:
        raise TimeframeError(f"timeframe must be positive, got {timeframe!r}")
    return seconds


def format_timeframe(seconds: int) -> str:
    """Shortest spelling in the largest whole unit: 900 -> "15m", 86400 -> "1d"."""
    if seconds <= 0:
        raise TimeframeError(f"timeframe must be positive, got {seconds}")
    unit_seconds, unit = next((size, unit) for size, unit in _SHORT if seconds % size == 0)
    return f"{seconds // unit_seconds}{unit}"
