"""Lexer and parser of the rule language: text -> statements of untyped expression trees.

Hand-written (a scanner and a Pratt parser) so that every limit is enforced while reading:
size and token count before anything else, nesting depth on every recursion, so that no
input can exhaust the Python stack or spend more than linear time. Nothing here knows what
a name means; `checker` resolves names against a whitelist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stratopt.rules.errors import RuleError
from stratopt.rules.limits import LIMITS, Limits

TokenKind = Literal["name", "number", "string", "op", "newline", "end"]

_OPERATORS = (
    "<=", ">=", "==", "!=", "<", ">", "+", "-", "*", "/", "(", ")", "[", "]", ",", ":", "=",
    "?", ".",
)  # fmt: skip
_KEYWORDS = frozenset({"and", "or", "not", "param", "constraint", "input", "return", "output"})


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    line: int
    column: int


def tokenize(text: str, limits: Limits = LIMITS) -> list[Token]:
    """Tokens of `text`; newlines inside brackets are dropped so expressions may wrap."""
    if not isinstance(text, str):
        raise RuleError("a definition must be text")
    if len(text) > limits.max_chars:
        raise RuleError(f"definition is {len(text)} characters; the limit is {limits.max_chars}")
    tokens: list[Token] = []
    line, col, i, depth = 1, 1, 0, 0
    n = len(text)
    while i < n:
        c = text[i]
        start_col = col
        if c == "\n":
            if depth == 0 and tokens and tokens[-1].kind != "newline":
                tokens.append(Token("newline", "\n", line, col))
            line, col, i = line + 1, 1, i + 1
            continue
        if c in " \t\r":
            i, col = i + 1, col + 1
            continue
        if c == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c.isascii() and (c.isalpha() or c == "_"):
            j = i
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            if j - i > limits.max_name:
                raise RuleError(f"name longer than {limits.max_name} characters", line, col)
            tokens.append(Token("name", text[i:j], line, col))
            col += j - i
            i = j
        elif c.isascii() and (c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit())):
            j = _scan_number(text, i)
            if j - i > 32:
                raise RuleError("number literal too long", line, col)
            tokens.append(Token("number", text[i:j], line, col))
            col += j - i
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                ch = text[j]
                if ch == "\n" or not (ch.isascii() and ch.isprintable()) or ch == "\\":
                    raise RuleError(
                        "strings hold printable ASCII without backslashes or line breaks",
                        line,
                        col + j - i,
                    )
                j += 1
            if j >= n:
                raise RuleError("unterminated string", line, col)
            if j - i - 1 > limits.max_string:
                raise RuleError(f"string longer than {limits.max_string} characters", line, col)
            tokens.append(Token("string", text[i + 1 : j], line, col))
            col += j + 1 - i
            i = j + 1
        else:
            op = next((o for o in _OPERATORS if text.startswith(o, i)), None)
            if op is None:
                shown = repr(c) if c.isprintable() else f"U+{ord(c):04X}"
                raise RuleError(f"unexpected character {shown}", line, col)
            if op in "([":
                depth += 1
                if depth > limits.max_depth:
                    raise RuleError(f"nesting deeper than {limits.max_depth}", line, col)
            elif op in ")]":
                depth = max(0, depth - 1)
            tokens.append(Token("op", op, line, start_col))
            col += len(op)
            i += len(op)
        if len(tokens) > limits.max_tokens:
            raise RuleError(f"more than {limits.max_tokens} tokens", line, start_col)
    if tokens and tokens[-1].kind != "newline":
        tokens.append(Token("newline", "\n", line, col))
    tokens.append(Token("end", "", line, col))
    return tokens


def _scan_number(text: str, i: int) -> int:
    n = len(text)
    j = i
    while j < n and text[j].isascii() and text[j].isdigit():
        j += 1
    if j < n and text[j] == ".":
        j += 1
        while j < n and text[j].isascii() and text[j].isdigit():
            j += 1
    if j < n and text[j] in "eE":
        k = j + 1
        if k < n and text[k] in "+-":
            k += 1
        if k < n and text[k].isascii() and text[k].isdigit():
            j = k
            while j < n and text[j].isascii() and text[j].isdigit():
                j += 1
    return j


# ---- Expression trees -------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    line: int
    column: int


@dataclass(frozen=True)
class Num(Node):
    text: str


@dataclass(frozen=True)
class Str(Node):
    value: str


@dataclass(frozen=True)
class Name(Node):
    name: str


@dataclass(frozen=True)
class Unary(Node):
    op: str  # "-" or "not"
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    op: str  # arithmetic, comparison, "and", "or"
    left: Node
    right: Node


@dataclass(frozen=True)
class Ternary(Node):
    cond: Node
    then: Node
    other: Node


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Member(Node):
    obj: Node
    name: str


@dataclass(frozen=True)
class Index(Node):
    obj: Node
    offset: Node


# ---- Statements -------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamStmt:
    """`param NAME: int|float = DEFAULT in [LOW, HIGH] [step S] [log] ["description"]`
    or `param NAME: choice("a", "b") = "a" ["description"]`."""

    name: Token
    kind: Token
    choices: tuple[Token, ...]
    default: Token
    low: Token | None
    high: Token | None
    step: Token | None
    log: bool
    description: str


@dataclass(frozen=True)
class ConstraintStmt:
    """`constraint LEFT OP RIGHT` between two numeric parameters."""

    left: Token
    op: Token
    right: Token


@dataclass(frozen=True)
class InputStmt:
    """`input NAME: series|int|float` (indicator definitions only)."""

    name: Token
    kind: Token


@dataclass(frozen=True)
class Assign:
    """`NAME = expr` (a named series), `RULE: expr` (a rule), `return expr` or
    `output NAME = expr` (an indicator's result)."""

    kind: Literal["series", "rule", "return", "output"]
    name: Token
    expr: Node


Statement = ParamStmt | ConstraintStmt | InputStmt | Assign

_PREFIX_BP = {"-": 70, "not": 30}
_INFIX_BP: dict[str, int] = {
    "?": 10,
    "or": 20,
    "and": 25,
    "<": 40, "<=": 40, ">": 40, ">=": 40, "==": 40, "!=": 40,
    "+": 50, "-": 50,
    "*": 60, "/": 60,
    "(": 80, ".": 80, "[": 80,
}  # fmt: skip
_COMPARISONS = frozenset({"<", "<=", ">", ">=", "==", "!="})


class Parser:
    """Recursive descent for statements, Pratt parsing for expressions."""

    def __init__(self, text: str, limits: Limits = LIMITS) -> None:
        self.limits = limits
        self.tokens = tokenize(text, limits)
        self.pos = 0
        self.depth = 0
        self.heights: dict[int, int] = {}

    # -- token helpers
    def peek(self) -> Token:
        return self.tokens[self.pos]

    def next(self) -> Token:
        tok = self.tokens[self.pos]
        if tok.kind != "end":
            self.pos += 1
        return tok

    def at(self, text: str) -> bool:
        tok = self.peek()
        return tok.kind in ("op", "name") and tok.text == text

    def expect(self, text: str, what: str = "") -> Token:
        tok = self.peek()
        if not self.at(text):
            raise self.error(tok, f"expected {what or repr(text)}, found {describe(tok)}")
        return self.next()

    def expect_name(self, what: str) -> Token:
        tok = self.peek()
        if tok.kind != "name" or tok.text in _KEYWORDS:
            raise self.error(tok, f"expected {what}, found {describe(tok)}")
        return self.next()

    @staticmethod
    def error(tok: Token, message: str) -> RuleError:
        return RuleError(message, tok.line, tok.column)

    # -- statements
    def statements(self) -> tuple[list[Statement], list[RuleError]]:
        """Every statement that parses, and one syntax error per line that does not
        (parsing resumes at the next line, so one typo does not hide the rest)."""
        out: list[Statement] = []
        errors: list[RuleError] = []
        while self.peek().kind != "end":
            if self.peek().kind == "newline":
                self.next()
                continue
            start = self.pos
            try:
                statement = self.statement()
                tok = self.peek()
                if tok.kind not in ("newline", "end"):
                    raise self.error(tok, f"expected the end of the line, found {describe(tok)}")
                out.append(statement)
            except RuleError as e:
                errors.append(e)
                self.depth = 0
                if self.pos > start and self.tokens[self.pos - 1].kind == "newline":
                    self.pos -= 1  # the error consumed the line's end: resume after it
                while self.peek().kind not in ("newline", "end"):
                    self.next()
        return out, errors

    def statement(self) -> Statement:
        tok = self.peek()
        if tok.kind != "name":
            raise self.error(tok, f"expected a statement, found {describe(tok)}")
        if tok.text == "param":
            return self.param()
        if tok.text == "constraint":
            self.next()
            left = self.expect_name("a parameter name")
            op = self.peek()
            if op.kind != "op" or op.text not in ("<", "<=", ">", ">="):
                raise self.error(op, f"expected <, <=, > or >=, found {describe(op)}")
            self.next()
            return ConstraintStmt(left, op, self.expect_name("a parameter name"))
        if tok.text == "input":
            self.next()
            name = self.expect_name("an input name")
            self.expect(":")
            return InputStmt(name, self.expect_name("series, int or float"))
        if tok.text == "return":
            self.next()
            return Assign("return", tok, self.expression())
        if tok.text == "output":
            self.next()
            name = self.expect_name("an output name")
            self.expect("=")
            return Assign("output", name, self.expression())
        name = self.expect_name("a series name or rule")
        if self.at(":"):
            self.next()
            return Assign("rule", name, self.expression())
        if self.at("="):
            self.next()
            return Assign("series", name, self.expression())
        found = self.peek()
        raise self.error(found, f"expected '=' or ':' after {name.text!r}, found {describe(found)}")

    def param(self) -> ParamStmt:
        self.next()
        name = self.expect_name("a parameter name")
        self.expect(":")
        kind = self.expect_name("int, float or choice")
        choices: list[Token] = []
        if kind.text == "choice":
            self.expect("(")
            while True:
                tok = self.next()
                if tok.kind != "string":
                    raise self.error(tok, f"expected a quoted choice, found {describe(tok)}")
                choices.append(tok)
                if self.at(")"):
                    break
                self.expect(",", "',' or ')'")
            self.expect(")")
        self.expect("=")
        default = self.literal()
        low = high = step = None
        log = False
        if self.at("in"):
            self.next()
            self.expect("[")
            low = self.literal()
            self.expect(",")
            high = self.literal()
            self.expect("]")
        if self.at("step"):
            self.next()
            step = self.literal()
        if self.at("log"):
            self.next()
            log = True
        description = ""
        if self.peek().kind == "string":
            description = self.next().text
        return ParamStmt(name, kind, tuple(choices), default, low, high, step, log, description)

    def literal(self) -> Token:
        """A number (optionally negative; the sign is folded into the token) or a string."""
        tok = self.next()
        if tok.kind == "op" and tok.text == "-" and self.peek().kind == "number":
            num = self.next()
            return Token("number", "-" + num.text, tok.line, tok.column)
        if tok.kind not in ("number", "string"):
            raise self.error(tok, f"expected a number or string, found {describe(tok)}")
        return tok

    # -- expressions
    def expression(self, min_bp: int = 0) -> Node:
        self.depth += 1
        try:
            if self.depth > self.limits.max_depth:
                tok = self.peek()
                raise self.error(tok, f"expression nested deeper than {self.limits.max_depth}")
            left = self.prefix()
            while True:
                tok = self.peek()
                op = tok.text if tok.kind in ("op", "name") else ""
                bp = _INFIX_BP.get(op)
                if bp is None or bp <= min_bp:
                    return left
                left = self.infix(left, self.next(), bp)
                self.check_height(left, tok)
        finally:
            self.depth -= 1

    def check_height(self, node: Node, tok: Token) -> None:
        """Trees are walked recursively later, so a long `a + b + c + ...` chain (deep
        without any nesting in the text) is limited like nesting is."""
        children: tuple[Node, ...] = ()
        if isinstance(node, Binary):
            children = (node.left, node.right)
        elif isinstance(node, Ternary):
            children = (node.cond, node.then, node.other)
        elif isinstance(node, Call):
            children = node.args
        elif isinstance(node, Member):
            children = (node.obj,)
        elif isinstance(node, Index):
            children = (node.obj, node.offset)
        elif isinstance(node, Unary):
            children = (node.operand,)
        height = 1 + max((self.heights.get(id(c), 1) for c in children), default=0)
        self.heights[id(node)] = height
        if height > self.limits.max_depth:
            raise self.error(tok, f"expression nested deeper than {self.limits.max_depth}")

    def prefix(self) -> Node:
        tok = self.next()
        if tok.kind == "number":
            return Num(tok.line, tok.column, tok.text)
        if tok.kind == "string":
            return Str(tok.line, tok.column, tok.text)
        if tok.kind == "name" and tok.text == "not":
            node: Node = Unary(tok.line, tok.column, "not", self.expression(_PREFIX_BP["not"]))
            self.check_height(node, tok)
            return node
        if tok.kind == "name" and tok.text not in _KEYWORDS:
            return Name(tok.line, tok.column, tok.text)
        if tok.kind == "op" and tok.text == "-":
            node = Unary(tok.line, tok.column, "-", self.expression(_PREFIX_BP["-"]))
            self.check_height(node, tok)
            return node
        if tok.kind == "op" and tok.text == "(":
            inner = self.expression()
            self.expect(")", "')'")
            return inner
        raise self.error(tok, f"expected an expression, found {describe(tok)}")

    def infix(self, left: Node, tok: Token, bp: int) -> Node:
        op = tok.text
        if op == "(":
            if not isinstance(left, Name):
                raise self.error(tok, "only a function name can be called")
            args: list[Node] = []
            if not self.at(")"):
                while True:
                    args.append(self.expression())
                    if self.at(")"):
                        break
                    self.expect(",", "',' or ')'")
            self.expect(")", "')'")
            return Call(left.line, left.column, left.name, tuple(args))
        if op == ".":
            name = self.expect_name("an output name")
            return Member(tok.line, tok.column, left, name.text)
        if op == "[":
            offset = self.expression()
            self.expect("]", "']'")
            return Index(tok.line, tok.column, left, offset)
        if op == "?":
            then = self.expression()
            self.expect(":", "':'")
            other = self.expression(bp - 1)  # right-associative
            return Ternary(tok.line, tok.column, left, then, other)
        right = self.expression(bp)
        if op in _COMPARISONS:
            nxt = self.peek()
            if nxt.kind == "op" and nxt.text in _COMPARISONS:
                raise self.error(nxt, "comparisons do not chain; use 'and'")
        return Binary(tok.line, tok.column, op, left, right)


def describe(tok: Token) -> str:
    if tok.kind == "end":
        return "the end of the text"
    if tok.kind == "newline":
        return "the end of the line"
    if tok.kind == "string":
        return "a string"
    return repr(tok.text)


def parse(text: str, limits: Limits = LIMITS) -> tuple[list[Statement], list[RuleError]]:
    """The statements of a definition and its syntax errors; RuleError if it cannot even
    be split into tokens (size, token count, a stray character)."""
    return Parser(text, limits).statements()
