"""Alerts of a running strategy: its alert rules, stop hits, stalled feeds, errors, status.

``AlertEngine`` evaluates a strategy's rules (``metric op threshold``, e.g. ``max_drawdown
> 0.1``) on every bar against the figures of ``PerformanceTracker.figures()``. A rule is
*edge-triggered*: it fires on the bar where its condition becomes true and is then quiet
until the condition has been false again (for ``rearm_after`` bars in a row, 1 by default),
so a drawdown that stays above 10% for 300 bars raises one alert, not 300. A rule whose
figure is missing (or NaN) on a bar is skipped and keeps its state. The armed state is in
``snapshot()``, so a run resumed after a crash neither repeats nor misses an alert.

The other kinds are built by helpers: ``stop_alerts`` (a trade closed by a stop-loss,
take-profit or trailing stop), ``stalled_alert`` (kind ``feed_stalled``), ``error_alert``
and ``status_alert``. Every alert has a title and a message in words a trader reads
without the docs: values as percentages, money with thousands separators, bars as bars.

Rules are validated at strategy creation with ``rule_problems`` (``KNOWN_METRICS`` lists
the names a rule may use). Pure: no clock, no I/O.
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from stratopt.engine.metrics import METRIC_NAMES
from stratopt.live.bars import format_ts
from stratopt.live.performance import ACCOUNT_FIGURES
from stratopt.live.runner import StepResult

SNAPSHOT_VERSION = 1

AlertKind = Literal["rule", "stop", "feed_stalled", "error", "status"]
Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
DEFAULT_SEVERITY: Severity = "warning"
MAX_RULES = 20

KNOWN_METRICS: frozenset[str] = frozenset(METRIC_NAMES) | frozenset(ACCOUNT_FIGURES)
"""Names a rule may use: every backtest metric plus the account figures (``equity``,
``final_equity``, ``cash``, ``position`` (side: 1 long, -1 short, 0 flat),
``position_quantity``, ``realized_pnl``, ``unrealized_pnl``, ``drawdown`` (current, as a
fraction) and ``bars_processed``): exactly the keys of ``PerformanceTracker.figures()``."""

OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_OP_WORDS = {"<": "below", "<=": "at or below", ">": "above", ">=": "at or above"}
# What the value must do for the rule to re-arm (the negation of the condition).
_REARM_WORDS = {"<": "at or above", "<=": "above", ">": "at or below", ">=": "below"}

# How figures read: fractions as %, ratios as numbers, money, counts of bars or trades.
_PERCENT = frozenset(
    {
        "total_return", "cagr", "annual_volatility", "max_drawdown", "ulcer_index",
        "win_rate", "expectancy", "avg_win", "avg_loss", "largest_win", "largest_loss",
        "exposure", "kelly", "buy_and_hold_return", "drawdown",
    }
)  # fmt: skip
_MONEY = frozenset({"equity", "final_equity", "cash", "realized_pnl", "unrealized_pnl"})
_BARS = frozenset({"max_drawdown_duration", "avg_trade_duration", "bars_processed"})
# Figures that are fractions between 0 and 1: a threshold above 1 is a percent mistake.
_UNIT_FRACTIONS = frozenset({"max_drawdown", "drawdown", "win_rate", "exposure", "ulcer_index"})

LABELS: dict[str, str] = {
    "total_return": "Total return",
    "cagr": "CAGR",
    "annual_volatility": "Annual volatility",
    "sharpe": "Sharpe ratio",
    "sortino": "Sortino ratio",
    "calmar": "Calmar ratio",
    "max_drawdown": "Max drawdown",
    "max_drawdown_duration": "Longest drawdown",
    "ulcer_index": "Ulcer index",
    "win_rate": "Win rate",
    "profit_factor": "Profit factor",
    "expectancy": "Average trade return",
    "avg_win": "Average winning trade",
    "avg_loss": "Average losing trade",
    "largest_win": "Largest win",
    "largest_loss": "Largest loss",
    "num_trades": "Number of trades",
    "exposure": "Time in the market",
    "sqn": "System quality number (SQN)",
    "kelly": "Kelly fraction",
    "avg_trade_duration": "Average trade length",
    "buy_and_hold_return": "Buy-and-hold return",
    "equity": "Equity",
    "final_equity": "Equity",
    "cash": "Cash",
    "position": "Position",
    "position_quantity": "Position size",
    "realized_pnl": "Realized P&L",
    "unrealized_pnl": "Unrealized P&L",
    "drawdown": "Drawdown",
    "bars_processed": "Bars processed",
}

_EXIT_TITLES = {"stop": "Stop-loss hit", "target": "Take-profit hit", "trail": "Trailing stop hit"}
STOP_REASONS: frozenset[str] = frozenset(_EXIT_TITLES)

_STATUS_TITLES = {
    "started": "Strategy started",
    "running": "Strategy running",
    "resumed": "Strategy resumed",
    "stopped": "Strategy stopped",
    "finished": "Replay finished",
    "failed": "Strategy failed",
}


@dataclass(frozen=True)
class AlertEvent:
    """One alert, the fields of the Alert message that the run knows.

    ``value`` is the rule's figure for kind ``rule`` and the exit price for ``stop``;
    ``ts`` is the bar time (epoch ns) when known; ``fields`` are short name/value pairs
    for a notification's detail grid (``WebhookMessage.fields``).
    """

    kind: AlertKind
    severity: Severity
    title: str
    message: str
    rule: Mapping[str, Any] | None = None
    value: float = 0.0
    ts: int | None = None
    fields: tuple[tuple[str, str], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, with the keys of ``events.alert_payload`` plus ``ts`` and ``fields``."""
        return {
            "kind": self.kind,
            "severity": self.severity,
            "title": self.title,
            "message": self.message,
            "rule": dict(self.rule) if self.rule else {},
            "value": self.value,
            "ts": self.ts,
            "fields": [list(pair) for pair in self.fields],
        }


