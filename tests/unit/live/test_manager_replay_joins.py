"""LiveManager on a real SQLite file: strategies joining a replay feed at its critical points.

A replay feed is shared by the strategies running on it; a strategy started on it while it
runs joins it where it is. These tests pin the interleavings that matter by injecting the
second start at the exact moment in question (the repository call the replay makes there),
or by making the start slow where it reads its warm-up, so the outcome does not depend on
timing. Each fails without the code it pins (checked by removing it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from stratopt.live import manager as manager_module
from stratopt.live.manager import LiveManager
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.live_repo import LiveRepo
from tests.unit.live._replay import SYMBOL, spec, synthetic

BARS = 300


async def until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"not reached: {what}"
        await asyncio.sleep(0.01)


async def test_a_start_while_the_replay_ends_replays_the_feed_anew(db: Database) -> None:
    """StartStrategy lands while the replay, past its last bar, ends its runs.

    Joining the runtime then would attach the run to a replay that hands out no more bars
    and will not end it: it stayed "running" with no bar forever (and so did every later
    start on the feed). It must get a runtime of its own: the feed replayed anew.
    """
    bars = synthetic(BARS)
    repo = LiveRepo(db)
    manager = LiveManager(repo, lambda _: bars, commit_interval=0.05, runner="test")
    feed = await repo.add_feed(
        models.Feed(
            id="f", owner_id="u", kind="replay", symbols=[SYMBOL], timeframe="1h",
            dataset_id="d", start_ts=int(bars.ts[0]), bars_per_second=0,
        )
    )  # fmt: skip
    finish = repo.mark_feed_finished
    late: list[asyncio.Task[str]] = []

    async def start_while_finishing(feed_id: str) -> None:
        await finish(feed_id)
        if not late:  # once: the first replay's end
            late.append(asyncio.create_task(manager.start_run(spec("b", feed), feed)))
            # It takes a runtime at once and goes on to compile its signal (off the loop)
            # while the replay, back from here, ends the runs it has.
            await asyncio.sleep(0)

    repo.mark_feed_finished = start_while_finishing  # type: ignore[method-assign]
    await manager.start()
    try:
        await manager.start_run(spec("a", feed), feed)
        await until(lambda: bool(late), "the second start")
        await late[0]

        async def status(strategy_id: str) -> str:
            row = await repo.latest_run(strategy_id)
            assert row is not None
            return row.status

        for sid in ("a", "b"):
            deadline = asyncio.get_running_loop().time() + 10
            while await status(sid) == "running":
                assert asyncio.get_running_loop().time() < deadline, f"{sid} never ended"
                await asyncio.sleep(0.02)
        a, b = await repo.latest_run("a"), await repo.latest_run("b")
        assert a is not None and b is not None
        assert (a.status, a.bars_processed) == ("stopped", BARS)
        # The late one traded the whole feed from its start, on a replay of its own.
        assert (b.status, b.bars_processed) == ("stopped", BARS)
        assert manager.feeds == {} and manager.runs == {}
    finally:
        await manager.close()


async def test_a_strategy_joining_a_running_replay_trades_right_after_its_warm_up(
    db: Database,
) -> None:
    """The replay holds its next bar while a strategy joins, however long the start takes.

    The start reads the warm-up bars (here the dataset load is made slow, as on a busy
    disk): a replay going on meanwhile would hand the bars of that time to nobody, and
    the run would trade its first bar with a gap after its warm-up. So the joined run's
    events since it joined are exactly those of the run that saw every bar.
    """
    bars = synthetic(BARS)
    slow = {"on": False}

    def load(_: str) -> Any:
        if slow["on"]:
            time.sleep(0.2)  # in a worker thread: the event loop (and the replay) go on
        return bars

    repo = LiveRepo(db)
    manager = LiveManager(repo, load, commit_interval=0.05, runner="test")
    feed = await repo.add_feed(
        models.Feed(
            id="f", owner_id="u", kind="replay", symbols=[SYMBOL], timeframe="1h",
            dataset_id="d", start_ts=int(bars.ts[0]), bars_per_second=500,
        )
    )  # fmt: skip
    await manager.start()
    try:
        await manager.start_run(spec("a", feed), feed)
        await until(lambda: manager.runs["a"].run.bars_processed >= 60, "60 bars")
        slow["on"] = True
        await manager.start_run(replace(spec("b", feed), warmup_bars=20), feed)
        joined = manager.runs["b"].spec.start_index
        assert joined >= 60
        await until(lambda: not manager.runs, "the end of the replay", timeout=30)
    finally:
        await manager.close()
    b = await repo.latest_run("b")
    assert b is not None and b.bars_processed == BARS - joined
    a_events = await repo.events_after("a", "signal", 0, 10_000)
    b_events = await repo.events_after("b", "signal", 0, 10_000)

    def key(e: Any) -> tuple[int, dict[str, Any]]:
        # Bars are numbered per run (from its first traded bar): all else is the same.
        return e.ts, {k: v for k, v in e.payload.items() if k != "bar_index"}

    since = [key(e) for e in a_events if e.ts >= int(bars.ts[joined])]
    assert [key(e) for e in b_events] == since and len(since) > 5
    b_fills = await repo.events_after("b", "fill", 0, 10_000)
    # Its first fill is the warm-up's target, taken at the open of the bar it joined at.
    assert b_fills[0].ts == int(bars.ts[joined])


async def test_a_start_cancelled_while_recording_leaves_no_orphan_row(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client goes away (the call is cancelled) while the run's row is being written.

    Cancelled between writing the "running" row and attaching the run, the row stayed
    "running" with no run behind it until the next heartbeat's takeover resumed it (pushed
    out of this test's reach here). Recording and attaching are one step now: the run
    starts at once, and ends like any other.
    """
    monkeypatch.setattr(manager_module, "HEARTBEAT_S", 3600.0)
    bars = synthetic(BARS)
    repo = LiveRepo(db)
    manager = LiveManager(repo, lambda _: bars, commit_interval=0.05, runner="test")
    feed = await repo.add_feed(
        models.Feed(
            id="f", owner_id="u", kind="replay", symbols=[SYMBOL], timeframe="1h",
            dataset_id="d", start_ts=int(bars.ts[0]), bars_per_second=0,
        )
    )  # fmt: skip
    add_run = repo.add_run
    recorded = asyncio.Event()

    async def add_run_then_get_cancelled(row: models.LiveRun) -> None:
        await add_run(row)
        recorded.set()
        await asyncio.sleep(0.2)  # the caller is cancelled here, after the row is written

    repo.add_run = add_run_then_get_cancelled  # type: ignore[method-assign]
    await manager.start()
    try:
        start = asyncio.create_task(manager.start_run(spec("a", feed), feed))
        await recorded.wait()
        start.cancel()
        with pytest.raises(asyncio.CancelledError):
            await start
        await until(lambda: "a" in manager.runs or not manager.feeds, "the run attached")
        deadline = asyncio.get_running_loop().time() + 10
        while (row := await repo.latest_run("a")) is not None and row.status == "running":
            assert asyncio.get_running_loop().time() < deadline, "the row stayed running"
            await asyncio.sleep(0.02)
        assert row is not None and (row.status, row.bars_processed) == ("stopped", BARS)
    finally:
        await manager.close()
