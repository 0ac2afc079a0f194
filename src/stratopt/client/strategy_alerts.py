"""`--alert METRIC<OP>THRESHOLD[:SEVERITY]`: the alert rules of a stored strategy, as
`strategies create` and `strategies update` take them and `strategies show` prints them.

A rule raises an alert while the strategy paper trades (`stratopt live alerts`). The form
is checked here, so a typo is a usage error before anything is sent; whether METRIC is a
figure a run reports (and a threshold in its unit) is the server's to say, since it owns
the list of metrics.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Iterable, Sequence

from stratopt.client.output import CliError, enum_names
from stratopt.v1 import strategy_pb2 as pb

SEVERITIES = enum_names(pb.AlertSeverity, "ALERT_SEVERITY_")
SEVERITY_NAMES = {v: k for k, v in SEVERITIES.items()}
EXAMPLE = '--alert "max_drawdown>0.2:critical"'

# Longest operators first, so "<=" is not read as "<" and a threshold "=...".
_RULE = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][A-Za-z0-9_]*)\s*(?P<op><=|>=|<|>)\s*(?P<threshold>[^:]*?)\s*"
    r"(?::\s*(?P<severity>[^:]*?)\s*)?$"
)


def add_alert_flags(p: argparse.ArgumentParser, *, clearable: bool = False) -> None:
    """``--alert`` (repeat); with ``clearable`` also ``--no-alerts``, for update."""
    help_text = (
        "alert while paper trading when a figure crosses a threshold: "
        "METRIC<OP>THRESHOLD[:SEVERITY], OP one of < <= > >=, SEVERITY info, warning "
        f"(the default) or critical, e.g. {EXAMPLE}; a trailing %% divides by 100 (repeat)"
    )
    if not clearable:
        p.add_argument("--alert", action="append", default=[], metavar="RULE", help=help_text)
        return
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--alert",
        action="append",
        default=[],
        metavar="RULE",
        help=help_text + "; replaces the stored rules",
    )
    g.add_argument("--no-alerts", action="store_true", help="remove every alert rule")


def parse_alert(text: str) -> pb.AlertRule:
    """``max_drawdown>0.2:critical`` -> AlertRule; a CliError that shows the form otherwise."""
    m = _RULE.match(text)
    if m is None:
        raise CliError(
            f"--alert {text!r}: expected METRIC<OP>THRESHOLD[:SEVERITY] with OP one of "
            f"< <= > >=, e.g. {EXAMPLE}"
        )
    rule = pb.AlertRule(metric=m["metric"], op=m["op"], threshold=_threshold(text, m["threshold"]))
    severity = m["severity"]
    if severity is not None:
        try:
            rule.severity = SEVERITIES[severity.lower()]
        except KeyError:
            raise CliError(
                f"--alert {text!r}: severity {severity!r} is not one of info, warning, critical"
            ) from None
    return rule


def _threshold(text: str, number: str) -> float:
    """The threshold as a number; "20%" is 0.2, as the server takes fractions."""
    scale = 1.0
    if number.endswith("%"):
        number, scale = number[:-1].strip(), 0.01
    try:
        value = float(number) * scale
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise CliError(
            f"--alert {text!r}: the threshold {number!r} is not a number "
            f"(fractions are written 0.2 or 20%), e.g. {EXAMPLE}"
        )
    return value


def parse_alerts(items: Sequence[str]) -> list[pb.AlertRule]:
    return [parse_alert(item) for item in items]


def alert_text(rule: pb.AlertRule) -> str:
    """A rule as a person reads it (and could type it again): ``max_drawdown > 0.2 (critical)``."""
    severity = SEVERITY_NAMES.get(rule.severity, "warning")
    return f"{rule.metric} {rule.op} {rule.threshold:g} ({severity})"


def alerts_text(rules: Iterable[pb.AlertRule]) -> str:
    return "; ".join(alert_text(r) for r in rules) or "-"
