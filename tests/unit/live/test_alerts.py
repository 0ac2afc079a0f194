"""AlertEngine (edge-triggered rules), rule validation, and the other alert kinds."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from stratopt.engine.metrics import METRIC_NAMES
from stratopt.engine.options import ExecutionOptions
from stratopt.live.alerts import (
    KNOWN_METRICS,
    MAX_RULES,
    AlertEngine,
    AlertEvent,
    error_alert,
    feed_resumed_alert,
    format_duration,
    format_figure,
    format_price,
    format_signed_percent,
    rule_problems,
    stalled_alert,
    status_alert,
    stop_alerts,
)
from stratopt.live.broker import ClosedTrade
from stratopt.live.performance import PerformanceTracker
from stratopt.live.runner import StepResult, StrategyRun
from stratopt.live.signals import StrategySignal
from stratopt.strategies import registry

from ._replay import live_bars, synthetic


def rule(metric: str, op: str, threshold: float, severity: str = "warning") -> dict[str, Any]:
    return {"metric": metric, "op": op, "threshold": threshold, "severity": severity}


def fires(engine: AlertEngine, values: list[float], metric: str = "max_drawdown") -> list[int]:
    """Indices of the bars (one value each) on which an alert fired."""
    out = []
    for i, v in enumerate(values):
        if engine.evaluate({metric: v}):
            out.append(i)
    return out


# -- comparators and edge triggering ---------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "below", "at", "above"),
    [("<", True, False, False), ("<=", True, True, False), (">", False, False, True),
     (">=", False, True, True)],
)  # fmt: skip
def test_each_comparator(op: str, below: bool, at: bool, above: bool) -> None:
    for value, expected in ((0.05, below), (0.1, at), (0.15, above)):
        engine = AlertEngine([rule("max_drawdown", op, 0.1)])
        assert bool(engine.evaluate({"max_drawdown": value})) is expected, (op, value)


def test_fires_once_when_the_condition_becomes_true_and_rearms_when_false() -> None:
    engine = AlertEngine([rule("drawdown", ">", 0.1)])
    values = [0.0, 0.05, 0.11, 0.2, 0.3, 0.12, 0.1, 0.09, 0.15, 0.16, 0.05, 0.2]
    assert fires(engine, values, "drawdown") == [2, 8, 11]


def test_true_on_the_first_bar_fires_on_the_first_bar() -> None:
    engine = AlertEngine([rule("num_trades", "<", 1, "info")])
    assert fires(engine, [0, 0, 0, 1, 0], "num_trades") == [0, 4]


def test_rearm_after_several_bars_damps_a_value_that_hovers_at_the_threshold() -> None:
    values = [0.11, 0.09, 0.11, 0.09, 0.09, 0.11, 0.09, 0.09, 0.09, 0.11]
    assert fires(AlertEngine([rule("drawdown", ">", 0.1)]), values, "drawdown") == [0, 2, 5, 9]
    damped = AlertEngine([rule("drawdown", ">", 0.1)], rearm_after=3)
    assert fires(damped, values, "drawdown") == [0, 9]
    with pytest.raises(ValueError):
        AlertEngine([], rearm_after=0)


def test_missing_or_nan_figures_keep_the_state() -> None:
    engine = AlertEngine([rule("equity", "<", 9_000.0)])
    assert engine.evaluate({"equity": 8_000.0})
    assert engine.evaluate({}) == []
    assert engine.evaluate({"equity": math.nan}) == []
    assert engine.armed() == [False]  # neither re-armed it
    assert engine.evaluate({"equity": 8_500.0}) == []
    assert engine.evaluate({"equity": 9_500.0}) == []
    assert engine.evaluate({"equity": 8_500.0})


def test_rules_are_independent_and_alerts_carry_the_rule() -> None:
    rules = [
        rule("max_drawdown", ">", 0.1, "critical"),
        rule("sharpe", "<", 0.5),
        {"metric": "equity", "op": "<=", "threshold": 9_000},  # severity defaults
    ]
    engine = AlertEngine(rules, symbol="BTCUSDT", strategy_name="Momentum")
    got = engine.evaluate({"max_drawdown": 0.12345, "sharpe": 0.31, "equity": 9_500.0})
    assert [a.rule["metric"] for a in got if a.rule] == ["max_drawdown", "sharpe"]
    dd, sharpe = got
    assert dd.kind == "rule" and dd.severity == "critical" and dd.value == 0.12345
    assert dd.title == "Max drawdown above 10%"
    assert dd.message.startswith(
        "Momentum (BTCUSDT): Max drawdown is 12.35%, above your alert threshold of 10%"
    )
    assert "at or below 10%" in dd.message  # when it re-arms, in words
    assert sharpe.title == "Sharpe ratio below 0.5"
    assert "0.31" in sharpe.message and sharpe.severity == "warning"
    (eq,) = engine.evaluate({"max_drawdown": 0.2, "sharpe": 0.2, "equity": 8_999.5})
    assert eq.title == "Equity at or below 9,000.00"
    assert "8,999.50" in eq.message and eq.severity == "warning"
    assert eq.rule == {"metric": "equity", "op": "<=", "threshold": 9000.0, "severity": "warning"}
    json.dumps(eq.to_dict())


def test_position_rule_reads_as_a_side() -> None:
    engine = AlertEngine([rule("position", "<", 0, "info")], symbol="ES1!")
    (short,) = engine.evaluate({"position": -1.0})
    assert short.title == "Position is now short"
    assert "ES1!: The position is now short" in short.message


def test_invalid_rules_are_left_out_with_the_reason() -> None:
    engine = AlertEngine([rule("sharpe", "<", 0.0), rule("bogus", ">", 1.0), rule("cagr", "=", 0)])
    assert engine.rules == [rule("sharpe", "<", 0.0)]
    assert [f for f, _ in engine.problems] == ["alert_rules[1]", "alert_rules[2]"]
    assert "unknown metric 'bogus'" in engine.problems[0][1]


# -- validation ------------------------------------------------------------------------------


def test_every_known_metric_is_a_valid_rule_and_a_tracker_figure() -> None:
    assert set(METRIC_NAMES) <= KNOWN_METRICS
    assert {"equity", "drawdown", "position", "realized_pnl", "unrealized_pnl", "cash"} <= (
        KNOWN_METRICS
    )
    assert set(PerformanceTracker(1.0, None).figures()) == KNOWN_METRICS
    for m in sorted(KNOWN_METRICS):
        assert rule_problems([rule(m, ">=", 0.5)]) == [], m


def test_rule_problems() -> None:
    problems = rule_problems(
        [
            rule("maxdrawdown", "=>", math.nan, "high"),
            {"op": ">", "threshold": 1},
            rule("drawdown", ">", 10),
            {"metric": "sharpe", "op": "<", "threshold": "abc"},
            {"metric": "sharpe", "op": "<", "threshold": True},
            {"metric": "sharpe", "op": "<"},  # threshold 0 by default, severity warning
            "max_drawdown > 0.1",
        ]
    )
    fields = dict(problems)
    assert fields["alert_rules[0].metric"] == (
        "unknown metric 'maxdrawdown'; did you mean 'max_drawdown'?"
    )
    assert fields["alert_rules[0].op"] == "one of < <= > >="
    assert fields["alert_rules[0].threshold"] == "must be a finite number"
    assert fields["alert_rules[0].severity"] == "one of info, warning, critical"
    assert fields["alert_rules[1].metric"] == "required"
    assert "0.1 means 10%" in fields["alert_rules[2].threshold"]
    assert "did you mean 0.1?" in fields["alert_rules[2].threshold"]
    assert "alert_rules[3].threshold" in fields and "alert_rules[4].threshold" in fields
    assert not any(f.startswith("alert_rules[5]") for f in fields)
    assert "alert_rules[6]" in fields
    unknown = rule_problems([rule("zzzz", ">", 1)])[0][1]
    assert unknown.startswith("unknown metric 'zzzz'; choose from ") and "max_drawdown" in unknown
    many = rule_problems([rule("sharpe", "<", 0)] * (MAX_RULES + 1))
    assert many == [("alert_rules", f"at most {MAX_RULES} rules")]


# -- snapshot / restore ----------------------------------------------------------------------


def test_snapshot_restore_continues_identically() -> None:
    rules = [rule("drawdown", ">", 0.1), rule("equity", "<", 9_500.0, "critical")]
    values = [
        {"drawdown": d, "equity": e}
        for d, e in [(0.0, 10_000), (0.12, 9_400), (0.2, 9_000), (0.05, 9_600), (0.15, 9_400),
                     (0.15, 9_400), (0.01, 10_100), (0.11, 9_499)]
    ]  # fmt: skip
    straight = AlertEngine(rules, rearm_after=1)
    expected = [[a.title for a in straight.evaluate(v)] for v in values]
    for cut in range(len(values) + 1):
        first = AlertEngine(rules)
        got = [[a.title for a in first.evaluate(v)] for v in values[:cut]]
        saved = json.loads(json.dumps(first.snapshot()))
        resumed = AlertEngine.restore(rules, saved)
        got += [[a.title for a in resumed.evaluate(v)] for v in values[cut:]]
        assert got == expected, cut
        assert resumed.snapshot() == straight.snapshot()


def test_restore_matches_state_by_rule() -> None:
    dd, eq = rule("drawdown", ">", 0.1), rule("equity", "<", 9_000.0)
    engine = AlertEngine([dd, eq])
    engine.evaluate({"drawdown": 0.2, "equity": 8_000.0})
    saved = engine.snapshot()
    changed = AlertEngine.restore([rule("sharpe", ">", 1.0), eq], saved)
    assert changed.armed() == [True, False]  # the new rule starts armed; eq keeps its state
    assert AlertEngine.restore([dd, eq], None).armed() == [True, True]
    assert AlertEngine.restore([dd, eq], {}).armed() == [True, True]
    with pytest.raises(ValueError, match="version"):
        AlertEngine.restore([dd], {"version": 7, "rules": []})


# -- with a real run -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def protective_steps() -> list[StepResult]:
    feed = live_bars(synthetic(1500, seed=7))
    options = ExecutionOptions(
        direction="both", stop_loss=0.015, take_profit=0.04, trailing_stop=0.03
    )
    run = StrategyRun(StrategySignal(registry.get("sma_crossover")), options, feed[0].symbol)
    return [run.step(bar) for bar in feed]


def test_rules_on_a_replay_fire_on_crossings_only(protective_steps: list[StepResult]) -> None:
    tracker = PerformanceTracker(10_000.0, None)
    engine = AlertEngine(
        [rule("drawdown", ">", 0.02), rule("max_drawdown", ">", 0.03), rule("num_trades", ">=", 5)]
    )
    fired: dict[str, list[int]] = {"drawdown": [], "max_drawdown": [], "num_trades": []}
    for step in protective_steps:
        tracker.update(step)
        for alert in engine.evaluate(tracker.figures(), ts=step.ts):
            assert alert.ts == step.ts and alert.rule is not None
            fired[alert.rule["metric"]].append(step.bar_index)
    drawdowns = [s.drawdown > 0.02 for s in protective_steps]
    crossings = [i for i, x in enumerate(drawdowns) if x and (i == 0 or not drawdowns[i - 1])]
    assert len(crossings) >= 2 and fired["drawdown"] == crossings
    assert len(fired["max_drawdown"]) == 1  # it never goes back down
    assert len(fired["num_trades"]) == 1


def test_stop_alerts_from_a_replay(protective_steps: list[StepResult]) -> None:
    seen: set[str] = set()
    for step in protective_steps:
        alerts = stop_alerts(step, "BTCUSDT")
        protective = [t for t in step.trades if t.exit_reason in ("stop", "target", "trail")]
        assert len(alerts) == len(protective)
        for alert, trade in zip(alerts, protective, strict=True):
            seen.add(trade.exit_reason)
            assert alert.kind == "stop" and alert.value == trade.exit_price
            assert alert.ts == step.ts
            assert alert.message.startswith(f"{alert.title} at {format_price(trade.exit_price)}:")
            assert format_signed_percent(trade.ret) in alert.message
    assert seen == {"stop", "target", "trail"}


def _trade(reason: str, ret: float, pnl: float, side: int = 1) -> ClosedTrade:
    return ClosedTrade(
        entry_idx=3, exit_idx=17, side=side, entry_price=42_120.0, exit_price=41_230.5, size=0.1,
        pnl=pnl, ret=ret, bars_held=14, exit_reason=reason, entry_ts=1, exit_ts=2,
    )  # fmt: skip


def _with_trades(*trades: ClosedTrade) -> StepResult:
    return StepResult(
        bar_index=17, ts=2, symbol="BTCUSDT", target=0, signal=None, fills=(), trades=trades,
        side=0, position=0.0, cash=1.0, equity=1.0, realized_pnl=0.0, unrealized_pnl=0.0,
        peak_equity=1.0, drawdown=0.0,
    )  # fmt: skip


def test_stop_alert_words() -> None:
    step = _with_trades(
        _trade("stop", -0.0211, -89.05),
        _trade("signal", 0.01, 5.0),
        _trade("target", 0.04, 160.0, side=-1),
        _trade("trail", -0.004, -16.0),
        _trade("end", 0.0, 0.0),
    )
    stop, target, trail = stop_alerts(step)
    assert stop.title == "Stop-loss hit on BTCUSDT" and stop.severity == "warning"
    assert stop.message == (
        "Stop-loss hit on BTCUSDT at 41,230.50: long trade closed with -2.1% "
        "(P&L -89.05 after costs) after 14 bars; entered at 42,120.00."
    )
    assert target.title == "Take-profit hit on BTCUSDT" and target.severity == "info"
    assert "short trade closed with +4.0%" in target.message
    assert trail.title == "Trailing stop hit on BTCUSDT" and trail.severity == "warning"
    assert "-0.40%" in trail.message
    named = stop_alerts(step, "XBT", strategy_name="Momentum")[0]
    assert named.message.startswith("Momentum: Stop-loss hit on XBT at")
    assert dict(stop.fields)["P&L"] == "-89.05"


# -- the other kinds -------------------------------------------------------------------------


def test_feed_stalled_alerts() -> None:
    alert = stalled_alert(
        "feed-1", 312, symbol="BTCUSDT", last_bar_ts=1_700_000_000 * 10**9, expected_seconds=60
    )
    assert alert.kind == "feed_stalled" and alert.severity == "warning" and alert.value == 312
    assert alert.title == "No BTCUSDT bars for 5 min 12 s (feed feed-1)"
    assert "2023-11-14T22:13:20Z" in alert.message
    assert "every 1 min" in alert.message and "place no orders" in alert.message
    bare = stalled_alert("f9", 45.0)
    assert bare.title == "Feed f9 stalled: no bars for 45 s"
    back = feed_resumed_alert("f9", 3_700)
    assert back.kind == "feed_stalled" and back.severity == "info"
    assert "after 1 h 1 min" in back.message


def test_error_and_status_alerts() -> None:
    failed = error_alert("division by zero in indicator")
    assert failed.kind == "error" and failed.severity == "critical"
    assert failed.title == "Strategy stopped by an error"
    assert "division by zero in indicator. Everything up to the last bar" in failed.message
    skipped = error_alert(KeyError("close"), stopped=False, strategy_name="Momentum")
    assert skipped.severity == "warning" and skipped.title == "Momentum: error"
    assert "KeyError: 'close'" in skipped.message
    started = status_alert("started", "Momentum started on BTCUSDT")
    assert (started.kind, started.severity, started.title) == ("status", "info", "Strategy started")
    assert started.message == "Momentum started on BTCUSDT."
    assert status_alert("finished", "the replay reached the end").message == (
        "The replay reached the end."
    )
    assert status_alert("failed").severity == "critical"
    assert status_alert("paused").title == "Strategy paused"


def test_alert_event_to_dict_is_json() -> None:
    event = AlertEvent("rule", "info", "t", "m", rule=rule("sharpe", ">", 1.0), value=1.5, ts=9)
    data = json.loads(json.dumps(event.to_dict()))
    assert data["rule"]["metric"] == "sharpe" and data["value"] == 1.5 and data["ts"] == 9


def test_formatting() -> None:
    assert format_price(41_230.5) == "41,230.50"
    assert format_price(1.08425) == "1.08425"
    assert format_price(150.2) == "150.20"
    assert format_price(0.00001234) == "0.00001234"
    assert format_signed_percent(-0.021) == "-2.1%"
    assert format_signed_percent(0.0005) == "+0.05%"
    assert format_figure("win_rate", 0.555) == "55.50%"
    assert format_figure("win_rate", 0.5, threshold=True) == "50%"
    assert format_figure("max_drawdown_duration", 120) == "120 bars"
    assert format_figure("num_trades", 12) == "12"
    assert format_figure("sortino", 1.23456) == "1.23"
    assert format_figure("unrealized_pnl", -1234.5) == "-1,234.50"
    assert format_duration(0.5) == "0.5 s"
    assert format_duration(90_061) == "1 d 1 h"
