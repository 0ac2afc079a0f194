"""Live values -> messages: signals, fills, alerts, performance, feeds, notifications."""

from __future__ import annotations

from typing import Any

from stratopt.api.backtest_convert import metrics_to_pb
from stratopt.api.convert import execution_to_pb, finite, ns_to_pb, pb_to_ns, ts_to_pb
from stratopt.api.strategy_convert import RUN_STATE_TO_PB, SEVERITY_TO_PB
from stratopt.errors import InvalidArgument
from stratopt.live.bars import LiveBar
from stratopt.live.events import LiveEvent
from stratopt.live.manager import PerformanceView
from stratopt.services.live import FeedDraft, FeedView
from stratopt.services.records import Notification, Webhook
from stratopt.v1 import market_data_pb2 as mpb
from stratopt.v1 import strategy_pb2 as pb
from stratopt.v1 import system_pb2 as spb

ACTION_TO_PB = {
    "buy": pb.SIGNAL_ACTION_BUY,
    "sell": pb.SIGNAL_ACTION_SELL,
    "close": pb.SIGNAL_ACTION_CLOSE,
}
FEED_KIND_TO_PB = {"push": mpb.FEED_KIND_PUSH, "replay": mpb.FEED_KIND_REPLAY}
FEED_KIND_FROM_PB = {v: k for k, v in FEED_KIND_TO_PB.items()}
NOTIFICATION_SEVERITY_TO_PB = {
    "info": spb.NOTIFICATION_SEVERITY_INFO,
    "warning": spb.NOTIFICATION_SEVERITY_WARNING,
    "error": spb.NOTIFICATION_SEVERITY_ERROR,
}


def signal_to_pb(e: LiveEvent) -> pb.Signal:
    p = e.payload
    return pb.Signal(
        strategy_id=e.strategy_id,
        time=ns_to_pb(e.ts),
        symbol=p.get("symbol", ""),
        action=ACTION_TO_PB.get(p.get("action", ""), pb.SIGNAL_ACTION_UNSPECIFIED),
        price=finite(p.get("price", 0.0)),
        position=int(p.get("position", 0)),
        reason=p.get("reason", ""),
        sequence=e.sequence,
        target=int(p.get("target", 0)),
    )


def fill_to_pb(e: LiveEvent) -> pb.Fill:
    p = e.payload
    return pb.Fill(
        strategy_id=e.strategy_id,
        time=ns_to_pb(e.ts),
        symbol=p.get("symbol", ""),
        side=ACTION_TO_PB.get(p.get("side", ""), pb.SIGNAL_ACTION_UNSPECIFIED),
        quantity=finite(p.get("quantity", 0.0)),
        price=finite(p.get("price", 0.0)),
        fee=finite(p.get("fee", 0.0)),
        reason="close" if p.get("reason") == "end" else p.get("reason", ""),
        realized_pnl=finite(p.get("realized_pnl", 0.0)),
        sequence=e.sequence,
    )


def alert_to_pb(e: LiveEvent) -> pb.Alert:
    p = e.payload
    rule = p.get("rule") or {}
    msg = pb.Alert(
        id=f"{e.strategy_id}-{e.sequence}",
        strategy_id=e.strategy_id,
        # An alert is stamped with the bar it came with; one raised before the first bar
        # (a run starting) has none, and a time of 1970 would say otherwise.
        time=ns_to_pb(e.ts) if e.ts else None,
        severity=SEVERITY_TO_PB.get(p.get("severity", ""), 0),  # type: ignore[arg-type]
        title=p.get("title", ""),
        message=p.get("message", ""),
        value=finite(p.get("value", 0.0)),
        sequence=e.sequence,
        kind=p.get("kind", ""),
    )
    if rule:
        msg.rule.metric = str(rule.get("metric", ""))
        msg.rule.op = str(rule.get("op", ""))
        msg.rule.threshold = finite(rule.get("threshold", 0.0))
        msg.rule.severity = SEVERITY_TO_PB.get(rule.get("severity", ""), 0)  # type: ignore[assignment,arg-type]
    return msg


