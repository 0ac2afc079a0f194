"""The live runtime of one server: feeds, running strategies, their streams and persistence.

Shape:
- A `FeedRuntime` per feed with running strategies here: a replay task reading a dataset,
  or nothing at all for a push feed (PushBars hands bars in). Every accepted bar goes to
  each run on its symbol, in order, on the event loop thread; several strategies share
  one feed.
- A `RunHandle` per running strategy: the pure `StrategyRun` (signals from the backtest's
  numba code, fills from the simulator's kernel), performance, alert rules and the
  sequence counters of its three event kinds.
- A `Hub` of topics ("signal" | "fill" | "alert", strategy_id) that fans events out to
  subscribers without ever waiting for them.
- A writer task that commits, every `commit_interval` seconds, the events produced since the
  last commit together with the state of every run that produced them (one transaction,
  `LiveRepo.commit_progress`).

Latency and durability. Events are published the moment a bar is processed and written
a moment later (group commit). After a crash the runs resume from their last committed
state and re-process the bars after it; the strategy being deterministic, they produce
the same events with the same sequence numbers, so a client resuming with
`after_sequence` neither misses nor repeats anything, and the stored history has every
event exactly once; a subscriber that saw some of those events before the crash does not
get them again (the hub skips what is at or below its position). Events a resumed run
would not produce again (status changes, a stalled feed, errors) are written at once.
Streams resume from storage plus the events still waiting for the writer, so nothing
published is invisible to a resume. A graceful stop (`close`) stops the feeds, writes
everything and ends the streams with UNAVAILABLE; the runs stay "running" in storage and
resume at the next start, each from the bar after its last one (a replay shared by several
runs restarts at the earliest of them; the others skip what they already traded).

Across replicas (PostgreSQL), a strategy runs in the server that started it (or resumed
it); the others serve its streams by polling the events table (`POLL_INTERVAL_S`). A run
whose runner's heartbeat goes stale is claimed by another replica, which resumes it from
what it reads after the claim. Every write of a run (`commit_progress`, `end_run`) is
fenced by its runner, so a former runner that was only slow, not dead, cannot add to the
record after the takeover: its next commit is refused and it lets the run go at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from stratopt.data.bars import Bars
from stratopt.engine.options import ExecutionOptions
from stratopt.errors import FailedPrecondition, Unavailable
from stratopt.fanout import Delivery, Hub
from stratopt.live.alerts import (
    AlertEngine,
    AlertEvent,
    error_alert,
    stalled_alert,
    status_alert,
    stop_alerts,
)
from stratopt.live.bars import BarRejected, FeedValidator, LiveBar
from stratopt.live.events import KINDS, Kind, LiveEvent, alert_payload, fill_payload, signal_payload
from stratopt.live.performance import PerformanceTracker
from stratopt.live.runner import StepResult, StrategyRun
from stratopt.live.signals import EnsembleSignal, LiveSignal, StrategySignal
from stratopt.live.sources import ReplaySource
from stratopt.optimize.user_types import resolve as resolve_type
from stratopt.store import models
from stratopt.store.live_repo import EventRow, LiveRepo, RunProgress
from stratopt.store.outages import FailureLog
from stratopt.strategies.base import StrategyType
from stratopt.strategies.user_types import TypeSource

log = logging.getLogger("stratopt.live")

POLL_INTERVAL_S = 0.25
HEARTBEAT_S = 2.0
RUNNER_STALE_S = 15.0
NOTICE_DRAIN_S = 2.0
"""How long `close` waits for the notifications still being sent."""
COMMIT_INTERVAL_S = 0.2
END_RETRY_S = 0.5  # between attempts to record a run's end while the database fails
STALL_SPACINGS = 3
MAX_REJECTIONS_REPORTED = 100
# How far past the newest published sequence a stream may resume. After a crash, a run
# resumes from its last commit and publishes again, with the same numbers, the events its
# previous life had published (and clients had seen) but not stored: a client may be that
# far ahead for a moment. Commits every 0.2 s (and at 2,000 pending events) keep it small.
MAX_UNSTORED_AHEAD = 10_000
# Why streams end when the server stops (they end with UNAVAILABLE: resume elsewhere or later).
SHUTTING_DOWN = "server shutting down"

Notify = Callable[[str, str, str, str, str, str], Any]
"""(user_id, kind, severity, title, message, resource) -> awaitable or None."""


@dataclass(frozen=True)
class RunSpec:
    """Everything a run needs, resolved once at StartStrategy and stored with the run."""

    strategy_id: str
    owner_id: str
    strategy_name: str
    feed_id: str
    symbol: str
    strategy_type: str
    parameters: Mapping[str, Any]
    execution: ExecutionOptions
    members: tuple[tuple[str, Mapping[str, Any], float], ...] = ()
    method: str = "weighted_vote"
    alert_rules: tuple[Mapping[str, Any], ...] = ()
    warmup_bars: int = 0
    # A replay's first bar in its dataset (a feed already replaying here goes on from where
    # it is instead); the index the run actually started at once it has started.
    start_index: int = 0
    # A push feed's newest bar of `symbol` when the run started: it trades the bars after.
    after_ts: int = 0
    # User strategy types of the run and its members, by name: TypeSource.to_dict() of each
    # (strategies/user_types.py), so any replica compiles them without the database.
    definitions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "strategy_id": self.strategy_id,
            "owner_id": self.owner_id,
            "strategy_name": self.strategy_name,
            "feed_id": self.feed_id,
            "symbol": self.symbol,
            "strategy_type": self.strategy_type,
            "parameters": dict(self.parameters),
            "execution": self.execution.resolved().to_dict(),
            "members": [[t, dict(p), w] for t, p, w in self.members],
            "method": self.method,
            "alert_rules": [dict(r) for r in self.alert_rules],
            "warmup_bars": self.warmup_bars,
            "start_index": self.start_index,
            "after_ts": self.after_ts,
            "definitions": {k: dict(v) for k, v in self.definitions.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSpec:
        return cls(
            strategy_id=data["strategy_id"],
            owner_id=data["owner_id"],
            strategy_name=data.get("strategy_name", ""),
            feed_id=data["feed_id"],
            symbol=data["symbol"],
            strategy_type=data["strategy_type"],
            parameters=dict(data.get("parameters", {})),
            execution=ExecutionOptions.from_dict(data.get("execution", {})),
            members=tuple((t, dict(p), float(w)) for t, p, w in data.get("members", [])),
            method=data.get("method", "weighted_vote"),
            alert_rules=tuple(dict(r) for r in data.get("alert_rules", [])),
            warmup_bars=int(data.get("warmup_bars", 0)),
            start_index=int(data.get("start_index", 0)),
            after_ts=int(data.get("after_ts", 0)),
            definitions={k: dict(v) for k, v in dict(data.get("definitions") or {}).items()},
        )

    def strategy_type_of(self, name: str) -> StrategyType:
        """A built-in by name, or a user type from the definition the spec carries."""
        found = self.definitions.get(name)
        return resolve_type(name, TypeSource.from_dict(found) if found else None)

    def signal(self) -> LiveSignal:
        if self.members:
            return EnsembleSignal(
                [(self.strategy_type_of(t), p, w) for t, p, w in self.members], self.method
            )
        return StrategySignal(self.strategy_type_of(self.strategy_type), self.parameters)


@dataclass(frozen=True)
class PushOutcome:
    accepted: int
    rejected: int
    rejections: tuple[tuple[int, LiveBar, str], ...]


@dataclass(frozen=True)
class PerformanceView:
    """A run's account and figures, from memory when it runs here, else from storage."""

    run: models.LiveRun
    equity: float
    cash: float
    side: int
    position: float
    entry_price: float
    realized_pnl: float
    unrealized_pnl: float
    drawdown: float
    bars_processed: int
    last_bar_ts: int
    metrics: Mapping[str, float]
    execution: ExecutionOptions


