"""Checked program -> Python source of a numba signal function, and its compilation.

Why generated source rather than an interpreter: numba compiles the generated function
like a hand-written kernel (one fused loop over bars, indicators computed by the same
`engine.indicators` kernels), so a rule strategy runs at hand-written speed and produces
bit-identical values (bench/bench_rules.py measures both).

Safety: the source is assembled only from the checked tree. Identifiers are ours (`p0`,
`a3`, `t`), never the user's; numbers are written with `repr(float)` of finite values; the
only callables are the whitelisted indicator kernels and the helpers of `runtime`. No
text of the definition reaches the source (names and strings are resolved to indices).

Semantics per bar t (docs/rules.md): if long, `long_exit` may flatten; if short,
`short_exit` may flatten; then `long_entry` sets +1, else `short_entry` sets -1; the target
is kept otherwise. A comparison with NaN is false, so warm-up bars trigger nothing.

The module is written to a cache directory named by the definition's hash and imported
with `cache=True`, so numba's on-disk cache serves every later process. The function is
compiled for one signature, given in the source: read-only C-contiguous float64 prices
(what a `Bars` holds, and the type `engine.grid_sweep` passes a signal as) and a writable
parameter vector. numba compiles it, or loads it from its disk cache, when the module is
imported, so `load_signal` returns a ready kernel; writable price arrays (a live run's
windows) convert to that signature without another compile, and arrays of any other
layout or dtype are refused (TypeError), as for a built-in kernel used by the sweep.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stratopt.rules import ir
from stratopt.rules.checker import Program
from stratopt.rules.functions import BUILTINS, KERNELS

_PRICE_ARRAYS = {
    "open": "open_",
    "high": "high",
    "low": "low",
    "close": "close",
    "volume": "volume",
}
_DERIVED = {
    "hl2": "((high[{i}] + low[{i}]) / 2.0)",
    "hlc3": "((high[{i}] + low[{i}] + close[{i}]) / 3.0)",
    "ohlc4": "((open_[{i}] + high[{i}] + low[{i}] + close[{i}]) / 4.0)",
}


class _Gen:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.lines: list[str] = []
        self.arrays: dict[ir.Expr, str] = {}
        self.multi: dict[tuple[str, tuple[ir.Expr, ...]], list[str]] = {}
        self.count = 0

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def emit(self, line: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + line)

    # -- arrays: series that must exist as a whole (indicator inputs, shifted operands)
    def array(self, e: ir.Expr) -> str:
        if isinstance(e, ir.Price) and e.name in _PRICE_ARRAYS:
            return _PRICE_ARRAYS[e.name]
        if e in self.arrays:
            return self.arrays[e]
        if isinstance(e, ir.Indicator):
            key = (e.name, e.args)
            if key not in self.multi:
                b = BUILTINS[e.name]
                args = [self.array(a) if k == "series" else self.scalar(a, "t")
                        for a, k in zip(e.args, b.args, strict=True)]  # fmt: skip
                outs = [self.fresh("a") for _ in range(max(1, len(b.outputs)))]
                call = b.numba.format(*args)
                self.emit(f"{', '.join(outs)} = {call}" if len(outs) > 1 else f"{outs[0]} = {call}")
                self.multi[key] = outs
            name = self.multi[key][e.output]
        elif isinstance(e, ir.BarsSince):
            cond = self.scalar(e.cond, "t")  # first: it may emit the arrays it reads
            name, last = self.fresh("a"), self.fresh("last")
            self.emit(f"{name} = np.empty(n, dtype=np.float64)")
            self.emit(f"{last} = -1")
            self.emit("for t in range(n):")
            self.emit(f"if {cond}:", 2)
            self.emit(f"{last} = t", 3)
            self.emit(f"{name}[t] = (t - {last}) if {last} >= 0 else nan", 2)
        else:
            value = self.scalar(e, "t")
            name = self.fresh("a")
            dtype = "np.bool_" if e.type in ir.BOOLEAN else "np.float64"
            self.emit(f"{name} = np.empty(n, dtype={dtype})")
            self.emit("for t in range(n):")
            self.emit(f"{name}[t] = {value}", 2)
        self.arrays[e] = name
        return name

    def _is_array(self, e: ir.Expr) -> bool:
        return e.type in ir.SERIES

    def at(self, e: ir.Expr, idx: str) -> str:
        """`e` at bar `idx` through an array (operands of shifts and crosses)."""
        if not self._is_array(e):
            return self.scalar(e, idx)
        return f"{self.array(e)}[{idx}]"

    # -- scalars: the value at bar `idx` (an index expression), or a run-wide value
    def scalar(self, e: ir.Expr, idx: str) -> str:
        if isinstance(e, ir.Const):
            if e.type == "bool":
                return "True" if e.value else "False"
            if e.type == "int":
                return str(int(e.value))
            return f"({e.value!r})"
        if isinstance(e, ir.Param):
            return f"p{e.index}"
        if isinstance(e, ir.ChoiceIs):
            return f"(p{e.param.index} == {float(e.choice)!r})"
        if isinstance(e, ir.Price):
            if e.name in _PRICE_ARRAYS:
                return f"{_PRICE_ARRAYS[e.name]}[{idx}]"
            return _DERIVED[e.name].format(i=idx)
        if isinstance(e, ir.Position):
            return "pos"
        if isinstance(e, ir.Arith):
            a, b = self.scalar(e.left, idx), self.scalar(e.right, idx)
            if e.op == "/" and not (isinstance(e.right, ir.Const) and e.right.value != 0):
                return f"div({a}, {b})"
            if e.op == "/" and e.left.type == e.right.type == "int":
                return f"(float({a}) / {b})"
            return f"({a} {e.op} {b})"
        if isinstance(e, ir.Neg):
            return f"(-{self.scalar(e.operand, idx)})"
        if isinstance(e, ir.Compare):
            return f"({self.scalar(e.left, idx)} {e.op} {self.scalar(e.right, idx)})"
        if isinstance(e, ir.Logic):
            # `&` / `|` rather than and / or: no branch per operand, which keeps numba's
            # compile time of a large rule near linear; every operand is safe to evaluate.
            op = "&" if e.op == "and" else "|"
            return f"({self.scalar(e.left, idx)} {op} {self.scalar(e.right, idx)})"
        if isinstance(e, ir.Not):
            return f"(not {self.scalar(e.operand, idx)})"
        if isinstance(e, ir.Select):
            c = self.scalar(e.cond, idx)
            return f"({self.scalar(e.then, idx)} if {c} else {self.scalar(e.other, idx)})"
        if isinstance(e, ir.Abs):
            return f"abs({self.scalar(e.operand, idx)})"
        if isinstance(e, ir.IsNa):
            return f"np.isnan({self.scalar(e.operand, idx)})"
        if isinstance(e, ir.Nz):
            return f"nz({self.scalar(e.operand, idx)}, {self.scalar(e.replacement, idx)})"
        if isinstance(e, ir.Indicator | ir.BarsSince):
            return f"{self.array(e)}[{idx}]"
        if isinstance(e, ir.Shift):
            n = self.scalar(e.offset, idx)
            missing = "False" if e.type == "bseries" else "nan"
            return f"({self.at(e.operand, f'{idx} - {n}')} if {idx} >= {n} else {missing})"
        if isinstance(e, ir.Cross):
            op_now, op_before = (">", "<=") if e.up else ("<", ">=")
            before = f"{idx} - 1"
            # At bar 0 the previous index is -1, which reads the last element in bounds;
            # the `idx >= 1` term discards it.
            return (
                f"(({idx} >= 1) & ({self.at(e.left, idx)} {op_now} {self.at(e.right, idx)})"
                f" & ({self.at(e.left, before)} {op_before} {self.at(e.right, before)}))"
            )
        raise TypeError(f"no numba translation for {type(e).__name__}")  # pragma: no cover


def numba_source(program: Program) -> str:
    """The generated module: imports, then `signal(open_, high, low, close, volume, params)`."""
    g = _Gen(program)
    for i, spec in enumerate(program.params):
        g.emit(f"p{i} = int(params[{i}])" if spec.kind == "int" else f"p{i} = params[{i}]")
    rules = {name: g.scalar(expr, "t") for name, expr in program.rules.items()}
    loop = [
        "out = np.zeros(n, dtype=np.int8)",
        "pos = 0",
        "for t in range(n):",
    ]
    body: list[str] = []
    if "long_exit" in rules or "short_exit" in rules:
        body += ["if pos == 1:", f"    if {rules.get('long_exit', 'False')}:", "        pos = 0"]
        body += [
            "elif pos == -1:",
            f"    if {rules.get('short_exit', 'False')}:",
            "        pos = 0",
        ]
    entries = [(r, v) for r, v in (("long_entry", 1), ("short_entry", -1)) if r in rules]
    for k, (rule, value) in enumerate(entries):
        body += [f"{'if' if k == 0 else 'elif'} {rules[rule]}:", f"    pos = {value}"]
    body.append("out[t] = pos")
    header = [
        "# Generated by stratopt.rules from a checked definition; see codegen_numba.py.",
        "import numpy as np",
        "from numba import njit, types",
        f"from stratopt.engine.indicators import {', '.join(KERNELS)}",
        "from stratopt.rules.runtime import div, nz",
        "",
        "nan = np.nan",
        "prices = types.Array(types.float64, 1, 'C', readonly=True)",
        "vector = types.Array(types.float64, 1, 'C')",
        "targets = types.Array(types.int8, 1, 'C')",
        "SIGNATURE = targets(prices, prices, prices, prices, prices, vector)",
        "",
        "",
        "@njit(SIGNATURE, cache=True, nogil=True, error_model='numpy')",
        "def signal(open_, high, low, close, volume, params):",
        "    n = close.shape[0]",
    ]
    tail = ["    " + line for line in loop] + ["        " + line for line in body]
    return "\n".join([*header, *g.lines, *tail, "    return out", ""])


_lock = threading.Lock()
_loaded: dict[str, Callable[..., Any]] = {}
_private_dir: Path | None = None


def cache_dir() -> Path:
    """Where generated modules (and numba's cache of them) live; private to this user.

    `STRATOPT_RULES_CACHE` overrides; else `$XDG_CACHE_HOME/stratopt/rules` (or
    ~/.cache/...). If that is not writable, a private temporary directory is used, which
    only loses the cross-process cache.
    """
    global _private_dir
    configured = os.environ.get("STRATOPT_RULES_CACHE")
    base = Path(configured) if configured else _xdg_cache() / "stratopt" / "rules"
    try:
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        if os.access(base, os.W_OK):
            return base
    except OSError:
        pass
    if _private_dir is None:
        _private_dir = Path(tempfile.mkdtemp(prefix="stratopt-rules-"))
    return _private_dir


def _xdg_cache() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return Path(xdg) if xdg else Path.home() / ".cache"


def loaded(digest: str) -> Callable[..., Any] | None:
    """The kernel of `digest` if this process has already loaded it, else None."""
    with _lock:
        return _loaded.get(digest)


def load_signal(digest: str, source: str) -> Callable[..., Any]:
    """The compiled `signal` of `source`, written as `rule_<digest>.py` and imported once.

    Importing compiles it in this process, or loads it from numba's disk cache (see
    `rules.build` for compiling it in a child process first). The file is rewritten only
    when its text differs (numba's cache index is keyed by the file's path, size and
    mtime), atomically (several worker processes may race on a first use).
    """
    with _lock:
        if digest in _loaded:
            return _loaded[digest]
        module_name = f"stratopt_rule_{digest}"
        path = cache_dir() / f"rule_{digest}.py"
        try:
            current = path.read_text() if path.exists() else None
        except OSError:
            current = None
        if current != source:
            tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_text(source)
            os.replace(tmp, path)
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        fn: Callable[..., Any] = module.signal
        _loaded[digest] = fn
        return fn