# -- rules -----------------------------------------------------------------------------------


def rule_problems(rules: Sequence[Any]) -> list[tuple[str, str]]:
    """What is wrong with alert rules, as (field, message) pairs; empty when all are fine.

    Fields are relative, e.g. ``alert_rules[2].metric``, for the caller to prefix
    (``strategy.``). Checks: at most MAX_RULES rules; ``metric`` known (with a suggestion
    for a near miss), ``op`` one of < <= > >=, ``threshold`` a finite number (and at most
    1 for figures that are fractions, the usual "10 meant 10%" mistake), ``severity``
    info, warning or critical when given.
    """
    out: list[tuple[str, str]] = []
    if len(rules) > MAX_RULES:
        out.append(("alert_rules", f"at most {MAX_RULES} rules"))
    for i, rule in enumerate(rules):
        at = f"alert_rules[{i}]"
        if not isinstance(rule, Mapping):
            out.append((at, "must be an object with metric, op, threshold and severity"))
            continue
        metric = rule.get("metric")
        if not metric:
            out.append((f"{at}.metric", "required"))
        elif not isinstance(metric, str) or metric not in KNOWN_METRICS:
            out.append((f"{at}.metric", _unknown_metric(metric)))
        if rule.get("op") not in OPS:
            out.append((f"{at}.op", "one of < <= > >="))
        threshold = _number(rule.get("threshold", 0.0))
        if threshold is None or not math.isfinite(threshold):
            out.append((f"{at}.threshold", "must be a finite number"))
        elif metric in _UNIT_FRACTIONS and abs(threshold) > 1:
            out.append(
                (
                    f"{at}.threshold",
                    f"{metric} is a fraction between 0 and 1 (0.1 means 10%); "
                    f"did you mean {threshold / 100:g}?",
                )
            )
        severity = rule.get("severity")
        if severity not in (None, "", *SEVERITIES):
            out.append((f"{at}.severity", "one of info, warning, critical"))
    return out


def _unknown_metric(metric: Any) -> str:
    text = f"unknown metric {metric!r}"
    if isinstance(metric, str):
        near = difflib.get_close_matches(metric.lower(), sorted(KNOWN_METRICS), n=1)
        if near:
            return f"{text}; did you mean {near[0]!r}?"
    return f"{text}; choose from {', '.join(sorted(KNOWN_METRICS))}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def normalize_rule(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A valid rule as a plain dict (severity defaults to warning); ValueError if invalid."""
    problems = rule_problems([rule])
    if problems:
        raise ValueError(
            "; ".join(f"{f.removeprefix('alert_rules[0].')}: {m}" for f, m in problems)
        )
    return {
        "metric": str(rule["metric"]),
        "op": str(rule["op"]),
        "threshold": float(rule.get("threshold", 0.0)),
        "severity": rule.get("severity") or DEFAULT_SEVERITY,
    }


@dataclass
class _RuleState:
    rule: dict[str, Any]
    armed: bool = True
    false_streak: int = 0


