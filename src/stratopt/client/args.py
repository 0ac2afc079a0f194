"""Argument helpers shared by the client commands: help texts with defaults, parameters
(``-p NAME=VALUE``) and execution options (``--commission`` and friends)."""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from stratopt.client.output import CliError

# ``5-50``, ``0.5-2``: a range written with a dash, which the documented forms spell 5:50.
_DASH_RANGE = re.compile(r"^-?\d+(\.\d+)?-\d")


class HelpFormatter(argparse.HelpFormatter):
    """Shows every option's default; text with line breaks (the epilogs) is kept as it is,
    other descriptions are wrapped.

    Options whose default is the engine's (``engine_option`` set on the action) show that
    default, read from ``engine/options.py`` only when help is printed."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "%(default)" in text or action.default is argparse.SUPPRESS:
            return text
        engine = getattr(action, "engine_option", None)
        if engine:
            from stratopt.engine.options import DEFAULTS

            value = DEFAULTS[engine]
            shown = "inferred from the bar spacing" if value is None else str(value)
            return f"{text} (default: {shown})"
        if action.default in (None, False, [], "") or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def subparser(
    sub: Any, name: str, help: str, *, aliases: Sequence[str] = (), description: str = ""
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        name,
        help=help,
        description=description or help,
        aliases=list(aliases),
        formatter_class=HelpFormatter,
    )
    return p


def add_json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


# -- strategy parameters ----------------------------------------------------------------------


def value(text: str) -> int | float | str:
    """``10`` -> 10, ``0.5`` -> 0.5, anything else stays a string."""
    for cast in (int, float):
        try:
            return cast(text)  # type: ignore[no-any-return]
        except ValueError:
            pass
    return text


def parse_params(items: Sequence[str], flag: str = "-p") -> dict[str, int | float | str]:
    """``-p fast=10 -p slow=50`` -> {"fast": 10, "slow": 50}, with errors that show the form."""
    out: dict[str, int | float | str] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name:
            raise CliError(f"{flag} {item!r}: expected NAME=VALUE, e.g. {flag} fast=10")
        if ":" in text or _DASH_RANGE.match(text):
            raise CliError(
                f"{flag} {item}: a run takes one value per parameter; search a range with "
                f"`stratopt optimize --param {name}=LOW:HIGH[:STEP]` (e.g. {name}=5:50)"
            )
        out[name] = value(text)
    return out


# -- execution options ------------------------------------------------------------------------

EXECUTION_FLAGS: tuple[tuple[str, str, Any, str], ...] = (
    ("--cash", "initial_cash", float, "initial cash"),
    ("--size", "position_size", float, "fraction of equity per position, in (0, 1]"),
    ("--direction", "direction", str, "long, short or both"),
    ("--commission", "commission", float, "fraction of traded notional per side (0.001 = 10 bps)"),
    ("--slippage", "slippage", float, "fraction of price, against the trader"),
    ("--stop-loss", "stop_loss", float, "fraction of the entry price (0 = off)"),
    ("--take-profit", "take_profit", float, "fraction of the entry price (0 = off)"),
    ("--trailing-stop", "trailing_stop", float, "fraction of the best price since entry (0 = off)"),
    ("--periods-per-year", "periods_per_year", float, "bars per year, for annualizing"),
)
METAVARS = {"initial_cash": "AMOUNT", "periods_per_year": "N"}


def add_execution(p: argparse.ArgumentParser, *, skip: Sequence[str] = ()) -> None:
    """The execution option flags; omitted ones take the strategy's or the engine's value."""
    g = p.add_argument_group(
        "execution options",
        "omitted options take the stored strategy's value, else the engine's default",
    )
    for flag, name, cast, text in EXECUTION_FLAGS:
        if name in skip:
            continue
        kw: dict[str, Any] = {"dest": name, "default": None, "help": text}
        if name == "direction":
            kw["choices"] = ["long", "short", "both"]
        else:
            kw["type"] = cast
            kw["metavar"] = METAVARS.get(name, "FRACTION")
        action = g.add_argument(flag, **kw)
        action.engine_option = name  # type: ignore[attr-defined]
    action = g.add_argument(
        "--fill-on-close",
        dest="fill_on_close",
        action="store_true",
        default=None,
        help="fill at the signal bar's close instead of the next bar's open",
    )
    action.engine_option = "fill_on_close"  # type: ignore[attr-defined]


def execution_given(args: argparse.Namespace) -> dict[str, Any]:
    """The execution options given on the command line (engine names and units)."""
    names = [n for _, n, _, _ in EXECUTION_FLAGS] + ["fill_on_close"]
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def execution_to_pb(given: Mapping[str, Any]) -> Any:
    """The given options as a proto, each listed in set_fields (so an explicit 0 counts)."""
    from stratopt.v1 import common_pb2 as c

    directions = {
        "long": c.TRADE_DIRECTION_LONG_ONLY,
        "short": c.TRADE_DIRECTION_SHORT_ONLY,
        "both": c.TRADE_DIRECTION_BOTH,
    }
    e = c.ExecutionOptions()
    for name, v in given.items():
        if name == "direction":
            e.direction = directions[v]
        else:
            setattr(e, name, v)
        e.set_fields.paths.append(name)
    return e


def execution_from_pb(e: Any) -> dict[str, Any]:
    """A resolved ExecutionOptions message as engine names and values."""
    from stratopt.v1 import common_pb2 as c

    directions = {
        c.TRADE_DIRECTION_LONG_ONLY: "long",
        c.TRADE_DIRECTION_SHORT_ONLY: "short",
        c.TRADE_DIRECTION_BOTH: "both",
    }
    out: dict[str, Any] = {n: getattr(e, n) for _, n, _, _ in EXECUTION_FLAGS if n != "direction"}
    out["direction"] = directions.get(e.direction, "long")
    out["fill_on_close"] = e.fill_on_close
    return out


# -- times -------------------------------------------------------------------------------------


def utc_time(flag: str, text: str) -> datetime:
    """A time given on the command line (ISO 8601; UTC unless it says otherwise)."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(
            f"{flag} {text!r}: expected a time such as 2021-03-01 or 2021-03-01T12:00"
        ) from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)
