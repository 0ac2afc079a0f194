"""Proto <-> domain conversions shared by the servicers (enums, timestamps, parameters,
execution options)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf import timestamp_pb2
from google.protobuf.internal.containers import MessageMap

from stratopt.engine.options import FIELDS, ExecutionOptions, InvalidExecutionOptions
from stratopt.errors import FieldViolation, InvalidArgument
from stratopt.v1 import common_pb2 as c

CATEGORY_TO_PB = {
    "trend_following": c.STRATEGY_CATEGORY_TREND_FOLLOWING,
    "mean_reversion": c.STRATEGY_CATEGORY_MEAN_REVERSION,
    "breakout": c.STRATEGY_CATEGORY_BREAKOUT,
    "momentum": c.STRATEGY_CATEGORY_MOMENTUM,
    "volatility": c.STRATEGY_CATEGORY_VOLATILITY,
    "ensemble": c.STRATEGY_CATEGORY_ENSEMBLE,
}
CATEGORY_FROM_PB = {v: k for k, v in CATEGORY_TO_PB.items()}
RISK_TO_PB = {"low": c.RISK_LEVEL_LOW, "medium": c.RISK_LEVEL_MEDIUM, "high": c.RISK_LEVEL_HIGH}
RISK_FROM_PB = {v: k for k, v in RISK_TO_PB.items()}
DIRECTION_TO_PB = {
    "long": c.TRADE_DIRECTION_LONG_ONLY,
    "short": c.TRADE_DIRECTION_SHORT_ONLY,
    "both": c.TRADE_DIRECTION_BOTH,
}
DIRECTION_FROM_PB = {v: k for k, v in DIRECTION_TO_PB.items()}
KIND_TO_PB = {
    "int": c.PARAMETER_KIND_INT,
    "float": c.PARAMETER_KIND_FLOAT,
    "categorical": c.PARAMETER_KIND_CATEGORICAL,
}


def enum_from_pb(
    value: int, table: Mapping[Any, str], field: str, *, allow_unset: bool = True
) -> str:
    """Maps a proto enum to its domain word; unknown numbers are a client error, not a crash."""
    if value == 0 and allow_unset:
        return ""
    try:
        return table[value]
    except KeyError:
        raise InvalidArgument.field(field, f"unknown enum value {value}") from None


def ts_to_pb(dt: datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(dt.astimezone(UTC))
    return t


def ns_to_pb(ns: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


def pb_to_ns(t: timestamp_pb2.Timestamp) -> int:
    return t.seconds * 1_000_000_000 + t.nanos


def param_from_pb(v: c.ParameterValue) -> int | float | str | None:
    kind = v.WhichOneof("kind")
    if kind == "int_value":
        return int(v.int_value)
    if kind == "double_value":
        return float(v.double_value)
    if kind == "string_value":
        return v.string_value
    return None


def params_from_pb(m: Mapping[str, c.ParameterValue], field: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    bad: list[FieldViolation] = []
    for name, v in m.items():
        value = param_from_pb(v)
        if value is None:
            bad.append(FieldViolation(f"{field}.{name}", "no value set"))
        elif isinstance(value, float) and not math.isfinite(value):
            bad.append(FieldViolation(f"{field}.{name}", "must be finite"))
        else:
            out[name] = value
    if bad:
        raise InvalidArgument.of(bad)
    return out


def param_to_pb(value: Any) -> c.ParameterValue:
    if isinstance(value, bool):
        return c.ParameterValue(int_value=int(value))
    if isinstance(value, int):
        return c.ParameterValue(int_value=value)
    if isinstance(value, float):
        return c.ParameterValue(double_value=value)
    return c.ParameterValue(string_value=str(value))


def fill_params(target: MessageMap[str, c.ParameterValue], params: Mapping[str, Any]) -> None:
    for k, v in params.items():
        target[k].CopyFrom(param_to_pb(v))


def execution_from_pb(
    e: c.ExecutionOptions, field: str, errors: list[FieldViolation] | None = None
) -> ExecutionOptions:
    """The request's options: a field counts as given when non-zero or named in set_fields.

    Problems become violations named ``{field}.<option>``; they are raised, or appended to
    ``errors`` (and default options returned) for a caller that reports them with others.
    """
    named = set(e.set_fields.paths)
    bad = [
        FieldViolation(f"{field}.set_fields", f"{p!r} is not an option; one of {', '.join(FIELDS)}")
        for p in sorted(named - set(FIELDS))
    ]
    values: dict[str, Any] = {}
    for name in FIELDS:
        if name == "direction":
            if e.direction:
                try:
                    values[name] = enum_from_pb(
                        e.direction, DIRECTION_FROM_PB, f"{field}.direction"
                    )
                except InvalidArgument as x:
                    bad += x.violations
            elif name in named:
                values[name] = None  # UNSPECIFIED, named: the default, given explicitly
            continue
        value = getattr(e, name)
        if value or name in named:
            values[name] = value
    try:
        options = ExecutionOptions.from_dict(values)
    except InvalidExecutionOptions as x:
        bad += [FieldViolation(f"{field}.{name}", message) for name, message in x.violations]
        options = ExecutionOptions()
    if bad and errors is None:
        raise InvalidArgument.of(bad)
    if errors is not None:
        errors += bad
    return options


def execution_to_pb(options: ExecutionOptions) -> c.ExecutionOptions:
    """The given fields of ``options``, each listed in set_fields (so zeros round-trip)."""
    e = c.ExecutionOptions()
    for name, value in options.given().items():
        if name == "direction":
            e.direction = DIRECTION_TO_PB[value]  # type: ignore[assignment]
        else:
            setattr(e, name, 0.0 if value is None else value)
    e.set_fields.paths.extend(options.given())
    return e


def finite(x: Any) -> float:
    """JSON-safe float for metrics: NaN and inf become 0 (documented in the README)."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return 0.0
    return f if math.isfinite(f) else 0.0
