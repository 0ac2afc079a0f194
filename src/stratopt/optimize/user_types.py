"""Compiling user strategy types (strategies/user_types.py) through the rule language, cached.

It sits here, the lowest layer that may use both `rules` and `strategies`, because every
consumer of a compiled user type is at or above it: the study spec a worker rebuilds
(`optimize/spec.py`), live runs (`live/`) and the services. Compiled types are cached by
name and definition hash, so the same definition compiles once per process, whichever
request, job or live run asks first (and its numba kernel once per machine, on numba's
disk cache, see `rules.compile_strategy`).

The kernel is compiled in a child process (`compile_strategy(..., isolated=True)`, see
`rules/build.py`) and then read from numba's disk cache here: numba holds the GIL while it
compiles, which for a large definition stalled every other call of a server (its event
loop) and the lease heartbeats of a job worker for tens of seconds. What returns from
here is ready to run: its first call compiles nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from stratopt.rules import compile_strategy, definition_hash
from stratopt.strategies import registry
from stratopt.strategies.base import StrategyType
from stratopt.strategies.user_types import CATEGORY, RISK_LEVEL, TypeSource, is_user_type

CACHE_SIZE = 256
"""Compiled user types kept per process."""

_lock = threading.Lock()
_cache: OrderedDict[tuple[str, ...], StrategyType] = OrderedDict()


def compile_type(src: TypeSource) -> StrategyType:
    """The compiled `StrategyType` (cached); RuleError if the text does not compile,
    CompileError if building its kernel failed (the compiling process crashed or timed out).

    Blocks for as long as a compile takes (seconds, in a child process) for a definition
    this process has not loaded: async callers run it in a thread."""
    key = (
        src.name,
        definition_hash(src.source, src.indicators),
        src.display_name,
        src.description,
    )
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    compiled = compile_strategy(
        src.source,
        name=src.name,
        display_name=src.display_name or src.name,
        description=src.description,
        indicators=dict(src.indicators),
        category=CATEGORY,
        risk_level=RISK_LEVEL,
        isolated=True,
    )
    with _lock:
        _cache[key] = compiled
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


def resolve(name: str, source: TypeSource | None = None) -> StrategyType:
    """A built-in type by name, or the user type `source` compiles to (its name must match).

    KeyError for an unknown built-in or a user type name without its source: the caller
    (a service with database access) is where a user type is found and checked.
    """
    if source is not None and source.name == name:
        return compile_type(source)
    if is_user_type(name):
        raise KeyError(f"user strategy type {name!r} needs its definition")
    return registry.get(name)
