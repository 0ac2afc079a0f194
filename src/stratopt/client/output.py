"""What the client commands print: numbers people can read, tables, and `--json`.

Conventions (README "The command line"):

* returns, drawdowns, rates and costs are percentages (``+23.46%``), ratios keep two
  decimals, counts are integers, money has thousands separators;
* durations that the engine counts in bars (``max_drawdown_duration``,
  ``avg_trade_duration``) are shown in time units from the bar spacing, with the bar count
  beside them (``17.2 days (412 bars)``);
* ``--json`` prints protobuf messages with their proto field names (snake_case), every
  field present (zeros included), 64-bit integers as numbers and parameter values as plain
  values (``{"fast": 10}``), so the output feeds ``jq`` without surprises.

Tables and the progress bar are drawn with rich; when stdout is not a terminal rich writes
no escape codes.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper

E = TypeVar("E", bound=int)


class CliError(Exception):
    """A problem the user can fix; printed as ``stratopt: <message>``, exit status ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


PIPE_WIDTH = 200


def console(file: TextIO | None = None) -> Console:
    """A console on stdout (looked up at call time, so tests can capture it).

    No markup and no highlighting: names and descriptions are user data and are printed as
    they are. Off a terminal rich writes plain text (no escape codes), PIPE_WIDTH columns
    wide unless COLUMNS says otherwise."""
    out = file or sys.stdout
    width = None
    if not (hasattr(out, "isatty") and out.isatty()) and not os.environ.get("COLUMNS"):
        width = PIPE_WIDTH
    return Console(file=out, highlight=False, markup=False, emoji=False, width=width)


def show(*renderables: Any, file: TextIO | None = None) -> None:
    """Prints tables and text on stdout without trailing blanks (rich pads cells)."""
    con = console(file)
    with con.capture() as cap:
        for r in renderables:
            con.print(r)
    out = file or sys.stdout
    out.write("".join(line.rstrip() + "\n" for line in cap.get().splitlines()))
    out.flush()


def warn(message: str) -> None:
    print(f"stratopt: warning: {message}", file=sys.stderr)


# -- numbers ----------------------------------------------------------------------------------

PERCENT_METRICS = frozenset(
    {
        "total_return",
        "cagr",
        "annual_volatility",
        "max_drawdown",
        "ulcer_index",
        "win_rate",
        "expectancy",
        "avg_win",
        "avg_loss",
        "largest_win",
        "largest_loss",
        "exposure",
        "kelly",
        "buy_and_hold_return",
        "alpha",
    }
)
SIGNED_METRICS = frozenset(
    {
        "alpha",
        "total_return",
        "cagr",
        "expectancy",
        "avg_win",
        "avg_loss",
        "largest_win",
        "largest_loss",
        "buy_and_hold_return",
    }
)
DURATION_METRICS = frozenset({"max_drawdown_duration", "avg_trade_duration"})
INTEGER_METRICS = frozenset({"num_trades", "winning_trades", "losing_trades"})
BACKTEST_ONLY_METRICS = frozenset({"burke_ratio", "alpha", "beta"})
"""Computed for backtests only (common.proto): a live run's are 0, not a figure."""
MONEY_METRICS = frozenset({"final_equity"})
LABELS = {
    "total_return": "Total return",
    "cagr": "CAGR",
    "annual_volatility": "Volatility",
    "sharpe": "Sharpe",
    "sortino": "Sortino",
    "calmar": "Calmar",
    "max_drawdown": "Max drawdown",
    "max_drawdown_duration": "Longest drawdown",
    "ulcer_index": "Ulcer index",
    "win_rate": "Win rate",
    "profit_factor": "Profit factor",
    "expectancy": "Expectancy",
    "avg_win": "Average win",
    "avg_loss": "Average loss",
    "largest_win": "Largest win",
    "largest_loss": "Largest loss",
    "num_trades": "Trades",
    "exposure": "Time in market",
    "sqn": "SQN",
    "kelly": "Kelly fraction",
    "avg_trade_duration": "Average trade",
    "buy_and_hold_return": "Buy and hold",
    "final_equity": "Final equity",
    "burke_ratio": "Burke ratio",
    "alpha": "Alpha",
    "beta": "Beta",
    "winning_trades": "Winning trades",
    "losing_trades": "Losing trades",
    "trades_per_month": "Trades per month",
}
# The summary's two columns: performance and risk on the left, the trades on the right.
LEFT_METRICS = (
    "final_equity",
    "total_return",
    "cagr",
    "buy_and_hold_return",
    "max_drawdown",
    "max_drawdown_duration",
    "annual_volatility",
    "ulcer_index",
    "sharpe",
    "sortino",
    "calmar",
    "burke_ratio",
    "alpha",
    "beta",
)
RIGHT_METRICS = (
    "num_trades",
    "winning_trades",
    "losing_trades",
    "trades_per_month",
    "win_rate",
    "profit_factor",
    "expectancy",
    "avg_win",
    "avg_loss",
    "largest_win",
    "largest_loss",
    "avg_trade_duration",
    "exposure",
    "sqn",
    "kelly",
)
# The few figures a results table has room for.
SHORT_METRICS = ("total_return", "sharpe", "max_drawdown", "num_trades", "win_rate")


