"""Typed expression trees: what the checker produces and both code generators consume.

Nodes are frozen dataclasses compared by structure, so equal subexpressions (the same
`sma(close, fast)` written twice, or reached through two user indicators) are one key in
the generators' memo tables and are computed once. Every node carries its type:

- `int`, `num`, `bool`: a value fixed for the whole run (a literal or a parameter);
- `series`, `bseries`: one float / one bool per bar;
- `choice`, `str`: a categorical parameter and a string literal, only compared together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Type = Literal["int", "num", "bool", "series", "bseries", "choice", "str"]
NUMERIC: frozenset[str] = frozenset({"int", "num", "series"})
BOOLEAN: frozenset[str] = frozenset({"bool", "bseries"})
SERIES: frozenset[str] = frozenset({"series", "bseries"})

PRICES: tuple[str, ...] = ("open", "high", "low", "close", "volume", "hl2", "hlc3", "ohlc4")


@dataclass(frozen=True)
class Expr:
    type: Type


@dataclass(frozen=True)
class Const(Expr):
    value: float  # bools are 0.0 / 1.0


@dataclass(frozen=True)
class Param(Expr):
    index: int
    """Position in the parameter vector."""
    name: str


@dataclass(frozen=True)
class Price(Expr):
    name: str  # one of PRICES


@dataclass(frozen=True)
class ChoiceIs(Expr):
    param: Param
    choice: int
    text: str


@dataclass(frozen=True)
class Arith(Expr):
    op: str  # + - * /
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Neg(Expr):
    operand: Expr


@dataclass(frozen=True)
class Compare(Expr):
    op: str  # < <= > >= == !=
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Logic(Expr):
    op: str  # and / or
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not(Expr):
    operand: Expr


@dataclass(frozen=True)
class Select(Expr):
    cond: Expr
    then: Expr
    other: Expr


@dataclass(frozen=True)
class Indicator(Expr):
    """A built-in indicator's output `output` (0 for single-valued ones)."""

    name: str
    args: tuple[Expr, ...]
    output: int


@dataclass(frozen=True)
class Shift(Expr):
    """`x[n]`: the value `n` bars ago; NaN (false for bool series) before the first bar."""

    operand: Expr
    offset: Expr  # int Const or int Param


@dataclass(frozen=True)
class Cross(Expr):
    up: bool
    left: Expr
    right: Expr


@dataclass(frozen=True)
class BarsSince(Expr):
    """Bars since `cond` was last true (0 on that bar), NaN before it ever was."""

    cond: Expr


@dataclass(frozen=True)
class IsNa(Expr):
    operand: Expr


@dataclass(frozen=True)
class Nz(Expr):
    operand: Expr
    replacement: Expr


@dataclass(frozen=True)
class Abs(Expr):
    operand: Expr


@dataclass(frozen=True)
class Position(Expr):
    """The current target (+1, 0, -1) while the rules run: only allowed in rules."""


def children(e: Expr) -> tuple[Expr, ...]:
    if isinstance(e, Arith | Compare | Logic | Cross):
        return (e.left, e.right)
    if isinstance(e, Neg | Not | IsNa | Abs):
        return (e.operand,)
    if isinstance(e, Select):
        return (e.cond, e.then, e.other)
    if isinstance(e, Indicator):
        return e.args
    if isinstance(e, Shift):
        return (e.operand, e.offset)
    if isinstance(e, BarsSince):
        return (e.cond,)
    if isinstance(e, Nz):
        return (e.operand, e.replacement)
    if isinstance(e, ChoiceIs):
        return (e.param,)
    return ()


def _cached_hash(self: Expr) -> int:
    """Structural hash computed once per node: a shared subtree is hashed once, not once
    per path to it (a chain of named series doubling each other would otherwise cost
    2^depth per lookup in the generators' memo tables)."""
    cached = self.__dict__.get("_hash")
    if cached is None:
        fields = tuple(self.__dict__[name] for name in self.__dataclass_fields__)
        cached = hash((type(self).__name__, fields))
        object.__setattr__(self, "_hash", cached)
    return int(cached)


for _cls in (Expr, Const, Param, Price, ChoiceIs, Arith, Neg, Compare, Logic, Not, Select,
             Indicator, Shift, Cross, BarsSince, IsNa, Nz, Abs, Position):  # fmt: skip
    _cls.__hash__ = _cached_hash  # type: ignore[method-assign,assignment]


def tree_size(e: Expr, memo: dict[int, tuple[Expr, int]]) -> int:
    """Nodes of `e` counted with multiplicity (what inline code generation would emit).

    `memo` maps id(node) -> (node, size); holding the node keeps its id from being reused.
    """
    hit = memo.get(id(e))
    if hit is not None:
        return hit[1]
    size = 1 + sum(tree_size(c, memo) for c in children(e))
    memo[id(e)] = (e, size)
    return size
