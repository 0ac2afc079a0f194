"""Type checker: statements -> a `Program` of typed trees, or every error with its position.

Names resolve, in order, to: named series defined above, parameters (or an indicator's
inputs), price series, `position` (rules only) and `true`/`false`. Calls resolve to the
built-ins of `functions`, the special functions (crossover, bars_since, ...) and the user
indicators passed in, which are expanded inline. Anything else is an error, so the code
generators only ever see whitelisted operations on checked values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from stratopt.rules import ir
from stratopt.rules.errors import RuleError, RuleErrors
from stratopt.rules.functions import BUILTINS, SPECIAL
from stratopt.rules.limits import LIMITS, Limits
from stratopt.rules.syntax import (
    Assign,
    Binary,
    Call,
    ConstraintStmt,
    Index,
    InputStmt,
    Member,
    Name,
    Node,
    Num,
    ParamStmt,
    Str,
    Ternary,
    Token,
    Unary,
    parse,
)
from stratopt.strategies.params import (
    Constraint,
    ParamSpec,
    choice_param,
    float_param,
    int_param,
)
from stratopt.strategies.pine import ORDER_NAMES, SETTINGS_FIELDS

RULES: tuple[str, ...] = ("long_entry", "long_exit", "short_entry", "short_exit")
_RESERVED = frozenset(
    {
        *RULES, *ir.PRICES, *BUILTINS, *SPECIAL, *SETTINGS_FIELDS, *ORDER_NAMES,
        "position", "target", "true", "false", "na", "and", "or", "not", "param", "input",
        "constraint", "return", "output", "in", "step", "log", "int", "float", "choice",
        "series",
    }
)  # fmt: skip
_MAX_ABS = 1e12


@dataclass(frozen=True)
class Program:
    """A checked strategy: parameter space plus the rules as typed trees."""

    params: tuple[ParamSpec, ...]
    constraints: tuple[Constraint, ...]
    series: tuple[str, ...]
    rules: dict[str, ir.Expr]
    indicators: tuple[str, ...]


@dataclass(frozen=True)
class IndicatorDef:
    """A checked user indicator: its inputs and the (unchecked) statements of its body."""

    name: str
    inputs: tuple[tuple[str, str], ...]
    outputs: tuple[str, ...]
    body: tuple[Assign, ...]
    uses: tuple[str, ...]


class _Cascade(Exception):
    """A name whose own definition failed: not reported again where it is used."""


@dataclass(frozen=True)
class _Multi:
    """A named indicator value with several outputs (`band = bb(close, 20, 2)`), used
    as `band.upper`."""

    names: tuple[str, ...]
    outs: tuple[ir.Expr, ...]


@dataclass
class _Scope:
    names: dict[str, ir.Expr | _Multi | None] = field(default_factory=dict)
    """None marks a name whose definition failed."""
    allow_position: bool = False


class Checker:
    def __init__(self, indicators: Mapping[str, str], limits: Limits = LIMITS) -> None:
        self.limits = limits
        self.sources = dict(indicators)
        self.defs: dict[str, IndicatorDef] = {}
        self.checking: list[str] = []
        self.used: list[str] = []
        self.nodes = 0
        self.expansion_depth = 0
        self.specs: list[ParamSpec] = []
        self.sizes: dict[int, tuple[ir.Expr, int]] = {}

    # ---- strategies

    def strategy(self, text: str) -> Program:
        statements, errors = parse(text, self.limits)
        scope = _Scope()
        specs: list[ParamSpec] = []
        constraints: list[Constraint] = []
        series: list[str] = []
        rules: dict[str, ir.Expr] = {}

        def attempt(fn: Callable[[], None]) -> None:
            try:
                fn()
            except RuleErrors as e:
                errors.extend(e.errors)
            except RuleError as e:
                errors.append(e)
            except _Cascade:
                pass

        for st in statements:
            if isinstance(st, ParamStmt):
                attempt(lambda st=st: self._param(st, specs, scope))  # type: ignore[misc]
            elif isinstance(st, ConstraintStmt):
                attempt(lambda st=st: constraints.append(self._constraint(st, specs)))  # type: ignore[misc]
            elif isinstance(st, InputStmt):
                errors.append(_err(st.name, "'input' belongs in indicator definitions"))
            elif st.kind in ("return", "output"):
                errors.append(_err(st.name, f"'{st.kind}' belongs in indicator definitions"))
            elif st.kind == "rule":
                attempt(lambda st=st: self._rule(st, scope, rules))  # type: ignore[misc]
            else:
                attempt(lambda st=st: self._series(st, scope, series))  # type: ignore[misc]
        if not errors and not (set(rules) & {"long_entry", "short_entry"}):
            errors.append(RuleError("a strategy needs a long_entry or a short_entry rule", 1, 1))
        if errors:
            raise RuleErrors(errors)
        return Program(
            params=tuple(specs),
            constraints=tuple(constraints),
            series=tuple(series),
            rules=rules,
            indicators=tuple(dict.fromkeys(self.used)),
        )

    def _declare(self, tok: Token, scope: _Scope, what: str) -> None:
        name = tok.text
        if name in _RESERVED or name in self.sources:
            raise _err(tok, f"{name!r} is a reserved or built-in name; pick another {what} name")
        if name in scope.names:
            raise _err(tok, f"{name!r} is already defined")
        if not name.islower() and not name.replace("_", "").isdigit():
            raise _err(tok, f"{what} names are lower case")
        if name.startswith("_") or name.startswith("sim"):
            raise _err(tok, f"{what} names may not start with '_' or 'sim'")

    def _param(self, st: ParamStmt, specs: list[ParamSpec], scope: _Scope) -> None:
        self.specs = specs
        self._declare(st.name, scope, "parameter")
        scope.names[st.name.text] = None
        if len(specs) >= self.limits.max_params:
            raise _err(st.name, f"more than {self.limits.max_params} parameters")
        kind = st.kind.text
        desc = st.description
        try:
            if kind == "choice":
                if st.low or st.high or st.step or st.log:
                    raise _err(st.kind, "a choice has no range, step or log scale")
                if st.default.kind != "string":
                    raise _err(st.default, "the default of a choice is one of its strings")
                spec = choice_param(
                    st.name.text,
                    tuple(c.text for c in st.choices),
                    st.default.text,
                    description=desc,
                )
                param: ir.Expr = ir.Param("choice", len(specs), st.name.text)
            elif kind in ("int", "float"):
                if st.low is None or st.high is None:
                    raise _err(st.name, "a numeric parameter needs a range: in [low, high]")
                as_int = kind == "int"
                default = _number(st.default, as_int)
                low, high = _number(st.low, as_int), _number(st.high, as_int)
                step = None if st.step is None else _number(st.step, as_int)
                if as_int:
                    spec = int_param(
                        st.name.text, int(low), int(high), int(default),
                        step=int(step or 1), log=st.log, description=desc,
                    )  # fmt: skip
                else:
                    spec = float_param(
                        st.name.text, low, high, default, step=step, log=st.log, description=desc
                    )
                param = ir.Param("int" if as_int else "num", len(specs), st.name.text)
            else:
                raise _err(st.kind, f"unknown parameter type {kind!r}; use int, float or choice")
        except ValueError as e:
            if isinstance(e, RuleError):
                raise
            raise _err(st.name, str(e).replace(f"invalid ParamSpec {st.name.text!r}: ", "")) from e
        specs.append(spec)
        scope.names[st.name.text] = param

    def _constraint(self, st: ConstraintStmt, specs: list[ParamSpec]) -> Constraint:
        by_name = {s.name: s for s in specs}
        for tok in (st.left, st.right):
            spec = by_name.get(tok.text)
            if spec is None:
                raise _err(tok, f"unknown parameter {tok.text!r}")
            if spec.kind == "categorical":
                raise _err(tok, "a constraint compares numeric parameters")
        c = Constraint(st.left.text, st.op.text, st.right.text)  # type: ignore[arg-type]
        left, right = by_name[c.left].default, by_name[c.right].default
        if not c.holds(float(left), float(right)):
            raise _err(st.left, f"the defaults break this constraint ({left} {c.op} {right})")
        return c

    def _rule(self, st: Assign, scope: _Scope, rules: dict[str, ir.Expr]) -> None:
        name = st.name.text
        if name not in RULES:
            raise _err(st.name, f"unknown rule {name!r}; rules are {', '.join(RULES)}")
        if name in rules:
            raise _err(st.name, f"rule {name!r} is defined twice")
        rule_scope = _Scope(names=scope.names, allow_position=True)
        expr = self.expr(st.expr, rule_scope)
        if expr.type not in ir.BOOLEAN:
            raise _at(st.expr, f"a rule is a condition (true/false), not {_kind(expr.type)}")
        self._bounded(st.expr, expr)
        rules[name] = expr

    def _series(self, st: Assign, scope: _Scope, series: list[str]) -> None:
        self._declare(st.name, scope, "series")
        if len(series) >= self.limits.max_series:
            raise _err(st.name, f"more than {self.limits.max_series} named series")
        scope.names[st.name.text] = None
        value = self.series_value(st.expr, _Scope(names=scope.names))
        if isinstance(value, ir.Expr) and value.type in ("choice", "str"):
            raise _at(st.expr, f"a named series cannot hold {_kind(value.type)}")
        for part in value.outs if isinstance(value, _Multi) else (value,):
            self._bounded(st.expr, part)
        scope.names[st.name.text] = value
        series.append(st.name.text)

    def _bounded(self, node: Node, expr: ir.Expr) -> None:
        """Named series are shared, not copied, but the generators inline arithmetic: a
        chain `s2 = s1 + s1`, `s3 = s2 + s2`, ... must not grow the code exponentially."""
        size = ir.tree_size(expr, self.sizes)
        if size > self.limits.max_nodes:
            limit = self.limits.max_nodes
            raise _at(node, f"this expression expands to {size} nodes through the named "
                      f"series and indicators it uses; the limit is {limit}")  # fmt: skip

    def series_value(self, node: Node, scope: _Scope) -> ir.Expr | _Multi:
        """A named series' value: an expression, or all outputs of an indicator call."""
        if isinstance(node, Call):
            names, outs = self._call_outputs(node, scope)
            return outs[0] if len(outs) == 1 else _Multi(names, tuple(outs))
        return self.expr(node, scope)

    # ---- indicators

    def indicator(self, name: str, text: str) -> IndicatorDef:
        """Check an indicator with placeholder inputs; the def expands at each call."""
        statements, errors = parse(text, self.limits)
        inputs: list[tuple[str, str]] = []
        scope = _Scope()
        body: list[Assign] = []
        outputs: list[str] = []
        before = len(self.used)
        for st in statements:
            try:
                if isinstance(st, InputStmt):
                    if body:
                        raise _err(st.name, "inputs come before the body")
                    self._declare(st.name, scope, "input")
                    kind = st.kind.text
                    if kind not in ("series", "int", "float"):
                        raise _err(st.kind, "an input is series, int or float")
                    if len(inputs) >= self.limits.max_series:
                        raise _err(st.name, f"more than {self.limits.max_series} inputs")
                    inputs.append((st.name.text, kind))
                    scope.names[st.name.text] = _placeholder(kind, len(inputs))
                elif isinstance(st, Assign) and st.kind in ("series", "return", "output"):
                    if outputs and outputs[0] == "value":
                        raise _err(st.name, "nothing may follow 'return'")
                    if st.kind == "return" and outputs:
                        raise _err(st.name, "use either 'return' or 'output' lines")
                    target_name = "value" if st.kind == "return" else st.name.text
                    if st.kind != "return":
                        self._declare(st.name, scope, "series")
                    if st.kind == "output" and target_name in outputs:
                        raise _err(st.name, f"output {target_name!r} defined twice")
                    if st.kind == "series":
                        value = self.series_value(st.expr, scope)
                        if isinstance(value, ir.Expr) and value.type in ("choice", "str"):
                            raise _at(st.expr, f"a series cannot hold {_kind(value.type)}")
                        scope.names[st.name.text] = value
                    else:
                        expr = self.expr(st.expr, scope)
                        if expr.type not in ir.NUMERIC | ir.BOOLEAN:
                            raise _at(st.expr, f"an indicator cannot produce {_kind(expr.type)}")
                        outputs.append(target_name)
                    body.append(st)
                else:
                    where = st.name if isinstance(st, Assign | InputStmt | ParamStmt) else st.left
                    raise _err(where, "an indicator has input, series, return or output lines")
            except RuleErrors as e:
                errors.extend(e.errors)
            except RuleError as e:
                errors.append(e)
            except _Cascade:
                pass
        if not errors and not outputs:
            errors.append(RuleError("an indicator needs a 'return' or 'output' line", 1, 1))
        if errors:
            raise RuleErrors(errors)
        return IndicatorDef(
            name=name,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            body=tuple(body),
            uses=tuple(dict.fromkeys(self.used[before:])),
        )

    def _indicator_def(self, name: str, call: Call) -> IndicatorDef:
        if name in self.defs:
            return self.defs[name]
        if name in self.checking:
            cycle = " -> ".join([*self.checking[self.checking.index(name) :], name])
            raise _at(call, f"indicators call each other in a cycle: {cycle}")
        if len(self.checking) >= 8:
            raise _at(call, "indicators nest more than 8 deep")
        self.checking.append(name)
        try:
            definition = self.indicator(name, self.sources[name])
        except RuleError as e:
            raise _at(call, f"indicator {name!r} is invalid: {e}") from e
        finally:
            self.checking.pop()
        self.defs[name] = definition
        return definition

    def _expand(self, call: Call, scope: _Scope) -> tuple[IndicatorDef, list[ir.Expr]]:
        d = self._indicator_def(call.name, call)
        self.used.append(call.name)
        if len(call.args) != len(d.inputs):
            raise _at(call, f"{call.name} takes {len(d.inputs)} arguments, got {len(call.args)}")
        inner = _Scope()
        for (input_name, kind), arg in zip(d.inputs, call.args, strict=True):
            inner.names[input_name] = self._argument(arg, scope, _input_kind(kind), call.name)
        self.expansion_depth += 1
        if self.expansion_depth > 8:
            raise _at(call, "indicators nest more than 8 deep")
        try:
            outs: list[ir.Expr] = []
            for st in d.body:
                if st.kind == "series":
                    inner.names[st.name.text] = self.series_value(st.expr, inner)
                else:
                    outs.append(self.expr(st.expr, inner))
        except RuleError as e:
            raise _at(call, f"in indicator {call.name!r}: {e}") from e
        finally:
            self.expansion_depth -= 1
        return d, outs

    # ---- expressions

    def expr(self, node: Node, scope: _Scope) -> ir.Expr:
        self.nodes += 1
        if self.nodes > self.limits.max_nodes:
            raise _at(node, f"more than {self.limits.max_nodes} expression nodes")
        if isinstance(node, Num):
            return _literal(node)
        if isinstance(node, Str):
            return StrConst("str", node.value)
        if isinstance(node, Name):
            return self._name(node, scope)
        if isinstance(node, Unary):
            x = self.expr(node.operand, scope)
            if node.op == "-":
                if x.type not in ir.NUMERIC:
                    raise _at(node, f"cannot negate {_kind(x.type)}")
                if isinstance(x, ir.Const):
                    return ir.Const(x.type, -x.value)
                return ir.Neg(x.type, x)
            if x.type not in ir.BOOLEAN:
                raise _at(node, f"'not' needs a condition, got {_kind(x.type)}")
            return ir.Not(x.type, x)
        if isinstance(node, Binary):
            return self._binary(node, scope)
        if isinstance(node, Ternary):
            c = self.expr(node.cond, scope)
            a = self.expr(node.then, scope)
            b = self.expr(node.other, scope)
            if c.type not in ir.BOOLEAN:
                raise _at(node.cond, f"the condition before '?' is {_kind(c.type)}")
            if a.type in ir.NUMERIC and b.type in ir.NUMERIC:
                scalar = c.type == "bool" and a.type != "series" and b.type != "series"
                t: ir.Type = ("int" if a.type == b.type == "int" else "num") if scalar else "series"
            elif a.type in ir.BOOLEAN and b.type in ir.BOOLEAN:
                scalar = c.type == a.type == b.type == "bool"
                t = "bool" if scalar else "bseries"
            else:
                raise _at(node, f"both branches must be numbers or both conditions, got "
                          f"{_kind(a.type)} and {_kind(b.type)}")  # fmt: skip
            return ir.Select(t, c, a, b)
        if isinstance(node, Call):
            return self._call(node, scope)
        if isinstance(node, Member):
            if isinstance(node.obj, Name):
                value = scope.names.get(node.obj.name)
                if isinstance(value, _Multi):
                    return _pick(node.obj, node, value.names, list(value.outs))
            if not isinstance(node.obj, Call):
                raise _at(node, "only an indicator with several outputs has '.' fields")
            return self._call(node.obj, scope, member=node)
        if isinstance(node, Index):
            return self._index(node, scope)
        raise _at(node, "unsupported expression")  # pragma: no cover - parser makes none

    def _name(self, node: Name, scope: _Scope) -> ir.Expr:
        name = node.name
        if name in scope.names:
            value = scope.names[name]
            if value is None:
                raise _Cascade()
            if isinstance(value, _Multi):
                raise _at(node, f"{name} has several outputs ({', '.join(value.names)}); "
                          f"pick one, e.g. {name}.{value.names[0]}")  # fmt: skip
            return value
        if name in ir.PRICES:
            return ir.Price("series", name)
        if name == "position":
            if not scope.allow_position:
                raise _at(node, "'position' is only available in rules")
            return ir.Position("int")
        if name in ("true", "false"):
            return ir.Const("bool", 1.0 if name == "true" else 0.0)
        if name in BUILTINS or name in SPECIAL or name in self.sources:
            raise _at(node, f"{name!r} is a function; call it with arguments")
        raise _at(node, f"unknown name {name!r}")

    def _binary(self, node: Binary, scope: _Scope) -> ir.Expr:
        a = self.expr(node.left, scope)
        b = self.expr(node.right, scope)
        op = node.op
        if op in ("and", "or"):
            for x in (a, b):
                if x.type not in ir.BOOLEAN:
                    raise _at(node, f"'{op}' joins conditions, got {_kind(x.type)}")
            t: ir.Type = "bool" if a.type == b.type == "bool" else "bseries"
            return ir.Logic(t, op, a, b)
        if op in ("==", "!=") and (a.type == "choice" or b.type == "choice"):
            param, text = (a, b) if a.type == "choice" else (b, a)
            if not isinstance(param, ir.Param) or not isinstance(text, StrConst):
                raise _at(node, "a choice parameter is compared with one of its strings")
            return self._choice_is(node, param, text.text, negate=op == "!=")
        for x in (a, b):
            if x.type not in ir.NUMERIC:
                raise _at(node, f"'{op}' needs numbers or series, got {_kind(x.type)}")
        either_series = a.type == "series" or b.type == "series"
        if op in ("+", "-", "*", "/"):
            if either_series:
                t = "series"
            else:
                t = "int" if a.type == b.type == "int" and op != "/" else "num"
            if isinstance(a, ir.Const) and isinstance(b, ir.Const):
                return _fold(node, t, op, a.value, b.value)
            return ir.Arith(t, op, a, b)
        return ir.Compare("bseries" if either_series else "bool", op, a, b)

    def _choice_is(self, node: Binary, param: ir.Param, text: str, negate: bool) -> ir.Expr:
        if param.index < 0:
            raise _at(node, "indicators take no choice inputs")
        spec = self.specs[param.index]
        if text not in spec.choices:
            raise _at(node, f"{text!r} is not a choice of {spec.name!r}: {list(spec.choices)}")
        e: ir.Expr = ir.ChoiceIs("bool", param, spec.choices.index(text), text)
        return ir.Not("bool", e) if negate else e

    def _call(self, node: Call, scope: _Scope, member: Member | None = None) -> ir.Expr:
        return _pick(node, member, *self._call_outputs(node, scope))

    def _call_outputs(self, node: Call, scope: _Scope) -> tuple[tuple[str, ...], list[ir.Expr]]:
        """The output names of a call and one expression per output."""
        name = node.name
        if name in self.sources and name not in BUILTINS:
            d, outs = self._expand(node, scope)
            return d.outputs, outs
        if name in SPECIAL:
            return ("value",), [self._special(node, scope)]
        builtin = BUILTINS.get(name)
        if builtin is None:
            raise _at(node, f"unknown function {name!r}")
        if len(node.args) != len(builtin.args):
            raise _at(node, f"{name} takes {len(builtin.args)} arguments, got {len(node.args)}")
        args = tuple(
            self._argument(arg, scope, kind, name)
            for arg, kind in zip(node.args, builtin.args, strict=True)
        )
        values: list[ir.Expr] = [
            ir.Indicator("series", name, args, i) for i in range(max(1, len(builtin.outputs)))
        ]
        return builtin.outputs or ("value",), values

    def _argument(self, arg: Node, scope: _Scope, kind: str, fn: str) -> ir.Expr:
        inner = _Scope(names=scope.names, allow_position=False)
        x = self.expr(arg, inner)
        if kind == "series":
            if x.type not in ir.NUMERIC:
                raise _at(arg, f"{fn} needs a number series here, got {_kind(x.type)}")
            return x
        if kind == "number":
            if x.type not in ("int", "num"):
                raise _at(arg, f"{fn} needs a fixed number here (a literal or a parameter), "
                          f"got {_kind(x.type)}")  # fmt: skip
            return x
        return self._length(arg, x, fn, low=1)

    def _length(self, node: Node, x: ir.Expr, fn: str, *, low: int) -> ir.Expr:
        """An int literal or int parameter whose whole range is within [low, max_lookback]."""
        top = self.limits.max_lookback
        if isinstance(x, ir.Const) and x.type == "int":
            if not low <= x.value <= top:
                raise _at(node, f"{fn}: {int(x.value)} is outside {low}..{top}")
            return x
        if isinstance(x, ir.Param) and x.type == "int":
            spec_low, spec_high = self.param_bounds(x)
            if spec_low < low or spec_high > top:
                raise _at(node, f"{fn}: parameter {x.name!r} ranges {spec_low}..{spec_high}; "
                          f"it must stay within {low}..{top}")  # fmt: skip
            return x
        raise _at(node, f"{fn} needs a whole-number length here: an int literal or int "
                  f"parameter, got {_kind(x.type)}")  # fmt: skip

    def param_bounds(self, p: ir.Param) -> tuple[int, int]:
        if p.index < 0:  # an indicator's placeholder input
            return 1, self.limits.max_lookback
        spec = self.specs[p.index]
        assert spec.low is not None and spec.high is not None
        return int(spec.low), int(spec.high)

    def _special(self, node: Call, scope: _Scope) -> ir.Expr:
        name = node.name
        arity = {"crossover": 2, "crossunder": 2, "bars_since": 1, "na": 1, "nz": 2, "abs": 1}
        if len(node.args) != arity[name]:
            raise _at(node, f"{name} takes {arity[name]} arguments, got {len(node.args)}")
        inner = _Scope(names=scope.names, allow_position=False)
        args = [self.expr(a, inner) for a in node.args]
        if name in ("crossover", "crossunder"):
            for a, x in zip(node.args, args, strict=True):
                if x.type not in ir.NUMERIC:
                    raise _at(a, f"{name} compares numbers or series, got {_kind(x.type)}")
            return ir.Cross("bseries", name == "crossover", args[0], args[1])
        if name == "bars_since":
            if args[0].type not in ir.BOOLEAN:
                raise _at(node.args[0], f"bars_since needs a condition, got {_kind(args[0].type)}")
            return ir.BarsSince("series", args[0])
        for a, x in zip(node.args, args, strict=True):
            if x.type not in ir.NUMERIC:
                raise _at(a, f"{name} needs a number or series, got {_kind(x.type)}")
        if name == "na":
            return ir.IsNa("bseries" if args[0].type == "series" else "bool", args[0])
        if name == "abs":
            return ir.Abs(args[0].type, args[0])
        t: ir.Type = "series" if "series" in (args[0].type, args[1].type) else "num"
        return ir.Nz(t, args[0], args[1])

    def _index(self, node: Index, scope: _Scope) -> ir.Expr:
        inner = _Scope(names=scope.names, allow_position=False)
        x = self.expr(node.obj, inner)
        if x.type not in ir.SERIES:
            raise _at(node, f"only a series has past values; this is {_kind(x.type)}")
        offset = self._length(node.offset, self.expr(node.offset, inner), "[]", low=0)
        if isinstance(offset, ir.Const) and offset.value == 0:
            return x
        return ir.Shift(x.type, x, offset)


