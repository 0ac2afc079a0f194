"""What a running strategy tells the world: signals, fills and alerts, numbered per kind.

An event is a kind, a per-(strategy, kind) sequence number from 1, the bar time it belongs
to and a JSON-safe payload. The same value is published to streams, written to the
`live_events` table and read back for resumes, so a stream that resumes from storage and
one that was live all along see identical events. The api layer turns payloads into
protobuf messages; nothing here knows about them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from stratopt.live.broker import Fill
from stratopt.live.runner import SignalEvent

Kind = Literal["signal", "fill", "alert"]
KINDS: tuple[Kind, ...] = ("signal", "fill", "alert")


@dataclass(frozen=True, slots=True)
class LiveEvent:
    strategy_id: str
    kind: Kind
    sequence: int
    ts: int
    payload: dict[str, Any]


def signal_payload(event: SignalEvent, direction: str, reason: str) -> dict[str, Any]:
    """The position after a signal is its target as the direction allows it."""
    position = event.target
    if (direction == "long" and position < 0) or (direction == "short" and position > 0):
        position = 0
    return {
        "symbol": event.symbol,
        "action": event.action,
        "price": event.price,
        "target": event.target,
        "previous": event.previous,
        "position": position,
        "reason": reason,
        "bar_index": event.bar_index,
    }


def fill_payload(fill: Fill, symbol: str, realized_pnl: float) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "side": fill.side,
        "quantity": fill.quantity,
        "price": fill.price,
        "fee": fill.fee,
        "reason": fill.reason,
        "kind": fill.kind,
        "realized_pnl": realized_pnl,
        "bar_index": fill.bar_index,
    }


def alert_payload(
    kind: str,
    severity: str,
    title: str,
    message: str,
    *,
    rule: dict[str, Any] | None = None,
    value: float = 0.0,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "severity": severity,
        "title": title,
        "message": message,
        "rule": rule or {},
        "value": value,
    }
