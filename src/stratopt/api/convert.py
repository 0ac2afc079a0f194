"""Proto <-> domain conversions shared by the servicers (enums, timestamps, parameters,
execution options)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2
from google.protobuf.internal.containers import MessageMap

from stratopt.engine.options import FIELDS, ExecutionOptions, InvalidExecutionOptions
from stratopt.errors import FieldViolation, InvalidArgument
from stratopt.strategies.params import ParamSpec
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


# google.protobuf.Timestamp's valid range: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
TS_MIN_SECONDS = -62_135_596_800
TS_MAX_SECONDS = 253_402_300_799
# google.protobuf.Duration's valid range: about +-10,000 years.
DURATION_MAX_SECONDS = 315_576_000_000
# Bar times are int64 nanoseconds since 1970: 1677-09-21 .. 2262-04-11.
NS_MIN = -(2**63)
NS_MAX = 2**63 - 1


def _check_ts(t: timestamp_pb2.Timestamp, field: str) -> None:
    if not 0 <= t.nanos <= 999_999_999:
        raise InvalidArgument.field(field, "nanos must be in 0..999999999")
    if not TS_MIN_SECONDS <= t.seconds <= TS_MAX_SECONDS:
        raise InvalidArgument.field(field, "must be between 0001-01-01 and 9999-12-31 (UTC)")


def ts_from_pb(t: timestamp_pb2.Timestamp, field: str) -> datetime:
    """A valid Timestamp as an aware UTC datetime; anything else names `field` as invalid."""
    _check_ts(t, field)
    return t.ToDatetime(tzinfo=UTC)


def pb_to_ns(t: timestamp_pb2.Timestamp, field: str = "time") -> int:
    """Nanoseconds since 1970, the unit of bar times; out of their range is a client error."""
    _check_ts(t, field)
    ns = t.seconds * 1_000_000_000 + t.nanos
    if not NS_MIN <= ns <= NS_MAX:
        raise InvalidArgument.field(field, "must be between 1677-09-22 and 2262-04-11 (UTC)")
    return ns


def duration_from_pb(d: duration_pb2.Duration, field: str) -> timedelta:
    """A valid Duration as a timedelta; anything else names `field` as invalid."""
    if not -DURATION_MAX_SECONDS <= d.seconds <= DURATION_MAX_SECONDS:
        raise InvalidArgument.field(field, "must be within 10,000 years")
    if not -999_999_999 <= d.nanos <= 999_999_999 or (d.seconds and d.nanos * d.seconds < 0):
        raise InvalidArgument.field(
            field, "nanos must be in -999999999..999999999, with the sign of seconds"
        )
    return d.ToTimedelta()


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


def param_spec_to_pb(p: ParamSpec) -> c.ParameterSpec:
    """A parameter's space as the contract shows it: bounds unset are 0, like the proto's."""
    spec = c.ParameterSpec(
        name=p.name,
        kind=KIND_TO_PB[p.kind],  # type: ignore[arg-type]
        min=float(p.low) if p.low is not None else 0.0,
        max=float(p.high) if p.high is not None else 0.0,
        step=float(p.step) if p.step is not None else 0.0,
        choices=list(p.choices),
        log_scale=bool(p.log),
        description=p.description,
    )
    spec.default_value.CopyFrom(param_to_pb(p.default))
    return spec


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