@dataclass(frozen=True)
class StrConst(ir.Expr):
    """A string literal; only ever compared with a choice parameter, never generated."""

    text: str


def _placeholder(kind: str, position: int) -> ir.Expr:
    if kind == "series":
        return ir.Price("series", "close")
    return ir.Param("int" if kind == "int" else "num", -position, f"input{position}")


def _input_kind(kind: str) -> str:
    return {"series": "series", "int": "length", "float": "number"}[kind]


def _pick(
    node: Call | Name, member: Member | None, names: tuple[str, ...], outs: list[ir.Expr]
) -> ir.Expr:
    fn = node.name
    if member is None:
        if len(outs) == 1:
            return outs[0]
        raise _at(node, f"{fn} has several outputs ({', '.join(names)}); "
                  f"pick one, e.g. {fn}(...).{names[0]}")  # fmt: skip
    if member.name not in names or (len(outs) == 1 and names == ("value",)):
        raise _at(member, f"{fn} has no output {member.name!r}"
                  + (f"; outputs: {', '.join(names)}" if len(outs) > 1 else ""))  # fmt: skip
    return outs[names.index(member.name)]


def _literal(node: Num) -> ir.Const:
    text = node.text
    try:
        value = float(text)
    except ValueError:
        raise _at(node, f"bad number {text!r}") from None
    if not math.isfinite(value) or abs(value) > _MAX_ABS:
        raise _at(node, f"number {text} is out of range (|x| <= 1e12)")
    is_int = all(c.isdigit() for c in text)
    return ir.Const("int" if is_int else "num", value)