@dataclass
class RunHandle:
    run_id: str
    spec: RunSpec
    run: StrategyRun
    performance: PerformanceTracker
    alerts: AlertEngine
    sequences: dict[str, int]
    last: StepResult | None = None
    # Bars up to this time are not this run's: traded before a restart, or older than the
    # run (a push feed's bars before it started).
    skip_until_ts: int = 0
    dirty: bool = False
    # The stored run it resumed from: its account figures hold until the next bar.
    resumed: models.LiveRun | None = None
    # Set when the run is being stopped or failed: its feed no longer hands it bars.
    ended: bool = False
    # Set when a commit found that another server had taken the run over (see `_let_go`).
    lost: bool = False

    def progress(self) -> RunProgress:
        state = {
            "run": self.run.snapshot(),
            "performance": self.performance.snapshot(),
            "alerts": self.alerts.snapshot(),
            "sequences": dict(self.sequences),
            "skip_until_ts": self.skip_until_ts,
        }
        last = self.last
        return RunProgress(
            run_id=self.run_id,
            state=state,
            bars_processed=self.run.bars_processed,
            last_bar_ts=self.last_ts,
            equity=last.equity if last else self.equity_before_bars,
        )

    @property
    def last_ts(self) -> int:
        """Time of the newest bar it traded (before a restart too), else where it starts."""
        if self.last is not None:
            return self.last.ts
        if self.resumed is not None:
            return self.resumed.last_bar_ts
        return self.skip_until_ts

    @property
    def equity_before_bars(self) -> float:
        """Equity until its next bar: as stored when it resumed, else the initial cash."""
        if self.resumed is not None:
            return self.resumed.equity
        return self.spec.execution.resolved().initial_cash


@dataclass
class FeedRuntime:
    feed: models.Feed
    validator: FeedValidator
    runs: dict[str, RunHandle] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    last_bar_monotonic: float = field(default_factory=time.monotonic)
    stalled: bool = False
    # A replay's next bar in its dataset.
    position: int = 0
    # A replay waits before its next bar while a strategy joins it (see `start_run`).
    holds: int = 0
    unheld: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.unheld.set()

    def hold(self) -> None:
        self.holds += 1
        self.unheld.clear()

    def release(self) -> None:
        self.holds -= 1
        if self.holds <= 0:
            self.holds = 0
            self.unheld.set()


