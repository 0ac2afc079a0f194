"""Bounds on a definition, so hostile text costs bounded time and memory to reject."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """Every limit the parser and checker enforce; exceeding one is a RuleError."""

    max_chars: int = 20_000
    """Characters of one definition (strategy or indicator)."""
    max_tokens: int = 3_000
    max_depth: int = 40
    """Nesting of parentheses, calls, operators and indicator expansion."""
    max_lookback: int = 5_000
    """Largest `x[n]`, and the largest length any indicator or window may take."""
    max_params: int = 32
    max_series: int = 32
    """Named series (and inputs of an indicator)."""
    max_nodes: int = 2_000
    """Expression nodes after user indicators and named series are expanded inline.

    This bounds numba's compile time, which grows faster than linearly with the size of
    the generated function (docs/rules.md, "Limits and errors")."""
    max_name: int = 40
    max_string: int = 200
    """Quoted strings: choices and parameter descriptions."""


LIMITS = Limits()