def _fold(node: Binary, t: ir.Type, op: str, a: float, b: float) -> ir.Expr:
    """Literal arithmetic is left to the generated code (to round like it), but checked."""
    if op == "/" and b == 0:
        raise _at(node, "division by zero")
    return ir.Arith(t, op, ir.Const("int" if a.is_integer() and t == "int" else "num", a),
                    ir.Const("int" if b.is_integer() and t == "int" else "num", b))  # fmt: skip


def _number(tok: Token, as_int: bool) -> float:
    if tok.kind != "number":
        raise _err(tok, "expected a number")
    try:
        value = float(tok.text)
    except ValueError:
        raise _err(tok, f"bad number {tok.text!r}") from None
    if not math.isfinite(value) or abs(value) > _MAX_ABS:
        raise _err(tok, "number out of range (|x| <= 1e12)")
    if as_int and not value.is_integer():
        raise _err(tok, "an int parameter takes whole numbers")
    return value


def _kind(t: str) -> str:
    return {
        "int": "a whole number",
        "num": "a number",
        "bool": "a condition",
        "series": "a series",
        "bseries": "a condition series",
        "choice": "a choice parameter",
        "str": "a string",
    }.get(t, t)


def _err(tok: Token, message: str) -> RuleError:
    return RuleError(message, tok.line, tok.column)


def _at(node: Node, message: str) -> RuleError:
    return RuleError(message, node.line, node.column)


def check_strategy(text: str, indicators: Mapping[str, str], limits: Limits = LIMITS) -> Program:
    """The checked program of a strategy definition; RuleErrors if anything is wrong."""
    return Checker(indicators, limits).strategy(text)


def check_indicator_text(
    name: str, text: str, indicators: Mapping[str, str], limits: Limits = LIMITS
) -> IndicatorDef:
    """A checked indicator (its uses of other indicators checked too); RuleErrors if not."""
    checker = Checker({**indicators, name: text}, limits)
    checker.checking.append(name)
    return checker.indicator(name, text)