class LiveManager:
    """Runs strategies on feeds in this process; see the module docstring."""

    def __init__(
        self,
        repo: LiveRepo,
        load_bars: Callable[[str], Bars],
        notify: Notify | None = None,
        *,
        commit_interval: float = COMMIT_INTERVAL_S,
        queue_size: int = 1024,
        runner: str = "",
    ) -> None:
        self.repo = repo
        # Who runs the runs started here (stable across restarts of this server, distinct
        # between replicas), written on every run and refreshed by heartbeats.
        self.runner = runner or f"{socket.gethostname()}:{os.getpid()}"
        self.load_bars = load_bars
        self.notify = notify
        self.commit_interval = commit_interval
        self.hub: Hub[LiveEvent] = Hub(maxsize=queue_size)
        self.feeds: dict[str, FeedRuntime] = {}
        self.runs: dict[str, RunHandle] = {}  # by strategy_id
        self._pending: list[LiveEvent] = []
        self._pending_runs: dict[str, str] = {}  # strategy_id -> run_id of pending events
        self._writer: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        # The newest notification being sent: each waits for the one before it, so that a
        # user reads started, the alerts, then stopped, in the order they happened.
        self._last_notice: asyncio.Task[None] | None = None
        self._starting: set[str] = set()  # strategy ids between StartStrategy and attach
        self._push_locks: dict[str, asyncio.Lock] = {}  # one upload at a time per feed
        # While `start` resumes runs: replays start once all their runs are back, at the
        # earliest bar one of them needs, and pushed bars wait (they would race the
        # stored bars being handed to the resumed runs).
        self._resuming = False
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._heartbeats: asyncio.Task[None] | None = None
        # Every replay task, including one still ending its runs after its runtime was let
        # go (see `_replay`): `close` stops them all.
        self._replays: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Resumes every run recorded as running, then starts the writer and the watchdog."""
        self._writer = asyncio.create_task(self._write_loop(), name="live-writer")
        self._watchdog = asyncio.create_task(self._watch_feeds(), name="live-watchdog")
        await self._resume_claimed()
        self._heartbeats = asyncio.create_task(self._heartbeat_loop(), name="live-heartbeat")

    async def _resume_claimed(self) -> None:
        """Resumes the runs this server may take: its own, and those of silent runners."""
        stale_before = models.utcnow() - timedelta(seconds=RUNNER_STALE_S)
        self._resuming = True
        self._resumed.clear()
        try:
            claimed = await asyncio.shield(self.repo.claim_runs(self.runner, stale_before))
            for row in claimed:
                # Its own runs that are here, or being started here (recorded, not attached
                # yet): resumed, they would run twice, and one life outlive the other.
                if row.strategy_id in self.runs or row.strategy_id in self._starting:
                    continue
                try:
                    await self._resume(row)
                except Exception as e:  # one broken run must not keep the others down
                    log.exception("could not resume run %s", row.id)
                    await self._fail(row.id, row.strategy_id, row.owner_id, f"resume failed: {e}")
        finally:
            self._resuming = False
            self._resumed.set()
            for rt in list(self.feeds.values()):
                if rt.feed.kind == "replay" and rt.task is None and rt.runs:
                    self._start_replay(rt, rt.position)

    @property
    def closing(self) -> bool:
        """The server is shutting down: runs stop here (to resume at the next start)."""
        return self._closing

    async def close(self) -> None:
        """Stops feeds and flushes; runs stay `running` in storage, to resume next start.

        Idempotent. Their streams end (see `SHUTTING_DOWN`).
        """
        if self._closing:
            return
        self._closing = True
        replays = list(self._replays)
        for replay in replays:
            replay.cancel()
        for replay in replays:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await replay
        for task in (self._heartbeats, self._watchdog, self._writer):
            if task is not None:
                task.cancel()  # a commit under way completes (see _flush)
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._flush()
        # Any server may resume them now, without waiting for the heartbeat to go stale.
        with contextlib.suppress(Exception):
            await self.repo.release(self.runner, [h.run_id for h in self.runs.values()])
        self.hub.close_all(SHUTTING_DOWN)
        # The alerts of the last bars are told, not lost with the process (a resumed run
        # does not raise them again); a database that hangs does not hold the shutdown.
        if self._last_notice is not None:
            await asyncio.wait([self._last_notice], timeout=NOTICE_DRAIN_S)

    # -- runs ----------------------------------------------------------------------------

    async def start_run(self, spec: RunSpec, feed: models.Feed) -> str:
        """Starts a run on `feed`: from `spec.start_index`, or where a running replay is.

        One start per strategy at a time: a second (concurrent) one is refused here, and
        `LiveRepo.add_run` refuses a strategy that runs in another process.
        """
        if self._closing:
            raise Unavailable("the server is shutting down; start the strategy again shortly")
        strategy_id = spec.strategy_id
        if strategy_id in self.runs or strategy_id in self._starting:
            raise FailedPrecondition("this strategy is already running; stop it first")
        self._starting.add(strategy_id)
        try:
            return await self._start_run(spec, feed)
        finally:
            self._starting.discard(strategy_id)

    async def _start_run(self, spec: RunSpec, feed: models.Feed) -> str:
        if feed.kind == "push":
            # Uploads wait while it starts, so its warm-up (the last bars stored) ends right
            # before the first bar it trades, with no bar pushed in between.
            async with self._push_lock(feed.id):
                return await self._start_on(spec, feed, await self._feed_runtime(feed), False)
        rt = await self._feed_runtime(feed)
        joins = rt.task is not None or (self._resuming and bool(rt.runs))
        if joins:
            # The replay waits at its next bar until the run is attached, so the warm-up
            # ends right before the first bar the run trades (no bar in between).
            rt.hold()
        try:
            return await self._start_on(spec, feed, rt, joins)
        finally:
            if joins:
                rt.release()

    async def _start_on(
        self, spec: RunSpec, feed: models.Feed, rt: FeedRuntime, joins: bool
    ) -> str:
        start_index = rt.position if joins else spec.start_index
        # What the run starts from is stored with it, so that a restart before its first
        # bar starts it over at the same place.
        spec = replace(
            spec, start_index=start_index, after_ts=rt.validator.last_ts(spec.symbol) or 0
        )
        # Off the loop: a user type this process has not compiled yet takes seconds.
        signal = await asyncio.to_thread(spec.signal)
        run = StrategyRun(signal, spec.execution.resolved(), spec.symbol)
        warm = await self._warmup_bars(feed, spec, start_index)
        run.warm_up(warm)
        last = await self.repo.last_sequences(spec.strategy_id)
        row = models.LiveRun(
            strategy_id=spec.strategy_id,
            owner_id=spec.owner_id,
            feed_id=feed.id,
            symbol=spec.symbol,
            status="running",
            spec=spec.to_json(),
            state={},
            equity=spec.execution.resolved().initial_cash,
            runner=self.runner,
            heartbeat_at=models.utcnow(),
        )
        handle = RunHandle(
            run_id=row.id or models.new_id(),
            spec=spec,
            run=run,
            performance=self._tracker(spec),
            alerts=_alert_engine(spec),
            sequences={k: last.get(k, 0) for k in KINDS},
        )
        row.id = handle.run_id
        # Recorded and attached as one step that a cancelled call (a client gone) cannot
        # split: a "running" row always has a run behind it.
        await asyncio.shield(self._record_and_attach(row, handle, feed, rt, start_index))
        self._alert(
            handle, status_alert("started", f"{spec.strategy_name} started on {spec.symbol}")
        )
        # Stored at once: a run resumed after a crash does not publish it again, so its
        # number must not be handed out anew to another event.
        await self._flush()
        await self._notify_status(handle, "started")
        return handle.run_id

    async def stop_run(self, strategy_id: str, *, close_position: bool) -> bool:
        """Stops the run of `strategy_id` here; False when it does not run in this process."""
        handle = self.runs.get(strategy_id)
        if handle is None:
            return False
        if not self._unhook(handle):
            return True  # already being stopped (or failed) by someone else
        if close_position and handle.run.bars_processed > 0 and handle.run.broker.side != 0:
            result = handle.run.close_position()
            self._record(handle, result, signal=False)
        self._alert(handle, status_alert("stopped", f"{handle.spec.strategy_name} stopped"))
        # Once begun, the stop completes even if the caller hangs up: cut short, the run
        # would get no more bars yet stay recorded as running, and a second StopStrategy
        # would find it already being stopped.
        # False: another server had taken it over meanwhile (it runs on there).
        return await asyncio.shield(self._stopped(handle))

    async def _stopped(self, handle: RunHandle) -> bool:
        if not await self._detach(handle, "stopped", "stopped"):
            return False
        await self._notify_status(handle, "stopped")
        return True

    def is_running_here(self, strategy_id: str) -> bool:
        return strategy_id in self.runs

    def last_sequence_here(self, strategy_id: str, kind: Kind) -> int | None:
        """The newest sequence of a kind a run here has published (None: not running here)."""
        handle = self.runs.get(strategy_id)
        return handle.sequences[kind] if handle is not None else None

    def performance_here(self, strategy_id: str) -> PerformanceView | None:
        handle = self.runs.get(strategy_id)
        if handle is None:
            return None
        return self._view(handle, None)

    async def performance(self, strategy_id: str) -> PerformanceView | None:
        """The latest run's figures: live here, or as last committed by whoever runs it."""
        here = self.performance_here(strategy_id)
        if here is not None:
            return here
        row = await self.repo.latest_run(strategy_id)
        if row is None:
            return None
        return _stored_view(row)

    # -- feeds ---------------------------------------------------------------------------

    async def push(
        self, feed: models.Feed, bars: Sequence[LiveBar], first_index: int
    ) -> PushOutcome:
        """Validates, persists, then trades a batch of pushed bars (each bar on its own)."""
        if self._closing:
            raise Unavailable("the server is shutting down; push these bars again shortly")
        await self._resumed.wait()
        # A batch, once begun, is stored and traded whole even if the uploader hangs up:
        # stored but not traded, its bars would be refused as repeats when sent again.
        return await asyncio.shield(self._push_batch(feed, bars, first_index))

    async def _push_batch(
        self, feed: models.Feed, bars: Sequence[LiveBar], first_index: int
    ) -> PushOutcome:
        # One batch at a time per feed: two uploads validated together but committed in
        # the other order would hand the runs a symbol's bars out of order.
        async with self._push_lock(feed.id):
            rt = await self._feed_runtime(feed)
            before = rt.validator.snapshot()
            accepted: list[LiveBar] = []
            rejections: list[tuple[int, LiveBar, str]] = []
            for i, bar in enumerate(bars):
                try:
                    accepted.append(rt.validator.accept(bar))
                except BarRejected as e:
                    rejections.append((first_index + i, bar, e.reason))
            try:
                await self.repo.add_feed_bars(
                    feed.id,
                    [(b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume) for b in accepted],
                    len(rejections),
                )
            except BaseException:
                rt.validator.restore(before)  # not stored: the same bars may come again
                raise
            for bar in accepted:
                self._dispatch(rt, bar)
            if not rt.runs and self.feeds.get(feed.id) is rt:
                del self.feeds[feed.id]
        return PushOutcome(len(accepted), len(rejections), tuple(rejections))

    def _push_lock(self, feed_id: str) -> asyncio.Lock:
        return self._push_locks.setdefault(feed_id, asyncio.Lock())

    def replay_position(self, feed_id: str) -> int | None:
        """The next bar of a replay running here (where a run started on it begins)."""
        rt = self.feeds.get(feed_id)
        return rt.position if rt is not None and rt.task is not None else None

    def forget_feed(self, feed_id: str) -> None:
        """A deleted feed (nothing runs on it): drop what this process keeps of it."""
        rt = self.feeds.get(feed_id)
        if rt is not None and not rt.runs:
            del self.feeds[feed_id]
        lock = self._push_locks.get(feed_id)
        if lock is not None and not lock.locked():
            del self._push_locks[feed_id]

    def feed_run_count(self, feed_id: str) -> int:
        rt = self.feeds.get(feed_id)
        return len(rt.runs) if rt else 0

    # -- streams -------------------------------------------------------------------------

    async def subscribe(
        self, strategy_id: str, kind: Kind, after: int
    ) -> AsyncIterator[Delivery[LiveEvent]]:
        """Events of one kind: stored ones after `after`, then live ones while it runs.

        Served from this process's hub when the strategy runs here, else by polling storage
        while it runs elsewhere; ends when the run stops.
        """
        key = (kind, strategy_id)
        if strategy_id in self.runs and self.hub.get(key) is not None:
            sub = self.hub.subscribe(
                key, after_sequence=after, history=self._history(strategy_id, kind)
            )
            async with sub:
                async for delivery in sub:
                    yield delivery
            if sub.close_reason == SHUTTING_DOWN:
                raise _shutting_down()
            return
        async for delivery in self._poll(strategy_id, kind, after):
            yield delivery

    async def history(
        self, strategy_id: str, kind: Kind, after: int, limit: int
    ) -> list[LiveEvent]:
        """Stored events after `after`, then those still waiting for the writer.

        The waiting ones are taken before reading storage: an event the writer commits
        during the read is then in one of the two, and duplicates are dropped by sequence.
        """
        pending = [
            e for e in self._pending
            if e.strategy_id == strategy_id and e.kind == kind and e.sequence > after
        ]  # fmt: skip
        rows = await self.repo.events_after(strategy_id, kind, after, limit)
        out = [LiveEvent(r.strategy_id, kind, r.sequence, r.ts, r.payload) for r in rows]
        if len(out) < limit:  # storage is exhausted: what follows is still waiting
            top = out[-1].sequence if out else after
            out.extend(e for e in pending if e.sequence > top)
        return out[:limit]

    @property
    def subscriber_count(self) -> int:
        return self.hub.subscriber_count

    # -- internals: feeds and bars -------------------------------------------------------

    async def _open_feed(self, feed: models.Feed) -> FeedRuntime:
        validator = FeedValidator(feed.symbols)
        if feed.kind == "push":
            last: dict[str, int] = {}
            for symbol in feed.symbols:
                tail = await self.repo.feed_bars(feed.id, symbol, last=1)
                if tail:
                    last[symbol] = tail[-1][0]
            validator.restore(last)
        existing = self.feeds.get(feed.id)  # opened by someone else meanwhile
        if existing is not None:
            return existing
        rt = FeedRuntime(feed=feed, validator=validator)
        self.feeds[feed.id] = rt
        return rt

    async def _feed_runtime(self, feed: models.Feed) -> FeedRuntime:
        """The feed's runtime here; a push feed's opens knowing its last stored bars."""
        return self.feeds.get(feed.id) or await self._open_feed(feed)

    async def _record_and_attach(
        self,
        row: models.LiveRun,
        handle: RunHandle,
        feed: models.Feed,
        rt: FeedRuntime,
        start_index: int,
    ) -> None:
        spec = handle.spec
        await self.repo.add_run(row)
        try:
            if feed.kind == "push":
                # Bars pushed while it was being recorded are not its own either.
                handle.skip_until_ts = rt.validator.last_ts(spec.symbol) or 0
            self._attach(handle, rt, start_index)
        except BaseException as e:  # not a run after all: no row may stay "running"
            with contextlib.suppress(Exception):
                await asyncio.shield(
                    self.repo.end_run(
                        handle.run_id, spec.strategy_id, "failed", _user_error(str(e)),
                        runner=self.runner,
                    )
                )  # fmt: skip
            raise

    def _attach(self, handle: RunHandle, rt: FeedRuntime, start_index: int) -> None:
        """Hands the feed's bars to the run from now on (a replay from `start_index`)."""
        strategy_id = handle.spec.strategy_id
        self.runs[strategy_id] = handle
        for kind in KINDS:
            self.hub.open((kind, strategy_id), last_sequence=handle.sequences[kind])
        # The runtime may have been let go (no run left) while the caller awaited.
        rt = self.feeds.setdefault(rt.feed.id, rt)
        if rt.feed.kind == "replay" and rt.task is None:
            if self._resuming:  # started by `start` at the earliest bar a run needs
                rt.position = min(rt.position, start_index) if rt.runs else start_index
            else:
                self._start_replay(rt, start_index)
        rt.runs[handle.run_id] = handle
        handle.dirty = True
        self._pending_runs[strategy_id] = handle.run_id

    def _start_replay(self, rt: FeedRuntime, start_index: int) -> None:
        rt.position = start_index
        rt.task = asyncio.create_task(self._replay(rt, start_index), name=f"replay-{rt.feed.id}")
        self._replays.add(rt.task)
        rt.task.add_done_callback(self._replays.discard)

    def _unhook(self, handle: RunHandle) -> bool:
        """Stops handing bars to a run, at once (no await), so that no bar reaches it while
        it is being stopped; False when it was already unhooked (someone else ends it)."""
        if handle.ended:
            return False
        handle.ended = True
        rt = self.feeds.get(handle.spec.feed_id)
        if rt is not None:
            rt.runs.pop(handle.run_id, None)
            if not rt.runs:
                self.feeds.pop(handle.spec.feed_id, None)
                if rt.task is not None and rt.task is not asyncio.current_task():
                    rt.task.cancel()
                    # A run joining it meanwhile (start_run holds `rt`) restarts the replay.
                    rt.task = None
        return True

    async def _detach(self, handle: RunHandle, reason: str, status: str, error: str = "") -> bool:
        """Writes the run's last events and state, records it ended (`status`), then lets it
        go here; False when another server had taken it over (nothing recorded then).

        It stays one of this server's runs until its end is recorded: in between, the
        heartbeat (`_resume_claimed`) would find it running, its own and not here, and
        resume it for a second life. A failed write (the database away or locked for a
        while) is tried again until it succeeds: given up, the run would stay here unhooked
        and recorded as running, reading as running for ever and ignoring StopStrategy. Only
        a shutdown interrupts it; the run then resumes at the next start, as any run does."""
        strategy_id = handle.spec.strategy_id
        self._unhook(handle)
        failing = FailureLog(log, "could not record the end of a live run; retrying")
        while True:
            try:
                await self._flush()  # while it is still a run here: its last state is written
                ended = not handle.lost and await self.repo.end_run(
                    handle.run_id, strategy_id, status, error, runner=self.runner
                )
                break
            except Exception:
                if self._closing:
                    raise
                failing.failed()
                await asyncio.sleep(END_RETRY_S)
        failing.recovered()
        if self.runs.get(strategy_id) is handle:  # not let go (`_let_go`) meanwhile
            del self.runs[strategy_id]
            for kind in KINDS:
                self.hub.close((kind, strategy_id), reason)
        return ended

    async def _replay(self, rt: FeedRuntime, start_index: int) -> None:
        feed = rt.feed
        try:
            bars = await asyncio.to_thread(self.load_bars, feed.dataset_id)
            symbol = feed.symbols[0]
            source = ReplaySource(bars, symbol, start_index, feed.bars_per_second)
            rt.position = start_index
            async for bar in source.bars():
                if rt.holds:
                    await rt.unheld.wait()
                    if not rt.runs:
                        return
                rt.position += 1
                rt.validator.accept(bar)
                self._dispatch(rt, bar)
                if not rt.runs:
                    return
            # Past the last bar, before any await: the runtime takes no new run from here.
            # One joining it while the runs below are being ended would never get a bar
            # nor be ended (and every later start on the feed would join it too). A start
            # from now on gets a runtime of its own: the feed replayed anew.
            rt.task = None
            if self.feeds.get(feed.id) is rt:
                del self.feeds[feed.id]
            await self.repo.mark_feed_finished(feed.id)
            for handle in list(rt.runs.values()):
                if not self._unhook(handle):
                    continue  # stopped meanwhile
                self._alert(
                    handle, status_alert("finished", "the replay reached the end of its dataset")
                )
                if await self._detach(handle, "replay finished", "stopped"):
                    await self._notify_status(handle, "stopped: replay finished")
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("replay of feed %s failed", feed.id)
            for handle in list(rt.runs.values()):
                await self._fail(
                    handle.run_id, handle.spec.strategy_id, handle.spec.owner_id, str(e)
                )

    def _dispatch(self, rt: FeedRuntime, bar: LiveBar) -> None:
        rt.last_bar_monotonic = time.monotonic()
        rt.stalled = False
        for handle in list(rt.runs.values()):
            if handle.ended or handle.spec.symbol != bar.symbol or bar.ts <= handle.skip_until_ts:
                continue
            try:
                result = handle.run.step(bar)
            except BarRejected:
                continue  # not after this run's last bar: already traded before a restart
            except Exception as e:
                log.exception("strategy %s failed on a bar", handle.spec.strategy_id)
                if self._unhook(handle):  # no further bar, so it fails once
                    self._spawn(
                        self._fail(
                            handle.run_id, handle.spec.strategy_id, handle.spec.owner_id, str(e),
                            handle=handle,
                        )
                    )  # fmt: skip
                continue
            self._record(handle, result, signal=True, close=bar.close)

    def _record(
        self, handle: RunHandle, result: StepResult, *, signal: bool, close: float | None = None
    ) -> None:
        """Turns one bar's result into events: published now, written by the next commit."""
        spec = handle.spec
        handle.last = result
        handle.performance.update(result, close=close)
        if signal and result.signal is not None:
            change = result.signal
            reason = f"{spec.strategy_type} target {change.previous:+d} -> {change.target:+d}"
            self._emit(
                handle, "signal", result.ts,
                signal_payload(result.signal, spec.execution.resolved().direction, reason),
            )  # fmt: skip
        exits = {t.exit_idx: t for t in result.trades}
        for fill in result.fills:
            pnl = (
                exits[fill.bar_index].pnl
                if fill.kind == "exit" and fill.bar_index in exits
                else 0.0
            )
            self._emit(handle, "fill", result.ts, fill_payload(fill, spec.symbol, pnl))
        for alert in stop_alerts(result, spec.symbol, strategy_name=spec.strategy_name):
            self._alert(handle, alert)
        if handle.alerts.active:  # the figures cost more than the rest of the bar: only if read
            for alert in handle.alerts.evaluate(handle.performance.figures(), ts=result.ts):
                self._alert(handle, alert)
        handle.dirty = True

    def _alert(self, handle: RunHandle, alert: AlertEvent) -> None:
        ts = handle.last_ts
        payload = alert_payload(
            alert.kind, alert.severity, alert.title, alert.message,
            rule=dict(alert.rule) if alert.rule else None, value=alert.value,
        )  # fmt: skip
        self._emit(handle, "alert", ts, payload)
        if self.notify is not None and alert.kind != "status":
            spec = handle.spec
            self._send(
                spec.owner_id, "strategy.alert", _severity(alert.severity),
                f"{spec.strategy_name}: {alert.title}", alert.message,
                f"strategies/{spec.strategy_id}",
            )  # fmt: skip

    def _emit(self, handle: RunHandle, kind: Kind, ts: int, payload: dict[str, Any]) -> None:
        handle.sequences[kind] += 1
        event = LiveEvent(handle.spec.strategy_id, kind, handle.sequences[kind], ts, payload)
        self._pending.append(event)
        self._pending_runs[handle.spec.strategy_id] = handle.run_id
        self.hub.publish((kind, handle.spec.strategy_id), event)
        if len(self._pending) >= 2000:
            self._wake.set()

    # -- internals: persistence ----------------------------------------------------------

    async def _write_loop(self) -> None:
        failing = FailureLog(log, "could not record live progress; retrying")
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.commit_interval)
            self._wake.clear()
            try:
                await self._flush()
            except Exception:
                failing.failed()
                await asyncio.sleep(self.commit_interval)
                continue
            failing.recovered()

    async def _flush(self) -> None:
        """Commits pending events with the states that include them (taken in one go).

        One flush at a time: two would both take the same pending events. A commit, once
        started, completes even if the caller is cancelled (a client hanging up on
        StopStrategy, the writer stopped at shutdown): cancelled half-way, it would leave
        events stored (or not) without the state that includes them.
        """
        await asyncio.shield(self._flush_locked())

    async def _flush_locked(self) -> None:
        async with self._flushing:
            await self._flush_once()

    async def _flush_once(self) -> None:
        handles = [h for h in self._all_handles() if h.dirty]
        if not self._pending and not handles:
            return
        events = list(self._pending)
        progress = [h.progress() for h in handles]
        for h in handles:
            h.dirty = False
        run_of = self._pending_runs
        rows = [
            EventRow(
                e.strategy_id, run_of.get(e.strategy_id, ""), e.kind, e.sequence, e.ts, e.payload
            )
            for e in events
        ]
        try:
            lost = await self.repo.commit_progress(self.runner, progress, rows)
        except BaseException:
            for h in handles:
                h.dirty = True
            raise
        done = len(events)
        del self._pending[:done]
        for handle in [h for h in self.runs.values() if h.run_id in lost]:
            # Silent too long (a stalled loop, a slow database): another server resumed
            # it from its last commit, and none of its events from then on were written.
            log.warning("run %s was taken over by another server", handle.run_id)
            self._let_go(handle)

    def _all_handles(self) -> list[RunHandle]:
        return list(self.runs.values())

    # -- internals: resume ---------------------------------------------------------------

    async def _resume(self, claimed: models.LiveRun) -> None:
        # The state and the numbering as committed, read after the claim: both include a
        # last commit of the former runner the claim waited for, and no later one exists
        # (see LiveRepo.resume_point), so the bars it trades again are exactly those whose
        # events are not stored.
        point = await self.repo.resume_point(claimed.id, self.runner)
        if point is None:
            log.info("run %s is no longer this server's to resume", claimed.id)
            return
        row, last = point
        spec = RunSpec.from_json(row.spec)
        feed = await self.repo.get_feed(row.feed_id)
        if feed is None:
            raise RuntimeError("its feed was deleted")
        signal = await asyncio.to_thread(spec.signal)  # may compile a user type
        state = row.state or {}
        snap = state.get("run") or {}
        _check_numbering(row, state, last)
        if snap.get("last_ts") is None:
            # No bar seen yet (no warm-up, no bar traded), or killed before the first
            # commit: start over from where it started.
            skip_ts = int(state.get("skip_until_ts", spec.after_ts))
            run = StrategyRun(signal, spec.execution.resolved(), spec.symbol)
            start_index = spec.start_index
            run.warm_up(await self._warmup_bars(feed, spec, start_index, until_ts=skip_ts))
            performance = self._tracker(spec)
            alerts = _alert_engine(spec)
            resume_at = start_index
            resumed = None  # no figure from before
        else:
            # Exactly the bars its indicators had seen: the newest `window`, or all of
            # them when it had seen fewer (older bars of the feed were never its own).
            seen = min(signal.window, int(snap["history_bars"]))
            bars = await self._bars_until(feed, spec, int(snap["last_ts"]), seen)
            run = StrategyRun.restore(snap, signal, bars)
            resumed = row
            performance = PerformanceTracker.restore(state["performance"])
            alerts = AlertEngine.restore(
                list(spec.alert_rules),
                state["alerts"],
                symbol=spec.symbol,
                strategy_name=spec.strategy_name,
            )
            skip_ts = int(snap["last_ts"])
            resume_at = await self._index_after(feed, skip_ts)
        handle = RunHandle(
            run_id=row.id,
            spec=spec,
            run=run,
            performance=performance,
            alerts=alerts,
            sequences={k: last.get(k, 0) for k in KINDS},
            skip_until_ts=skip_ts,
            resumed=resumed,
        )
        rt = await self._feed_runtime(feed)
        self._attach(handle, rt, resume_at)
        if feed.kind == "push":  # what was pushed after its last commit (pushes wait)
            for ts, o, h, lo, c, v in await self.repo.feed_bars(
                feed.id, spec.symbol, after_ts=skip_ts
            ):
                self._dispatch(rt, LiveBar(spec.symbol, ts, o, h, lo, c, v))
        log.info("resumed run %s of strategy %s", row.id, spec.strategy_id)

    async def _warmup_bars(
        self, feed: models.Feed, spec: RunSpec, start_index: int, until_ts: int | None = None
    ) -> list[LiveBar]:
        """A replay's bars before `start_index`; a push feed's last ones (up to `until_ts`)."""
        n = spec.warmup_bars
        if n <= 0:
            return []
        if feed.kind == "replay":
            bars = await asyncio.to_thread(self.load_bars, feed.dataset_id)
            lo = max(0, start_index - n)
            return _live_bars(bars, spec.symbol, lo, start_index)
        rows = await self.repo.feed_bars(feed.id, spec.symbol, until_ts=until_ts, last=n)
        return [LiveBar(spec.symbol, *r) for r in rows]

    async def _bars_until(
        self, feed: models.Feed, spec: RunSpec, last_ts: int, window: int
    ) -> list[LiveBar]:
        """The last `window` bars up to and including `last_ts` (what restore recomputes from)."""
        if feed.kind == "replay":
            bars = await asyncio.to_thread(self.load_bars, feed.dataset_id)
            stop = int(bars.ts.searchsorted(last_ts, side="right"))
            return _live_bars(bars, spec.symbol, max(0, stop - window), stop)
        rows = await self.repo.feed_bars(feed.id, spec.symbol, until_ts=last_ts, last=window)
        return [LiveBar(spec.symbol, *r) for r in rows]

    async def _index_after(self, feed: models.Feed, ts: int) -> int:
        if feed.kind != "replay":
            return 0
        bars = await asyncio.to_thread(self.load_bars, feed.dataset_id)
        return int(bars.ts.searchsorted(ts, side="right"))

    # -- internals: ownership across replicas -------------------------------------------

    async def _heartbeat_loop(self) -> None:
        """Tells the others this server still runs its runs; takes over silent runners'.

        A run whose runner stays silent for RUNNER_STALE_S (killed, partitioned) is resumed
        by the next replica that looks, from its last committed state. A runner that finds
        a run taken over (it was silent that long itself) lets it go, so one run never runs
        twice for longer than a heartbeat.
        """
        failing = FailureLog(log, "live heartbeat failed; retrying")
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                mine = {h.run_id for h in self.runs.values()}
                # Shielded like a flush: cancelled mid-transaction at shutdown, a beat left
                # SQLite's write lock held, and the final flush failed "database is locked".
                owned = await asyncio.shield(self.repo.heartbeat(self.runner, list(mine)))
                # Only among those it asked about: a run started here meanwhile is not in
                # `owned` either, yet nobody took it.
                lost = mine - owned
                for handle in [h for h in self.runs.values() if h.run_id in lost]:
                    log.warning("run %s was taken over by another server", handle.run_id)
                    await self._release(handle)
                await self._resume_claimed()
            except asyncio.CancelledError:
                raise
            except Exception:
                failing.failed()
                continue
            failing.recovered()

    async def _release(self, handle: RunHandle) -> None:
        """Stops running `handle` here without recording anything: another server has it."""
        async with self._flushing:  # not while a commit of its events is under way
            self._let_go(handle)

    def _let_go(self, handle: RunHandle) -> None:
        """`_release` with the flush lock held: its unwritten events are dropped (the new
        runner produces them again, with the same numbers, from the state it resumed)."""
        handle.lost = True
        self._unhook(handle)
        strategy_id = handle.spec.strategy_id
        self._pending = [e for e in self._pending if e.strategy_id != strategy_id]
        if self.runs.get(strategy_id) is handle:
            del self.runs[strategy_id]
        for kind in KINDS:
            self.hub.close((kind, strategy_id), "running on another server")

    # -- internals: failures, watchdog, notifications ------------------------------------

    async def _fail(
        self,
        run_id: str,
        strategy_id: str,
        owner_id: str,
        error: str,
        *,
        handle: RunHandle | None = None,
    ) -> None:
        """Ends a run as failed; `handle` when the caller has already unhooked it."""
        if handle is None:
            handle = self.runs.get(strategy_id)
            if handle is not None and not self._unhook(handle):
                return  # already being stopped or failed
        message = _user_error(error)
        if handle is not None:
            self._alert(handle, error_alert(message))
            ended = await self._detach(handle, "failed", "failed", message)
        else:
            ended = await self.repo.end_run(
                run_id, strategy_id, "failed", message, runner=self.runner
            )
        if ended:
            self._send(
                owner_id, "strategy.failed", "error", "A running strategy failed", message,
                f"strategies/{strategy_id}",
            )  # fmt: skip

    async def _watch_feeds(self) -> None:
        """Raises a stalled-feed alert once per silence of a push feed with a timeframe."""
        from stratopt.data.timeframes import parse_timeframe

        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for rt in list(self.feeds.values()):
                if rt.feed.kind != "push" or not rt.feed.timeframe or rt.stalled:
                    continue
                spacing = parse_timeframe(rt.feed.timeframe)
                silent = now - rt.last_bar_monotonic
                if silent > STALL_SPACINGS * spacing:
                    rt.stalled = True
                    for handle in list(rt.runs.values()):
                        self._alert(handle, stalled_alert(rt.feed.id, silent))
                    # Stored at once, like every event a resumed run would not repeat.
                    try:
                        await self._flush()
                    except Exception:
                        log.exception("could not record a stalled-feed alert; retrying")

    async def _notify_status(self, handle: RunHandle, what: str) -> None:
        spec = handle.spec
        sent = self._send(
            spec.owner_id, "strategy.status", "info", f"{spec.strategy_name} {what}",
            f"on {spec.symbol} (feed {spec.feed_id})", f"strategies/{spec.strategy_id}",
        )  # fmt: skip
        if sent is not None:
            await asyncio.wait([sent])  # its failure is logged, not the caller's

    def _send(self, *notice: str) -> asyncio.Task[None] | None:
        """Sends a notification after every earlier one from here, without blocking a bar."""
        notify = self.notify
        if notify is None:
            return None
        previous = self._last_notice

        async def send() -> None:
            if previous is not None:
                await asyncio.wait([previous])
            result = notify(*notice)
            if asyncio.iscoroutine(result):
                await result

        task = asyncio.get_running_loop().create_task(send())
        self._last_notice = task
        self._track(task)
        return task

    def _spawn(self, result: Any) -> None:
        if asyncio.iscoroutine(result):
            self._track(asyncio.get_running_loop().create_task(result))

    def _track(self, task: asyncio.Task[Any]) -> None:
        # The loop keeps only a weak reference to a task: hold it until it is done.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    def _tracker(self, spec: RunSpec) -> PerformanceTracker:
        opts = spec.execution.resolved()
        return PerformanceTracker(opts.initial_cash, opts.periods_per_year)

    def _view(self, handle: RunHandle, row: models.LiveRun | None) -> PerformanceView:
        last = handle.last
        opts = handle.spec.execution.resolved()
        run = row or models.LiveRun(
            id=handle.run_id, strategy_id=handle.spec.strategy_id, owner_id=handle.spec.owner_id,
            feed_id=handle.spec.feed_id, symbol=handle.spec.symbol, status="running",
        )  # fmt: skip
        if last is None and handle.resumed is not None:
            # Resumed and no bar since: the figures it was stored with.
            return replace(_stored_view(handle.resumed), run=run)
        broker = handle.run.broker
        return PerformanceView(
            run=run,
            equity=last.equity if last else opts.initial_cash,
            cash=broker.cash,
            side=broker.side,
            position=broker.position,
            entry_price=broker.entry_price or 0.0,
            realized_pnl=last.realized_pnl if last else 0.0,
            unrealized_pnl=last.unrealized_pnl if last else 0.0,
            drawdown=last.drawdown if last else 0.0,
            bars_processed=handle.run.bars_processed,
            last_bar_ts=last.ts if last else 0,
            metrics=handle.performance.metrics(),
            execution=_annualized(opts, handle.performance),
        )

    def _history(self, strategy_id: str, kind: Kind) -> Callable[[int, int], Any]:
        async def read(after: int, limit: int) -> list[LiveEvent]:
            return await self.history(strategy_id, kind, after, limit)

        return read

    async def _poll(
        self, strategy_id: str, kind: Kind, after: int
    ) -> AsyncIterator[Delivery[LiveEvent]]:
        cursor = after
        if after == 0:
            cursor = (await self.repo.last_sequences(strategy_id)).get(kind, 0)
        checked = 0.0
        while True:
            if self._closing:
                raise _shutting_down()
            events = await self.history(strategy_id, kind, cursor, 500)
            for e in events:
                cursor = e.sequence
                yield Delivery(e, 0)
            if len(events) == 500:
                continue
            now = time.monotonic()
            if now - checked > 1.0:
                checked = now
                row = await self.repo.latest_run(strategy_id)
                if row is None or row.status != "running":
                    tail = await self.history(strategy_id, kind, cursor, 500)
                    for e in tail:
                        yield Delivery(e, 0)
                    return
                if strategy_id in self.runs:  # it started here meanwhile
                    async for d in self.subscribe(strategy_id, kind, cursor):
                        yield d
                    return
            await asyncio.sleep(POLL_INTERVAL_S)


