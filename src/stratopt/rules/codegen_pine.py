"""Checked program -> Pine v6 strategy template with the numba kernel's semantics.

Every stateful Pine call (ta.*, history references) is hoisted into a global variable
declared in dependency order, so it runs on every bar: Pine v6 evaluates `and`/`or`
lazily, and a `ta.sma` inside a skipped operand would miss bars and drift from the
engine's. The rules then read those variables inside the same if/else chain as the
generated numba loop, with `target` standing for `position`.

User text reaches the template only as parameter names (checked lower-case identifiers,
prefixed `p_`), descriptions and choice strings (printable ASCII without quotes or
backslashes, braces doubled for `str.format`, escaped as Pine strings).
"""

from __future__ import annotations

from stratopt.rules import ir
from stratopt.rules.checker import Program
from stratopt.rules.functions import BUILTINS
from stratopt.strategies.params import ParamSpec
from stratopt.strategies.pine import number_literal, script, string_literal


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _input(spec: ParamSpec) -> str:
    title = _braces(string_literal(spec.description or spec.name))
    var = f"p_{spec.name}"
    if spec.kind == "categorical":
        options = ", ".join(_braces(string_literal(c)) for c in spec.choices)
        return f"{var} = input.string({{{spec.name}}}, {title}, options=[{options}])"
    assert spec.low is not None and spec.high is not None
    if spec.kind == "int":
        return (
            f"{var} = input.int({{{spec.name}}}, {title}, "
            f"minval={int(spec.low)}, maxval={int(spec.high)})"
        )
    step = f", step={number_literal(spec.step)}" if spec.step else ""
    return (
        f"{var} = input.float({{{spec.name}}}, {title}, minval={number_literal(spec.low)}, "
        f"maxval={number_literal(spec.high)}{step})"
    )


class _Gen:
    def __init__(self, program: Program) -> None:
        self.program = program
        self.lines: list[str] = []
        self.hoisted: dict[ir.Expr, str] = {}
        self.multi: dict[tuple[str, tuple[ir.Expr, ...]], list[str]] = {}
        self.count = 0

    def fresh(self) -> str:
        self.count += 1
        return f"v{self.count}"

    def hoist(self, e: ir.Expr, text: str) -> str:
        if e not in self.hoisted:
            name = self.fresh()
            kind = "bool" if e.type in ir.BOOLEAN else "float"
            self.lines.append(f"{kind} {name} = {text}")
            self.hoisted[e] = name
        return self.hoisted[e]

    def var(self, e: ir.Expr) -> str:
        """`e` as a variable or price name, so `[n]` can follow it."""
        if isinstance(e, ir.Price):
            return e.name
        if e in self.hoisted:
            return self.hoisted[e]
        text = self.expr(e)
        if text.isidentifier():
            return text
        return self.hoist(e, text)

    def expr(self, e: ir.Expr) -> str:
        if e in self.hoisted:
            return self.hoisted[e]
        if isinstance(e, ir.Const):
            if e.type == "bool":
                return "true" if e.value else "false"
            if e.type == "int":
                return str(int(e.value)) if e.value >= 0 else f"({int(e.value)})"
            return number_literal(e.value) if e.value >= 0 else f"({number_literal(e.value)})"
        if isinstance(e, ir.Param):
            return f"p_{self.program.params[e.index].name}"
        if isinstance(e, ir.ChoiceIs):
            return f"({self.expr(e.param)} == {_braces(string_literal(e.text))})"
        if isinstance(e, ir.Price):
            return e.name
        if isinstance(e, ir.Position):
            return "target"
        if isinstance(e, ir.Arith):
            a, b = self.expr(e.left), self.expr(e.right)
            if e.op == "/" and e.left.type == e.right.type == "int":
                a = f"float({a})"
            return f"({a} {e.op} {b})"
        if isinstance(e, ir.Neg):
            return f"(-{self.expr(e.operand)})"
        if isinstance(e, ir.Compare | ir.Logic):
            return f"({self.expr(e.left)} {e.op} {self.expr(e.right)})"
        if isinstance(e, ir.Not):
            return f"(not {self.expr(e.operand)})"
        if isinstance(e, ir.Select):
            return f"({self.expr(e.cond)} ? {self.expr(e.then)} : {self.expr(e.other)})"
        if isinstance(e, ir.Abs):
            return f"math.abs({self.expr(e.operand)})"
        if isinstance(e, ir.IsNa):
            return f"na({self.expr(e.operand)})"
        if isinstance(e, ir.Nz):
            return f"nz({self.expr(e.operand)}, {self.expr(e.replacement)})"
        if isinstance(e, ir.Indicator):
            key = (e.name, e.args)
            if key not in self.multi:
                builtin = BUILTINS[e.name]
                args = [self.expr(a) for a in e.args]
                outs = [self.fresh() for _ in range(max(1, len(builtin.outputs)))]
                self.lines.extend(builtin.pine(args, outs))
                self.multi[key] = outs
            return self.multi[key][e.output]
        if isinstance(e, ir.Cross):
            fn = "ta.crossover" if e.up else "ta.crossunder"
            return self.hoist(e, f"{fn}({self.expr(e.left)}, {self.expr(e.right)})")
        if isinstance(e, ir.BarsSince):
            return self.hoist(e, f"ta.barssince({self.expr(e.cond)})")
        if isinstance(e, ir.Shift):
            return self.hoist(e, f"{self.var(e.operand)}[{self.expr(e.offset)}]")
        raise TypeError(f"no Pine translation for {type(e).__name__}")  # pragma: no cover


def pine_template(program: Program) -> str:
    """A complete `script()` template: inputs, hoisted series, the target state machine."""
    g = _Gen(program)
    inputs = [_input(spec) for spec in program.params]
    rules = {name: g.expr(expr) for name, expr in program.rules.items()}
    body = [*inputs, "", *g.lines, "", "var int target = 0"]
    if "long_exit" in rules or "short_exit" in rules:
        body += [
            "if target == 1",
            f"    if {rules.get('long_exit', 'false')}",
            "        target := 0",
            "else if target == -1",
            f"    if {rules.get('short_exit', 'false')}",
            "        target := 0",
        ]
    entries = [(r, v) for r, v in (("long_entry", 1), ("short_entry", -1)) if r in rules]
    for k, (rule, value) in enumerate(entries):
        body += [f"{'if' if k == 0 else 'else if'} {rules[rule]}", f"    target := {value}"]
    return script("\n".join(body) + "\n", overlay=True)
