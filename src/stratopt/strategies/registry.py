"""The strategy registry: built-ins discovered from `strategies/library/`, plus plugins.

Built-ins load on first use, not on `import stratopt.strategies`, so importing the package
stays cheap for processes that never backtest (the API gateway, migrations, the CLI).
Every module in the library package must define `STRATEGY`; third-party strategies join
through `register()`. Names are unique: a duplicate is a programming error and raises.
The module-level functions use one process-wide `StrategyRegistry`; tests build their own.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable

from stratopt.strategies.base import StrategyType

LIBRARY_PACKAGE = "stratopt.strategies.library"


def builtin_modules(package_name: str = LIBRARY_PACKAGE) -> list[str]:
    """Fully qualified module names of a strategy package, in a stable order."""
    package = importlib.import_module(package_name)
    return sorted(
        f"{package_name}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    )


def load_library(package_name: str = LIBRARY_PACKAGE) -> list[StrategyType]:
    """The `STRATEGY` of every module in a strategy package; TypeError if one lacks it."""
    found = []
    for module_name in builtin_modules(package_name):
        strategy = getattr(importlib.import_module(module_name), "STRATEGY", None)
        if not isinstance(strategy, StrategyType):
            raise TypeError(f"{module_name} must define STRATEGY = StrategyType(...)")
        found.append(strategy)
    return found


class StrategyRegistry:
    """Strategies by name, filled lazily from `loader` the first time anyone asks."""

    def __init__(self, loader: Callable[[], list[StrategyType]] = load_library) -> None:
        self._loader = loader
        self._lock = threading.RLock()
        self._strategies: dict[str, StrategyType] = {}
        self._loaded = False

    def register(self, strategy: StrategyType) -> StrategyType:
        """Add a strategy; ValueError if its name is taken. Returns it for chaining."""
        with self._lock:
            self._ensure_loaded()
            self._add(strategy)
        return strategy

    def get(self, name: str) -> StrategyType:
        """The strategy called `name`; KeyError (naming the known ones) if there is none."""
        with self._lock:
            self._ensure_loaded()
            try:
                return self._strategies[name]
            except KeyError:
                known = sorted(self._strategies)
                raise KeyError(f"unknown strategy {name!r}; known: {known}") from None

    def all(self) -> list[StrategyType]:
        """Every registered strategy, sorted by name."""
        with self._lock:
            self._ensure_loaded()
            return [self._strategies[n] for n in sorted(self._strategies)]

    def names(self) -> list[str]:
        with self._lock:
            self._ensure_loaded()
            return sorted(self._strategies)

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        loaded = self._loader()
        staged: dict[str, StrategyType] = {}
        for strategy in loaded:
            if strategy.name in staged:
                raise ValueError(f"strategy {strategy.name!r} is defined twice")
            staged[strategy.name] = strategy
        for strategy in staged.values():
            self._add(strategy)
        self._loaded = True

    def _add(self, strategy: StrategyType) -> None:
        if strategy.name in self._strategies:
            raise ValueError(f"strategy {strategy.name!r} is already registered")
        self._strategies[strategy.name] = strategy


_default = StrategyRegistry()


def register(strategy: StrategyType) -> StrategyType:
    """Add a strategy to the process-wide registry (ValueError on a duplicate name)."""
    return _default.register(strategy)


def get(name: str) -> StrategyType:
    """The strategy called `name` (KeyError if unknown)."""
    return _default.get(name)


def all() -> list[StrategyType]:
    """Every registered strategy, sorted by name."""
    return _default.all()


def names() -> list[str]:
    """Names of every registered strategy, sorted."""
    return _default.names()