def _shutting_down() -> Unavailable:
    return Unavailable(
        "the server is shutting down; reconnect with after_sequence set to the last "
        "sequence received"
    )


def _check_numbering(
    row: models.LiveRun, state: Mapping[str, Any], last: Mapping[str, int]
) -> None:
    """Logs a stored record whose signals or fills run past (or short of) the state stored
    with them: they are written in one transaction, so the numbers must agree (alerts may
    be written without a state). Should they not, the bars after the state's come again
    and their events are stored twice (or numbers are missing)."""
    counted = state.get("sequences") or {}
    for kind in ("signal", "fill"):
        if kind in counted and int(counted[kind]) != last.get(kind, 0):
            log.error(
                "run %s: its state counts %d %s events but %d are stored",
                row.id, int(counted[kind]), kind, last.get(kind, 0),
            )  # fmt: skip


def _alert_engine(spec: RunSpec) -> AlertEngine:
    engine = AlertEngine(
        list(spec.alert_rules), symbol=spec.symbol, strategy_name=spec.strategy_name
    )
    for field_name, problem in engine.problems:
        log.warning(
            "strategy %s: alert rule ignored: %s: %s", spec.strategy_id, field_name, problem
        )
    return engine


def _live_bars(bars: Bars, symbol: str, lo: int, hi: int) -> list[LiveBar]:
    ts, o, h, low, c, v = (
        a[lo:hi].tolist()
        for a in (bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume)
    )
    return [LiveBar(symbol, *row) for row in zip(ts, o, h, low, c, v, strict=True)]


