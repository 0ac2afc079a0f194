"""Malformed and hostile definitions: a positioned RuleError, quickly, and nothing else.

"Nothing else" is the contract the API relies on to answer INVALID_ARGUMENT and never
INTERNAL; "quickly" is checked with a generous wall-clock bound per input.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratopt.rules import LIMITS, RuleError, RuleErrors, check, check_indicator, corpus

GOOD = """param fast: int = 10 in [2, 50]
param slow: int = 30 in [5, 200]
constraint fast < slow
long_entry: crossover(sma(close, fast), sma(close, slow))
short_entry: crossunder(sma(close, fast), sma(close, slow))
"""


def error_of(text: str, **kwargs: object) -> RuleError:
    start = time.perf_counter()
    with pytest.raises(RuleError) as info:
        check(text, **kwargs)  # type: ignore[arg-type]
    assert time.perf_counter() - start < 2.0, "rejecting a definition must be fast"
    err = info.value
    assert isinstance(err, RuleErrors) and err.errors
    for e in err.errors:
        assert e.line >= 1 and e.column >= 1, f"no position: {e}"
    return err


@pytest.mark.parametrize(
    ("text", "line", "column", "fragment"),
    [
        ("long_entry: close > sma(close, 10) and", 1, 39, "expected an expression"),
        ("long_entry: close > foo", 1, 21, "unknown name 'foo'"),
        ("long_entry: close > frob(close, 3)", 1, 21, "unknown function 'frob'"),
        ("x = close\nlong_entry: x > 1\nlong_entry: x < 2", 3, 1, "defined twice"),
        ("long_entry: sma(close, 10)", 1, 13, "a rule is a condition"),
        ("long_entry: close[6000] > close", 1, 19, "outside 0..5000"),
        ("long_entry: sma(close, 100000) > close", 1, 24, "outside 1..5000"),
        ("param n: int = 5 in [1, 99999]\nlong_entry: close > sma(close, n)", 2, 32, "within"),
        ("param n: int = 5 in [0, 10]\nlong_entry: close > sma(close, n)", 2, 32, "within 1"),
        ("long_entry: close > bb(close, 20, 2)", 1, 21, "several outputs"),
        ("long_entry: close > bb(close, 20, 2).top", 1, 37, "no output 'top'"),
        ("long_entry: 1 < 2 < 3", 1, 19, "do not chain"),
        ("long_entry: close > 1\nlong_exit: close < 2 +", 2, 23, "expected an expression"),
        ("x = position\nlong_entry: x > 0", 1, 5, "only available in rules"),
        ("long_entry: crossover(position, 0)", 1, 23, "only available in rules"),
        ("param close: int = 1 in [1, 2]\nlong_entry: close > 1", 1, 7, "reserved"),
        ("long_entry: close > sma(close, 1.5)", 1, 32, "whole-number length"),
        ('param s: choice("a", "b") = "a"\nlong_entry: s == "c"', 2, 15, "not a choice"),
        ("long_entry: close > 1 / 0", 1, 23, "division by zero"),
        ("long_entry: close > 1e400", 1, 21, "out of range"),
        ("long_entry: close \u2265 1", 1, 19, "unexpected character"),
        ("long_entry: close > 1\n\u00e9 = 2", 2, 1, "unexpected character"),
        ('long_entry: close > "x', 1, 21, "unterminated string"),
        ("param a: int = 5 in [1, 3]\nlong_entry: close > a", 1, 7, "between"),
        (
            "param a: int = 5 in [1, 9]\nparam b: int = 3 in [1, 9]\nconstraint a < b\n"
            "long_entry: close > a",
            3,
            12,
            "defaults break",
        ),
        ("long_exit: close > 1", 1, 1, "needs a long_entry or a short_entry"),
        ("go_long: close > 1", 1, 1, "unknown rule"),
        ("long_entry: close > ", 1, 21, "expected an expression"),
        ("long_entry: (close > 1", 1, 23, "expected ')'"),
        ("long_entry: not close", 1, 13, "'not' needs a condition"),
        ("long_entry: close > 1 ? 2", 1, 26, "expected ':'"),
    ],
)
def test_errors_point_at_the_problem(text: str, line: int, column: int, fragment: str) -> None:
    err = error_of(text)
    first = err.errors[0]
    assert fragment in first.message, str(err)
    assert (first.line, first.column) == (line, column), str(err)


def test_every_error_is_reported_at_once() -> None:
    err = error_of("a = foo\nb = close +\nlong_entry: bar > 1\nlong_exit: a > 1")
    assert [(e.line, e.column) for e in err.errors] == [(1, 5), (2, 12), (3, 13)]
    assert "1:5" in str(err) and "3:13" in str(err)


def test_deep_nesting_is_refused_without_recursion() -> None:
    for text in (
        "long_entry: " + "(" * 100_00 + "close" + ")" * 100_00 + " > 1",
        "long_entry: " + "not " * 5000 + "close > 1",
        "long_entry: " + "-" * 5000 + "close > 1",
        "long_entry: close > " + " + ".join(["close"] * 1500),
        "long_entry: " + "sma(" * 2000 + "close" + ", 2)" * 2000 + " > 1",
    ):
        err = error_of(text)
        assert any(word in err.message for word in ("deeper", "tokens", "characters")), err.message


def test_huge_text_is_refused_before_parsing() -> None:
    err = error_of("# " + "x" * (LIMITS.max_chars + 10))
    assert "characters" in err.message


def test_too_many_parameters_and_series() -> None:
    params = "\n".join(f"param p{i}: int = 1 in [1, 2]" for i in range(LIMITS.max_params + 1))
    assert "parameters" in error_of(params + "\nlong_entry: close > 1").message
    series = "\n".join(f"s{i} = close" for i in range(LIMITS.max_series + 1))
    assert "named series" in error_of(series + "\nlong_entry: close > 1").message


def test_exponential_expansion_through_indicators_is_bounded() -> None:
    indicators = {"i0": "input x: series\nreturn x + x"}
    for k in range(1, 9):
        indicators[f"i{k}"] = f"input x: series\nreturn i{k - 1}(x) + i{k - 1}(x)"
    err = error_of("long_entry: i8(close) > 1", indicators=indicators)
    assert "nodes" in str(err) or "deep" in str(err)


def test_exponential_expansion_through_named_series_is_bounded() -> None:
    lines = ["s0 = close", *(f"s{i} = s{i - 1} + s{i - 1}" for i in range(1, 60))]
    err = error_of("\n".join([*lines, "long_entry: s59 > 0"]))
    first_too_big = next(k for k in range(60) if 2 ** (k + 1) - 1 > LIMITS.max_nodes)
    assert "expands to" in err.message and err.line == first_too_big + 1
    assert len(err.errors) == 1, "the names built on a failed one are not reported again"


def test_indicator_cycles_are_errors() -> None:
    indicators = {
        "a": "input x: series\nreturn b(x)",
        "b": "input x: series\nreturn a(x) + 1",
    }
    err = error_of("long_entry: a(close) > 1", indicators=indicators)
    assert "cycle" in str(err)


def test_bad_indicator_definitions() -> None:
    for text, fragment in (
        ("input x: series", "needs a 'return'"),
        ("input x: text\nreturn x", "series, int or float"),
        ("return close\nreturn open", "nothing may follow"),
        ("input n: int\nreturn sma(close, n) > ", "expected an expression"),
        ("long_entry: close > 1", "input, series, return or output"),
    ):
        with pytest.raises(RuleError) as info:
            check_indicator(text)
        assert fragment in str(info.value)
        assert info.value.line >= 1


def test_the_corpus_and_the_example_check() -> None:
    checked = check(GOOD)
    assert [p.name for p in checked.params] == ["fast", "slow"]
    assert checked.rules == ("long_entry", "short_entry")
    for name in corpus.names():
        check(corpus.text(name))


# ---- fuzzing ---------------------------------------------------------------------------

_WORDS = [
    "param", "constraint", "input", "return", "output", "long_entry", "short_entry",
    "long_exit", "short_exit", "close", "open", "high", "sma", "ema", "bb", "crossover",
    "bars_since", "position", "and", "or", "not", "x", "fast", "int", "float", "choice",
    "in", "step", "log", "na", "nz", "true", "1", "2.5", "-", "1e3", '"a"', "(", ")", "[",
    "]", ",", ":", "=", "==", "<", ">=", "+", "*", "/", "?", ".", "upper", "\n", " ", "#",
]  # fmt: skip


def _assert_only_rule_errors(text: str) -> None:
    try:
        check(text)
    except RuleError as e:
        assert e.line >= 0 and e.column >= 0
        if isinstance(e, RuleErrors):
            assert all(x.line >= 1 for x in e.errors)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_WORDS), max_size=60).map(" ".join))
def test_fuzz_token_soup(text: str) -> None:
    _assert_only_rule_errors(text)


@settings(max_examples=200, deadline=2000)
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text(text: str) -> None:
    _assert_only_rule_errors(text)


@settings(max_examples=200, deadline=2000)
@given(st.data())
def test_fuzz_mutated_corpus(data: st.DataObject) -> None:
    """Valid definitions with a span deleted or replaced: the nastiest near-misses."""
    text = corpus.text(data.draw(st.sampled_from(corpus.names())))
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, min(len(text), start + 20)))
    insert = data.draw(st.sampled_from(["", *_WORDS]))
    _assert_only_rule_errors(text[:start] + insert + text[end:])