def performance_to_pb(v: PerformanceView) -> pb.PerformanceSnapshot:
    # Before its first bar a run has no bar time: leave it unset rather than 1970.
    last_bar = ns_to_pb(v.last_bar_ts) if v.last_bar_ts > 0 else None
    return pb.PerformanceSnapshot(
        strategy_id=v.run.strategy_id,
        time=last_bar,
        equity=finite(v.equity),
        cash=finite(v.cash),
        position=v.side,
        unrealized_pnl=finite(v.unrealized_pnl),
        realized_pnl=finite(v.realized_pnl),
        drawdown=finite(v.drawdown),
        # The tracker's metrics are METRIC_NAMES; the Metrics message also has final_equity.
        metrics=metrics_to_pb({**v.metrics, "final_equity": v.equity}),
        bars_processed=v.bars_processed,
        sequence=v.bars_processed,
        run_state=RUN_STATE_TO_PB.get(v.run.status, 0),  # type: ignore[arg-type]
        position_quantity=finite(v.position),
        entry_price=finite(v.entry_price),
        last_bar_time=last_bar,
        feed_id=v.run.feed_id,
        symbol=v.run.symbol,
        execution=execution_to_pb(v.execution),
    )


def feed_to_pb(v: FeedView) -> mpb.Feed:
    r = v.row
    msg = mpb.Feed(
        id=r.id,
        display_name=r.display_name,
        kind=FEED_KIND_TO_PB.get(r.kind, 0),  # type: ignore[arg-type]
        symbols=list(r.symbols),
        timeframe=r.timeframe,
        dataset_id=r.dataset_id,
        bars_per_second=r.bars_per_second,
        owner_id=r.owner_id,
        create_time=ts_to_pb(r.created_at),
        bars_accepted=r.bars_accepted,
        bars_rejected=r.bars_rejected,
        running_strategy_count=v.running_strategies,
        finished=r.finished,
    )
    if r.start_ts:
        msg.start_time.CopyFrom(ns_to_pb(r.start_ts))
    if r.last_bar_ts:
        msg.last_bar_time.CopyFrom(ns_to_pb(r.last_bar_ts))
    return msg


def feed_draft_from_pb(f: mpb.Feed) -> FeedDraft:
    if f.kind and f.kind not in FEED_KIND_FROM_PB:
        raise InvalidArgument.field("feed.kind", f"unknown enum value {f.kind}")
    return FeedDraft(
        kind=FEED_KIND_FROM_PB.get(f.kind, ""),
        display_name=f.display_name,
        symbols=tuple(f.symbols),
        timeframe=f.timeframe.strip().lower(),
        dataset_id=f.dataset_id.strip(),
        start_ns=pb_to_ns(f.start_time) if f.HasField("start_time") else 0,
        bars_per_second=f.bars_per_second,
    )


def live_bars_from_pb(bars: Any) -> list[LiveBar]:
    """Feed bars as sent; a missing time becomes 0, which the feed rejects by name."""
    out = []
    for fb in bars:
        b = fb.bar
        ts = pb_to_ns(b.time) if b.HasField("time") else 0
        out.append(LiveBar(fb.symbol.strip().upper(), ts, b.open, b.high, b.low, b.close, b.volume))
    return out


def rejected_to_pb(index: int, bar: LiveBar, reason: str) -> mpb.RejectedBar:
    msg = mpb.RejectedBar(index=index, symbol=bar.symbol, reason=reason)
    if bar.ts > 0:
        msg.time.CopyFrom(ns_to_pb(bar.ts))
    return msg


def notification_to_pb(n: Notification) -> spb.Notification:
    return spb.Notification(
        id=n.id,
        time=ts_to_pb(n.created_at),
        severity=NOTIFICATION_SEVERITY_TO_PB.get(n.severity, 0),  # type: ignore[arg-type]
        kind=n.kind,
        title=n.title,
        message=n.message,
        resource=n.resource,
        sequence=n.sequence,
    )


def webhook_to_pb(w: Webhook, *, with_secret: bool = False) -> spb.Webhook:
    return spb.Webhook(
        id=w.id,
        url=w.url,
        secret=w.secret if with_secret else "",
        kinds=list(w.kinds),
        create_time=ts_to_pb(w.created_at),
        delivered_count=w.delivered_count,
        failed_count=w.failed_count,
        last_error=w.last_error,
    )
