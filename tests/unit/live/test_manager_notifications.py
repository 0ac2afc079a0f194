"""LiveManager's notifications reach the owner in the order their events happened.

A rule's alert is raised on a bar, and is sent without holding up the bar; the stop's
status is sent as the stop ends. When writing the alert takes longer (a busy database),
the stop's notification must still come after it: a user reading "stopped" and then an
alert of that run would think the run still trades. Fails when the alert is sent on a task
of its own and the status awaited directly (the order CI once saw).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from stratopt.live.manager import LiveManager
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.live_repo import LiveRepo
from tests.unit.live._replay import SYMBOL, live_bars, spec, synthetic


class Slow:
    """A notify whose alerts take 0.3 s to write (a busy database); records what it sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def __call__(
        self, user_id: str, kind: str, severity: str, title: str, message: str, resource: str
    ) -> None:
        if kind == "strategy.alert":
            await asyncio.sleep(0.3)
        self.sent.append(f"{kind}: {title}")


async def start_alerting(db: Database, notify: Slow) -> LiveManager:
    """A manager running strategy "a" on a push feed, after the bars that raise its alert."""
    bars = synthetic(50)
    repo = LiveRepo(db)
    manager = LiveManager(repo, lambda _: bars, notify, commit_interval=0.05, runner="test")
    feed = await repo.add_feed(
        models.Feed(id="f", owner_id="u", kind="push", symbols=[SYMBOL], timeframe="1h")
    )
    with_rule = replace(
        spec("a", feed), alert_rules=({"metric": "bars_processed", "op": ">=", "threshold": 3},)
    )
    await manager.start()
    await manager.start_run(with_rule, feed)
    await manager.push(feed, live_bars(bars)[:5], 0)
    return manager


async def test_a_slow_alert_notification_still_comes_before_the_stop(db: Database) -> None:
    notify = Slow()
    manager = await start_alerting(db, notify)
    try:
        assert await manager.stop_run("a", close_position=False)  # while the alert is written
    finally:
        await manager.close()
    sent = notify.sent
    assert [s.split(":")[0] for s in sent] == [
        "strategy.status",
        "strategy.alert",
        "strategy.status",
    ], sent
    assert "started" in sent[0] and "stopped" in sent[2]


async def test_a_shutdown_still_sends_the_alerts_of_the_last_bars(db: Database) -> None:
    """The server stops while an alert is being written: it is sent before close returns
    (the run resumes elsewhere, and would not raise it again)."""
    notify = Slow()
    manager = await start_alerting(db, notify)
    await manager.close()
    assert [s.split(":")[0] for s in notify.sent] == ["strategy.status", "strategy.alert"]