class AlertEngine:
    """A strategy's alert rules, evaluated edge-triggered on every bar.

    ``rules`` are dicts with metric, op, threshold and (optional) severity. Invalid rules
    (see ``rule_problems``; say, stored before validation knew them) are left out rather
    than failing the run; ``problems`` lists why. ``symbol`` and ``strategy_name`` name
    the subject in messages. ``rearm_after`` is how many bars in a row a condition must be
    false before its rule can fire again (1: as soon as it is false once).
    """

    def __init__(
        self,
        rules: Sequence[Mapping[str, Any]],
        *,
        symbol: str | None = None,
        strategy_name: str | None = None,
        rearm_after: int = 1,
    ) -> None:
        if rearm_after < 1:
            raise ValueError("rearm_after must be at least 1 bar")
        self.symbol = symbol
        self.strategy_name = strategy_name
        self.rearm_after = int(rearm_after)
        self.problems: list[tuple[str, str]] = []
        self._rules: list[_RuleState] = []
        for i, rule in enumerate(rules):
            try:
                self._rules.append(_RuleState(normalize_rule(rule)))
            except ValueError as e:
                self.problems.append((f"alert_rules[{i}]", str(e)))

    @property
    def rules(self) -> list[dict[str, Any]]:
        """The rules in effect (normalized)."""
        return [dict(s.rule) for s in self._rules]

    @property
    def active(self) -> bool:
        """Whether any rule is in effect; without one, `evaluate` never fires."""
        return bool(self._rules)

    def armed(self) -> list[bool]:
        """Per rule in effect: True when it fires as soon as its condition holds."""
        return [s.armed for s in self._rules]

    def evaluate(self, figures: Mapping[str, float], *, ts: int | None = None) -> list[AlertEvent]:
        """Check every rule against this bar's figures; the alerts that fire now."""
        fired: list[AlertEvent] = []
        for state in self._rules:
            rule = state.rule
            raw = figures.get(rule["metric"])
            if raw is None:
                continue
            value = float(raw)
            if math.isnan(value):
                continue
            if OPS[rule["op"]](value, rule["threshold"]):
                state.false_streak = 0
                if state.armed:
                    state.armed = False
                    fired.append(self._rule_alert(rule, value, ts))
            else:
                state.false_streak += 1
                if state.false_streak >= self.rearm_after:
                    state.armed = True
        return fired

    def _rule_alert(self, rule: Mapping[str, Any], value: float, ts: int | None) -> AlertEvent:
        metric, op, threshold = rule["metric"], rule["op"], rule["threshold"]
        label = LABELS.get(metric, metric)
        shown = format_figure(metric, value)
        limit = format_figure(metric, threshold, threshold=True)
        subject = _subject(self.strategy_name, self.symbol)
        if metric == "position":
            title = f"Position is now {shown}"
            message = (
                f"{subject}The position is now {shown}, which matches your alert rule "
                f"({metric} {op} {threshold:g})."
            )
        else:
            title = f"{label} {_OP_WORDS[op]} {limit}"
            message = (
                f"{subject}{label} is {shown}, {_OP_WORDS[op]} your alert "
                f"threshold of {limit} (rule: {metric} {op} {threshold:g})."
            )
        again = f" for {self.rearm_after} bars in a row" if self.rearm_after > 1 else ""
        if metric == "position":
            message += f" You will be alerted again after the position has not matched{again}."
        else:
            message += (
                f" You will be alerted again after it has been {_REARM_WORDS[op]} {limit}{again}."
            )
        return AlertEvent(
            kind="rule",
            severity=rule["severity"],
            title=title,
            message=message,
            rule=dict(rule),
            value=value,
            ts=ts,
            fields=(
                ("Rule", f"{metric} {op} {threshold:g}"),
                (label, shown),
                ("Threshold", limit),
            ),
        )

    def snapshot(self) -> dict[str, Any]:
        """The armed state of every rule (JSON-able)."""
        return {
            "version": SNAPSHOT_VERSION,
            "rules": [
                {"rule": dict(s.rule), "armed": s.armed, "false_streak": s.false_streak}
                for s in self._rules
            ],
        }

    @classmethod
    def restore(
        cls,
        rules: Sequence[Mapping[str, Any]],
        data: Mapping[str, Any] | None,
        **options: Any,
    ) -> AlertEngine:
        """An engine over ``rules`` that continues the armed state of ``snapshot()``.

        State is matched by rule (metric, op, threshold, severity), so a rule that was
        added since starts armed and a removed one is forgotten. ``data`` None (or empty)
        starts everything armed. ``options`` are the constructor's keywords.
        """
        engine = cls(rules, **options)
        if not data:
            return engine
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported alert snapshot version {data.get('version')!r}")
        saved: list[Mapping[str, Any]] = list(data.get("rules") or [])
        used = [False] * len(saved)
        for state in engine._rules:
            for j, entry in enumerate(saved):
                if not used[j] and _same_rule(entry.get("rule"), state.rule):
                    used[j] = True
                    state.armed = bool(entry.get("armed", True))
                    state.false_streak = int(entry.get("false_streak", 0))
                    break
        return engine


