"""Field-by-field validation of user strategies, returning every problem at once."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stratopt.engine.options import ExecutionOptions
from stratopt.errors import FieldViolation
from stratopt.live.alerts import rule_problems
from stratopt.strategies import registry
from stratopt.strategies.base import StrategyType
from stratopt.strategies.ensemble import ENSEMBLE_METHODS, ENSEMBLE_TYPE

NAME_MAX = 100
DESCRIPTION_MAX = 4000
MAX_SYMBOLS = 50
MAX_TAGS = 20
TAG_MAX = 32
MIN_ENSEMBLE = 2
MAX_ENSEMBLE = 10
STATUSES = ("draft", "active", "archived")

SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9._:/!\-]{0,31}$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,31}$")
TIMEFRAME = re.compile(r"^([1-9][0-9]{0,3})(s|m|h|d|w)$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class StrategyFields:
    """The user-settable fields of a strategy, in domain form (enums as lower-case words)."""

    name: str = ""
    description: str = ""
    strategy_type: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    symbols: list[str] = field(default_factory=list)
    timeframe: str = ""
    tags: list[str] = field(default_factory=list)
    status: str = "draft"
    # What the owner set (explicit fields only are stored; see engine/options.py).
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)
    ensemble_members: list[dict[str, Any]] = field(default_factory=list)
    ensemble_method: str = ""
    alert_rules: list[dict[str, Any]] = field(default_factory=list)
    # Problems found while reading the request, by field (values a domain type refused, such
    # as an out-of-range execution option); validate() reports them with all the others.
    rejected: dict[str, list[FieldViolation]] = field(default_factory=dict)


UPDATABLE = (
    "name",
    "description",
    "parameters",
    "symbols",
    "timeframe",
    "tags",
    "status",
    "execution",
    "ensemble_members",
    "ensemble_method",
    "alert_rules",
)


def normalize(f: StrategyFields) -> StrategyFields:
    """Canonical forms users expect: trimmed name, upper-case symbols, lower-case tags."""
    f.name = f.name.strip()
    f.symbols = [s.strip().upper() for s in f.symbols]
    f.tags = sorted({t.strip().lower() for t in f.tags})
    f.timeframe = f.timeframe.strip().lower()
    if f.strategy_type == ENSEMBLE_TYPE and not f.ensemble_method:
        f.ensemble_method = "weighted_vote"
    return f


def validate(
    f: StrategyFields, types: Mapping[str, StrategyType] | None = None
) -> list[FieldViolation]:
    """Every problem of `f`; `types` are user strategy types already resolved for the owner
    (services/type_resolution.py), looked up before the built-in registry."""
    v = [x for found in f.rejected.values() for x in found]
    v += _name(f.name)
    if len(f.description) > DESCRIPTION_MAX:
        v.append(FieldViolation("strategy.description", f"at most {DESCRIPTION_MAX} characters"))
    v += _type_and_parameters(f, types or {})
    v += _symbols(f.symbols)
    if f.timeframe and not TIMEFRAME.match(f.timeframe):
        v.append(
            FieldViolation("strategy.timeframe", "expected a number and a unit s/m/h/d/w, e.g. 15m")
        )
    v += _tags(f.tags)
    if f.status not in STATUSES:
        v.append(FieldViolation("strategy.status", f"must be one of {', '.join(STATUSES)}"))
    v += _alert_rules(f.alert_rules)
    return v


def _name(name: str) -> list[FieldViolation]:
    if not name:
        return [FieldViolation("strategy.name", "required")]
    if len(name) > NAME_MAX:
        return [FieldViolation("strategy.name", f"at most {NAME_MAX} characters")]
    if _CONTROL.search(name):
        return [FieldViolation("strategy.name", "must not contain control characters")]
    return []


def _type_and_parameters(
    f: StrategyFields, types: Mapping[str, StrategyType]
) -> list[FieldViolation]:
    if not f.strategy_type:
        return [FieldViolation("strategy.strategy_type", "required")]
    if f.strategy_type == ENSEMBLE_TYPE:
        return _ensemble(f)
    try:
        stype = types.get(f.strategy_type) or registry.get(f.strategy_type)
    except KeyError:
        return [
            FieldViolation(
                "strategy.strategy_type",
                f"unknown strategy type {f.strategy_type!r}; see ListStrategyTypes",
            )
        ]
    out = [
        FieldViolation(f"strategy.{x.field}", x.description) for x in stype.validate(f.parameters)
    ]
    if f.ensemble_members:
        out.append(FieldViolation("strategy.ensemble_members", "only for ensemble strategies"))
    return out


def _ensemble(f: StrategyFields) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    n = len(f.ensemble_members)
    if not MIN_ENSEMBLE <= n <= MAX_ENSEMBLE:
        out.append(
            FieldViolation(
                "strategy.ensemble_members",
                f"an ensemble has {MIN_ENSEMBLE}..{MAX_ENSEMBLE} members",
            )
        )
    ids = [m.get("strategy_id", "") for m in f.ensemble_members]
    if len(set(ids)) != len(ids):
        out.append(FieldViolation("strategy.ensemble_members", "members must be distinct"))
    for i, m in enumerate(f.ensemble_members):
        if not m.get("strategy_id"):
            out.append(FieldViolation(f"strategy.ensemble_members[{i}].strategy_id", "required"))
        w = float(m.get("weight", 1.0))
        if not math.isfinite(w) or w <= 0:
            out.append(FieldViolation(f"strategy.ensemble_members[{i}].weight", "must be > 0"))
    if f.ensemble_method not in ENSEMBLE_METHODS:
        out.append(
            FieldViolation("strategy.ensemble_method", f"one of {', '.join(ENSEMBLE_METHODS)}")
        )
    if f.parameters:
        out.append(FieldViolation("strategy.parameters", "an ensemble has no parameters"))
    return out


def _symbols(symbols: list[str]) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if len(symbols) > MAX_SYMBOLS:
        out.append(FieldViolation("strategy.symbols", f"at most {MAX_SYMBOLS} symbols"))
    if len(set(symbols)) != len(symbols):
        out.append(FieldViolation("strategy.symbols", "duplicate symbols"))
    for i, s in enumerate(symbols):
        if not SYMBOL.match(s):
            out.append(
                FieldViolation(
                    f"strategy.symbols[{i}]",
                    "1-32 characters: letters, digits and . _ : / ! - (e.g. BTCUSDT, ES1!)",
                )
            )
    return out


def _tags(tags: list[str]) -> list[FieldViolation]:
    out: list[FieldViolation] = []
    if len(tags) > MAX_TAGS:
        out.append(FieldViolation("strategy.tags", f"at most {MAX_TAGS} tags"))
    for i, t in enumerate(tags):
        if not _TAG.match(t):
            out.append(FieldViolation(f"strategy.tags[{i}]", "1-32 characters: a-z, 0-9, _ and -"))
    return out


def _alert_rules(rules: list[dict[str, Any]]) -> list[FieldViolation]:
    """The rules a running strategy evaluates (see live.alerts for the metric names)."""
    return [FieldViolation(f"strategy.{field}", problem) for field, problem in rule_problems(rules)]