def pct(x: float, *, signed: bool = False, digits: int = 2) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x * 100:{'+' if signed else ''},.{digits}f}%"


def money(x: float) -> str:
    if not math.isfinite(x):
        return "-"
    return f"{x:,.2f}" if abs(x) >= 0.005 else "0.00"  # not "-0.00" for a rounding residue


def number(x: float) -> str:
    """An integer as an integer, anything else with two decimals (or 4 significant digits)."""
    if not math.isfinite(x):
        return "-"
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    return f"{x:,.2f}" if abs(x) >= 0.01 else f"{x:.4g}"


def span(seconds: float) -> str:
    """A length of time in the largest unit that reads well: 45 min, 7.5 hours, 12.3 days."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86_400:
        return f"{seconds / 3600:.1f} hours"
    if seconds < 2 * 365.25 * 86_400:
        return f"{seconds / 86_400:.1f} days"
    return f"{seconds / (365.25 * 86_400):.1f} years"


def bars_span(bars: float, bar_seconds: float | None) -> str:
    """A duration the engine counts in bars, in time units (bars x timeframe) and in bars."""
    count = f"{bars:,.0f} bars" if float(bars).is_integer() else f"{bars:,.1f} bars"
    if not bar_seconds or not math.isfinite(bars):
        return count
    return f"{span(bars * bar_seconds)} ({count})"


def metric(name: str, value: float, bar_seconds: float | None = None) -> str:
    """One metric as a person reads it (a duration in time units when the bar spacing is
    known, else in bars)."""
    if name in PERCENT_METRICS:
        return pct(value, signed=name in SIGNED_METRICS)
    if name in DURATION_METRICS:
        if bar_seconds and math.isfinite(value):
            return span(value * bar_seconds)
        return bars_span(value, None)
    if name in INTEGER_METRICS:
        return f"{int(value):,}"
    if name in MONEY_METRICS:
        return money(value)
    return f"{value:,.2f}" if math.isfinite(value) else "-"


def metrics_table(metrics: Mapping[str, float], bar_seconds: float | None = None) -> Table:
    """Every metric in two label/value columns (performance and risk | trades)."""
    left = [n for n in LEFT_METRICS if n in metrics]
    right = [n for n in RIGHT_METRICS if n in metrics]
    extra = [n for n in metrics if n not in LEFT_METRICS and n not in RIGHT_METRICS]
    right += extra
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column(justify="right")
    t.add_column(style="bold")
    t.add_column(justify="right")
    for i in range(max(len(left), len(right))):
        row: list[str] = []
        for names in (left, right):
            if i < len(names):
                row += [
                    LABELS.get(names[i], names[i]),
                    metric(names[i], metrics[names[i]], bar_seconds),
                ]
            else:
                row += ["", ""]
        t.add_row(*row)
    return t


def pairs(rows: Iterable[tuple[str, str]]) -> Table:
    """Label/value lines, labels in bold."""
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    for label, value in rows:
        t.add_row(label, value)
    return t


def when(ns_or_dt: int | datetime | None) -> str:
    """A UTC time, minutes precision (seconds when they are not zero)."""
    if ns_or_dt is None:
        return "-"
    dt = (
        ns_or_dt
        if isinstance(ns_or_dt, datetime)
        else datetime.fromtimestamp(ns_or_dt / 1e9, tz=UTC)
    )
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%d %H:%M:%S" if dt.second else "%Y-%m-%d %H:%M")


def period(start_ns: int, end_ns: int, bars: int, bar_seconds: float | None) -> str:
    every = f" of {timeframe_text(bar_seconds)}" if bar_seconds else ""
    return (
        f"{when(start_ns)} to {when(end_ns)} UTC, {span((end_ns - start_ns) / 1e9)}, "
        f"{bars:,} bars{every}"
    )


def timeframe_text(seconds: float | None) -> str:
    if not seconds:
        return "?"
    for size, unit in ((604_800, "w"), (86_400, "d"), (3600, "h"), (60, "m"), (1, "s")):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def timeframe_seconds(text: str) -> int | None:
    """Seconds of a timeframe such as "1h" (None when empty or unreadable)."""
    if not text:
        return None
    from stratopt.data.errors import TimeframeError
    from stratopt.data.timeframes import parse_timeframe

    try:
        return parse_timeframe(text)
    except TimeframeError:
        return None


def execution_summary(options: Mapping[str, Any], bar_seconds: float | None = None) -> str:
    """The execution options a run used, every one of them, on one line."""
    o = options
    direction = {"long": "long only", "short": "short only", "both": "long and short"}.get(
        str(o.get("direction", "long")), str(o.get("direction"))
    )
    stops = [
        f"{label} {pct(float(o.get(name) or 0))}"
        for name, label in (
            ("stop_loss", "stop-loss"),
            ("take_profit", "take-profit"),
            ("trailing_stop", "trailing stop"),
        )
        if o.get(name)
    ]
    ppy = float(o.get("periods_per_year") or 0)
    if ppy:
        year = f"{number(ppy)} bars/year"
    elif bar_seconds:
        year = f"{number(round(365.25 * 86_400 / bar_seconds, 2))} bars/year (inferred)"
    else:
        year = "bars/year inferred"
    parts = [
        f"cash {money(float(o.get('initial_cash', 10_000.0)))}",
        f"size {pct(float(o.get('position_size', 1.0)), digits=0)} of equity",
        direction,
        f"commission {pct(float(o.get('commission') or 0), digits=3)}/side",
        f"slippage {pct(float(o.get('slippage') or 0), digits=3)}",
        "fills at the signal bar's close" if o.get("fill_on_close") else "fills at the next open",
        ", ".join(stops) if stops else "no stops",
        year,
    ]
    return ", ".join(parts)


def zero_costs(options: Mapping[str, Any]) -> bool:
    return not float(options.get("commission") or 0) and not float(options.get("slippage") or 0)


ZERO_COSTS = (
    "commission and slippage are both 0: results overstate what the strategy would earn; "
    "pass e.g. --commission 0.001 (10 bps per side)"
)


def params_text(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={_plain(v)}" for k, v in sorted(params.items())) or "(defaults)"


def _plain(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


NO_WRAP = frozenset({"ID", "JOB"})


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str = "") -> Table:
    """A table with a header line; a column named ">NAME" is right-aligned. The first column
    (an id, a name) and every right-aligned one (numbers) never wrap."""
    t = Table(
        title=title or None,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
    )
    for i, name in enumerate(columns):
        right = name.startswith(">")
        t.add_column(
            name.lstrip(">"),
            justify="right" if right else "left",
            overflow="fold",
            no_wrap=right or i == 0 or name in NO_WRAP,
        )
    for row in rows:
        t.add_row(*[r if isinstance(r, Text) else str(r) for r in row])
    return t


# -- JSON -------------------------------------------------------------------------------------

_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}
PARAMETER_VALUE = "stratopt.v1.ParameterValue"


def proto_json(msg: Message) -> dict[str, Any]:
    """A message as a plain dict (see the module docstring for the conventions)."""
    d = MessageToDict(
        msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return _fix(msg.DESCRIPTOR, d)


def _fix(desc: Any, d: dict[str, Any]) -> dict[str, Any]:
    for f in desc.fields:
        if f.name not in d:
            continue
        v = d[f.name]
        mt = f.message_type
        if mt is not None and mt.GetOptions().map_entry:
            vf = mt.fields_by_name["value"]
            d[f.name] = {k: _value(vf, x) for k, x in v.items()}
        elif isinstance(v, list):
            d[f.name] = [_value(f, x) for x in v]
        else:
            d[f.name] = _value(f, v)
    return d


def _value(f: FieldDescriptor, v: Any) -> Any:
    mt = f.message_type
    if mt is not None and isinstance(v, dict):
        if mt.full_name == PARAMETER_VALUE:
            return parameter_value(v)
        return _fix(mt, v)
    if f.type in _INT64 and isinstance(v, str):
        return int(v)
    return v


def parameter_value(v: Mapping[str, Any]) -> Any:
    """{"int_value": "10"} -> 10 (a ParameterValue as JSON, or its dict)."""
    if "int_value" in v:
        return int(v["int_value"])
    if "double_value" in v:
        return float(v["double_value"])
    return v.get("string_value", "")


def enum_names(enum: _EnumTypeWrapper[E], prefix: str) -> dict[str, E]:
    """A proto enum's values by lower-case name without `prefix` ("weighted_vote"), the
    unspecified 0 left out: choices for a flag, and the names a table prints."""
    return {n.removeprefix(prefix).lower(): v for n, v in enum.items() if v}


def when_field(msg: Any, field: str) -> str:
    """A message's timestamp field in UTC, "-" when unset (read as nanoseconds: a naive
    datetime would be taken for local time)."""
    return when(getattr(msg, field).ToNanoseconds()) if msg.HasField(field) else "-"


def delete_each(
    noun: str,
    names: Iterable[str],
    delete: Callable[[str], object],
    json: bool,
    resolve: Callable[[str], str] | None = None,
) -> int:
    """What every `rm` does: deletes each in turn (`delete` takes the id; `resolve` turns
    a name into it), saying so for each, or with --json prints ``{"deleted": [ids]}`` once
    all are gone. The first refusal stops it: main reports the error, and those before it
    stay deleted and were said."""
    deleted: list[str] = []
    for name in names:
        did = resolve(name) if resolve is not None else name
        delete(did)
        deleted.append(did)
        if not json:
            print(f"deleted {noun} {name}" + ("" if did == name else f" ({did})"))
    if json:
        print_json({"deleted": deleted})
    return 0


def print_json(value: Any, out: TextIO | None = None) -> None:
    if isinstance(value, Message):
        value = proto_json(value)
    (out or sys.stdout).write(json.dumps(value, indent=2, default=_default) + "\n")


def json_line(value: Any) -> str:
    """`value` as `print_json` writes it, on one line: one object per line for streams."""
    if isinstance(value, Message):
        value = proto_json(value)
    return json.dumps(value, default=_default)


def _default(v: Any) -> Any:
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    if isinstance(v, datetime):
        return v.isoformat()
    return str(v)
