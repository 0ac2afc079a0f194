"""User strategy types by name: "user_<definition id>" compiled from its rule text, cached.

A user type is referred to as `user_<32 hex>` (the id of its stored definition) wherever a
built-in type name goes: a strategy's `strategy_type`, backtests, job specs, live runs,
exports. The name is an id rather than "owner/name" because it must stay valid across a
rename or a share, and because `StrategyType.name` is a snake_case identifier that lands in
records, Pine titles and logs. Built-in names never take this shape.

Everything needed to compile one travels as a `TypeSource` (the text plus the pinned user
indicators it calls), so a worker in another process compiles it without the database.
Compiling needs the rule language, a layer above this package: see `optimize/user_types.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from stratopt.strategies.base import Category, RiskLevel

PREFIX = "user_"
CATEGORY: Category = "trend_following"
RISK_LEVEL: RiskLevel = "medium"
"""What every user type is filed under (strategies and ListCategories count it there); the
language has no way to say otherwise yet."""
_NAME = re.compile(r"^user_[0-9a-f]{32}$")


def user_types_match(category: str = "", risk_level: str = "") -> bool:
    """Whether user types pass a type-library filter ("" matches everything)."""
    return category in ("", CATEGORY) and risk_level in ("", RISK_LEVEL)


def is_user_type(name: str) -> bool:
    """Whether `name` has the shape of a user type's name (it may still not exist)."""
    return bool(_NAME.match(name))


def type_name(definition_id: str) -> str:
    return PREFIX + definition_id


def definition_id(name: str) -> str:
    """The stored definition's id behind a user type name ("" if it is not one)."""
    return name[len(PREFIX) :] if is_user_type(name) else ""


@dataclass(frozen=True)
class TypeSource:
    """What compiles a user type: its name, the rule text and the user indicators it calls.

    Stored as JSON in job specs and live run specs (`to_dict` / `from_dict` round-trip).
    """

    name: str
    source: str
    indicators: Mapping[str, str] = field(default_factory=dict)
    display_name: str = ""
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "indicators": dict(self.indicators),
            "display_name": self.display_name,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TypeSource:
        return cls(
            name=str(d["name"]),
            source=str(d["source"]),
            indicators={str(k): str(v) for k, v in dict(d.get("indicators") or {}).items()},
            display_name=str(d.get("display_name", "")),
            description=str(d.get("description", "")),
        )