def _same_rule(saved: Any, rule: Mapping[str, Any]) -> bool:
    if not isinstance(saved, Mapping):
        return False
    try:
        return normalize_rule(saved) == rule
    except (ValueError, TypeError):
        return False


# -- the other kinds -------------------------------------------------------------------------


def stop_alerts(
    step: StepResult, symbol: str | None = None, *, strategy_name: str | None = None
) -> list[AlertEvent]:
    """One ``stop`` alert per trade of ``step`` closed by a stop-loss, target or trail.

    E.g. "Stop-loss hit on BTCUSDT at 41,230.50: long trade closed with -2.1% (P&L
    -215.40 after costs) after 14 bars; entered at 42,120.00." A stop-loss is a warning,
    a take-profit is info, a trailing stop is info when the trade made money.
    """
    sym = symbol or step.symbol
    out: list[AlertEvent] = []
    for trade in step.trades:
        if trade.exit_reason not in STOP_REASONS:
            continue
        what = _EXIT_TITLES[trade.exit_reason]
        side = "long" if trade.side > 0 else "short"
        held = f"{trade.bars_held} bar{'s' if trade.bars_held != 1 else ''}"
        who = f"{strategy_name}: " if strategy_name else ""
        message = (
            f"{who}{what} on {sym} at {format_price(trade.exit_price)}: {side} trade closed "
            f"with {format_signed_percent(trade.ret)} (P&L {format_money(trade.pnl)} after "
            f"costs) after {held}; entered at {format_price(trade.entry_price)}."
        )
        if trade.exit_reason == "stop":
            severity: Severity = "warning"
        elif trade.exit_reason == "target":
            severity = "info"
        else:
            severity = "info" if trade.pnl >= 0 else "warning"
        out.append(
            AlertEvent(
                kind="stop",
                severity=severity,
                title=f"{what} on {sym}",
                message=message,
                value=trade.exit_price,
                ts=trade.exit_ts if trade.exit_ts is not None else step.ts,
                fields=(
                    ("Symbol", sym),
                    ("Side", side),
                    ("Exit price", format_price(trade.exit_price)),
                    ("Entry price", format_price(trade.entry_price)),
                    ("Return", format_signed_percent(trade.ret)),
                    ("P&L", format_money(trade.pnl)),
                ),
            )
        )
    return out


def stalled_alert(
    feed: str,
    silent_seconds: float,
    *,
    symbol: str | None = None,
    last_bar_ts: int | None = None,
    expected_seconds: float | None = None,
    ts: int | None = None,
) -> AlertEvent:
    """Kind ``feed_stalled``: no bar has arrived on ``feed`` for ``silent_seconds``."""
    silent = format_duration(silent_seconds)
    what = f"{symbol} on feed {feed}" if symbol else f"feed {feed}"
    title = (
        f"No {symbol} bars for {silent} (feed {feed})"
        if symbol
        else f"Feed {feed} stalled: no bars for {silent}"
    )
    message = f"No bar has arrived on {what} for {silent}"
    if last_bar_ts is not None:
        message += f" (the last one was for {format_ts(last_bar_ts)})"
    message += "."
    if expected_seconds:
        message += f" Bars normally arrive every {format_duration(expected_seconds)}."
    message += (
        " Strategies on it are waiting and place no orders until bars arrive again; check"
        " the bridge or data source that sends them."
    )
    return AlertEvent(
        kind="feed_stalled",
        severity="warning",
        title=title,
        message=message,
        value=float(silent_seconds),
        ts=ts,
        fields=(("Feed", feed), ("Silent for", silent)),
    )


feed_stalled_alert = stalled_alert


def feed_resumed_alert(
    feed: str, silent_seconds: float, *, symbol: str | None = None, ts: int | None = None
) -> AlertEvent:
    """Kind ``feed_stalled``, severity info: bars arrive again after a stall."""
    what = f"{symbol} on feed {feed}" if symbol else f"feed {feed}"
    silent = format_duration(silent_seconds)
    return AlertEvent(
        kind="feed_stalled",
        severity="info",
        title=f"Bars arriving again on {what}",
        message=(
            f"Bars arrive again for {what} after {silent} without any; "
            "strategies on it trade again from this bar."
        ),
        value=float(silent_seconds),
        ts=ts,
        fields=(("Feed", feed), ("Silent for", silent)),
    )