def _stored_view(row: models.LiveRun) -> PerformanceView:
    state = row.state or {}
    run = state.get("run") or {}
    broker = (run.get("broker") or {}).get("state") or {}
    spec = RunSpec.from_json(row.spec)
    opts = spec.execution.resolved()
    side = int(broker.get("side", 0))
    units = float(broker.get("units", 0.0))
    perf = state.get("performance") or {}
    tracker = PerformanceTracker.restore(perf) if perf else None
    metrics = tracker.metrics() if tracker else {}
    return PerformanceView(
        run=row,
        equity=row.equity,
        cash=float(broker.get("cash", opts.initial_cash)),
        side=side,
        position=side * units,
        entry_price=float(broker.get("entry_price", 0.0)) if side else 0.0,
        realized_pnl=float(run.get("realized_pnl", 0.0)),
        unrealized_pnl=row.equity - opts.initial_cash - float(run.get("realized_pnl", 0.0)),
        drawdown=1.0 - row.equity / float(run.get("peak_equity") or opts.initial_cash),
        bars_processed=row.bars_processed,
        last_bar_ts=row.last_bar_ts,
        metrics=metrics,
        execution=_annualized(opts, tracker) if tracker else opts,
    )


def _annualized(opts: ExecutionOptions, tracker: PerformanceTracker) -> ExecutionOptions:
    """The options with the annualisation in use filled in (the bar spacing's if inferred)."""
    if opts.periods_per_year:
        return opts
    return opts.replace(periods_per_year=tracker.inferred_periods_per_year())


def _severity(level: str) -> str:
    return {"critical": "error", "warning": "warning"}.get(level, "info")


def _user_error(error: str) -> str:
    """Error text fit for users: one line, bounded, without memory addresses."""
    line = re.sub(
        r"0x[0-9a-fA-F]+",
        "0x…",
        error.strip().splitlines()[0] if error.strip() else "unknown error",
    )
    return line[:500]


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("live notification failed: %s", task.exception())
