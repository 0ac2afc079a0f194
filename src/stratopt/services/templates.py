"""Ready-made starting points: a strategy type with parameters people actually use."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from stratopt.engine.options import ExecutionOptions
from stratopt.errors import InvalidArgument
from stratopt.services.validation import StrategyFields
from stratopt.strategies import registry


@dataclass(frozen=True)
class Template:
    id: str
    display_name: str
    description: str
    strategy_type: str
    parameters: dict[str, Any]
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)
    tags: tuple[str, ...] = ()


_TEMPLATES: tuple[Template, ...] = (
    Template(
        "golden-cross",
        "Golden cross (50/200 SMA)",
        "The classic long-term trend filter: long while the 50-bar SMA is above the 200-bar.",
        "sma_crossover",
        {"fast": 50, "slow": 200},
        ExecutionOptions(direction="long"),
        ("trend", "classic"),
    ),
    Template(
        "fast-ema-cross",
        "Fast EMA cross (12/26)",
        "A responsive EMA crossover for intraday trend following, long and short.",
        "ema_crossover",
        {"fast": 12, "slow": 26},
        ExecutionOptions(direction="both", commission=0.0005),
        ("trend", "intraday"),
    ),
    Template(
        "rsi-2",
        "Connors-style RSI(2) pullback",
        "Buy deep short-term oversold dips, exit on the rebound.",
        "rsi_reversion",
        {"period": 2},
        ExecutionOptions(direction="long"),
        ("mean-reversion", "swing"),
    ),
    Template(
        "turtle-20",
        "Turtle breakout (20 bars)",
        "Richard Dennis' turtle entry: trade 20-bar channel breakouts.",
        "donchian_breakout",
        {"period": 20},
        ExecutionOptions(direction="both", trailing_stop=0.1),
        ("breakout", "classic"),
    ),
    Template(
        "bollinger-fade",
        "Bollinger band fade",
        "Fade moves outside the 2-sigma bands back to the mean.",
        "bollinger_reversion",
        {},
        ExecutionOptions(direction="both", stop_loss=0.05),
        ("mean-reversion",),
    ),
)


def templates() -> list[Template]:
    """Templates whose strategy type exists and whose parameters are valid for it."""
    out = []
    for t in _TEMPLATES:
        try:
            stype = registry.get(t.strategy_type)
        except KeyError:
            continue
        known = {p.name for p in stype.params}
        params = {k: v for k, v in t.parameters.items() if k in known}
        if stype.validate(params):
            continue
        out.append(
            Template(
                t.id,
                t.display_name,
                t.description,
                t.strategy_type,
                dict(stype.resolve(params)),
                t.execution,
                t.tags,
            )
        )
    return out


def get(template_id: str) -> Template | None:
    return next((t for t in templates() if t.id == template_id), None)


def list_templates(strategy_type: str = "", category: str = "") -> list[Template]:
    """The templates, optionally only those of one strategy type or category."""
    return [
        t
        for t in templates()
        if (not strategy_type or t.strategy_type == strategy_type)
        and (not category or registry.get(t.strategy_type).category == category)
    ]


def apply(template_id: str, f: StrategyFields) -> StrategyFields:
    """`f` with what it leaves unset taken from the template: the strategy type, tags, and
    each parameter (when the type is the template's) and execution option."""
    t = get(template_id)
    if t is None:
        raise InvalidArgument.field("template_id", "unknown template; see ListStrategyTemplates")
    stype = f.strategy_type or t.strategy_type
    return dataclasses.replace(
        f,
        strategy_type=stype,
        parameters={**t.parameters, **f.parameters} if stype == t.strategy_type else f.parameters,
        execution=f.execution.over(t.execution),
        tags=f.tags or list(t.tags),
    )