def error_alert(
    error: str | BaseException,
    *,
    stopped: bool = True,
    strategy_name: str | None = None,
    ts: int | None = None,
) -> AlertEvent:
    """Kind ``error``: the run failed (``stopped``) or skipped something it could not do."""
    text = _error_text(error)
    who = f"{strategy_name} " if strategy_name else "The strategy "
    if stopped:
        title = (
            f"{strategy_name} stopped by an error"
            if strategy_name
            else "Strategy stopped by an error"
        )
        message = (
            f"{who}stopped because of an error: {text}. Everything up to the last bar it "
            "processed is saved; no further orders are placed until it is started again."
        )
        severity: Severity = "critical"
    else:
        title = f"{strategy_name}: error" if strategy_name else "Strategy error"
        message = f"{who}hit an error and carries on: {text}."
        severity = "warning"
    return AlertEvent(kind="error", severity=severity, title=title, message=message, ts=ts)


def status_alert(
    status: str,
    detail: str = "",
    *,
    severity: Severity | None = None,
    ts: int | None = None,
) -> AlertEvent:
    """Kind ``status``: the run changed state (started, resumed, stopped, finished, failed).

    ``detail`` is the sentence shown as the message (e.g. "Momentum started on BTCUSDT").
    """
    title = _STATUS_TITLES.get(status, f"Strategy {status}")
    message = _sentence(detail) if detail else f"{title}."
    level: Severity = severity or ("critical" if status == "failed" else "info")
    return AlertEvent(kind="status", severity=level, title=title, message=message, value=0.0, ts=ts)


# -- formatting ------------------------------------------------------------------------------


def format_figure(metric: str, value: float, *, threshold: bool = False) -> str:
    """``value`` of ``metric`` as a trader reads it (thresholds without padding zeros)."""
    if metric in _PERCENT:
        return format_percent(value, trim=threshold)
    if metric in _MONEY:
        return format_money(value)
    if metric in _BARS:
        n = _trim(f"{value:,.1f}")
        return f"{n} bar" if n == "1" else f"{n} bars"
    if metric == "num_trades":
        return _trim(f"{value:,.1f}")
    if metric == "position" and not threshold:
        return "long" if value > 0 else ("short" if value < 0 else "flat")
    if metric == "position_quantity":
        return _trim(f"{value:,.8f}")
    return _trim(f"{value:,.4f}") if threshold else f"{value:,.2f}"


def format_percent(fraction: float, *, trim: bool = False) -> str:
    """0.1235 -> "12.35%" (trimmed: 0.1 -> "10%")."""
    text = f"{fraction * 100:,.2f}"
    return f"{_trim(text) if trim else text}%"


def format_signed_percent(fraction: float) -> str:
    """-0.021 -> "-2.1%"; two decimals under 1%, so small moves do not read as 0."""
    pct = fraction * 100
    digits = 1 if abs(pct) >= 1 else 2
    return f"{pct:+.{digits}f}%"


def format_money(amount: float) -> str:
    """-1234.5 -> "-1,234.50"."""
    return f"{amount:,.2f}"


def format_price(price: float) -> str:
    """41230.5 -> "41,230.50", 1.08425 -> "1.08425", 0.00001234 -> "0.00001234"."""
    if not math.isfinite(price):
        return str(price)
    size = abs(price)
    if size >= 1000:
        return f"{price:,.2f}"
    if size >= 1:
        text = _trim(f"{price:,.5f}")
        whole, _, frac = text.partition(".")
        return f"{whole}.{frac.ljust(2, '0')}"
    if size == 0:
        return "0"
    decimals = min(12, 5 - math.floor(math.log10(size)))
    return _trim(f"{price:.{decimals}f}")


def format_duration(seconds: float) -> str:
    """75 -> "1 min 15 s", 7260 -> "2 h 1 min", 0.5 -> "0.5 s"."""
    s = max(0.0, float(seconds))
    if s < 60:
        return f"{_trim(f'{s:.1f}')} s"
    whole = round(s)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n][:2]
    return " ".join(shown)


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def _subject(strategy_name: str | None, symbol: str | None) -> str:
    if strategy_name and symbol:
        return f"{strategy_name} ({symbol}): "
    if strategy_name or symbol:
        return f"{strategy_name or symbol}: "
    return ""


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _error_text(error: str | BaseException) -> str:
    if isinstance(error, BaseException):
        text = str(error) or type(error).__name__
        if not isinstance(error, ValueError | RuntimeError):
            text = f"{type(error).__name__}: {text}"
    else:
        text = error
    text = " ".join(text.strip().split()) or "unknown error"
    return text.rstrip(".")
