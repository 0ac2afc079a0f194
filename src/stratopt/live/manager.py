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
event exactly once. Streams resume from storage plus the events still waiting for the
writer, so nothing published is invisible to a resume.

Across replicas (PostgreSQL), a strategy runs in the server that started it (or resumed
it); the others serve its streams by polling the events table (`POLL_INTERVAL_S`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stratopt.data.bars import Bars
from stratopt.engine.options import ExecutionOptions
from stratopt.live.alerts import AlertEngine, AlertEvent, error_alert, status_alert, stop_alerts
from stratopt.live.bars import BarRejected, FeedValidator, LiveBar
from stratopt.live.events import KINDS, Kind, LiveEvent, alert_payload, fill_payload, signal_payload
from stratopt.live.hub import Delivery, Hub
from stratopt.live.performance import PerformanceTracker
from stratopt.live.runner import StepResult, StrategyRun
from stratopt.live.signals import EnsembleSignal, LiveSignal, StrategySignal
from stratopt.live.sources import ReplaySource
from stratopt.store import models
from stratopt.store.live_repo import EventRow, LiveRepo, RunProgress
from stratopt.strategies import registry

log = logging.getLogger("stratopt.live")

POLL_INTERVAL_S = 0.25
COMMIT_INTERVAL_S = 0.2
STALL_SPACINGS = 3
MAX_REJECTIONS_REPORTED = 100

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
    # it is instead).
    start_index: int = 0

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
        )

    def signal(self) -> LiveSignal:
        if self.members:
            return EnsembleSignal(
                [(registry.get(t), p, w) for t, p, w in self.members], self.method
            )
        return StrategySignal(registry.get(self.strategy_type), self.parameters)


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
    skip_until_ts: int = 0
    dirty: bool = False
    # Set when the run is being stopped or failed: its feed no longer hands it bars.
    ended: bool = False

    def progress(self) -> RunProgress:
        state = {
            "run": self.run.snapshot(),
            "performance": self.performance.snapshot(),
            "alerts": self.alerts.snapshot(),
            "sequences": dict(self.sequences),
        }
        last = self.last
        return RunProgress(
            run_id=self.run_id,
            state=state,
            bars_processed=self.run.bars_processed,
            last_bar_ts=last.ts if last else self.skip_until_ts,
            equity=last.equity if last else self.spec.execution.resolved().initial_cash,
        )


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
    ) -> None:
        self.repo = repo
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

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Resumes every run recorded as running, then starts the writer and the watchdog."""
        self._writer = asyncio.create_task(self._write_loop(), name="live-writer")
        self._watchdog = asyncio.create_task(self._watch_feeds(), name="live-watchdog")
        for row in await self.repo.running_runs():
            try:
                await self._resume(row)
            except Exception as e:  # one broken run must not keep the others down
                log.exception("could not resume run %s", row.id)
                await self._fail(row.id, row.strategy_id, row.owner_id, f"resume failed: {e}")

    async def close(self) -> None:
        """Stops feeds and flushes; runs stay `running` in storage, to resume next start."""
        self._closing = True
        for rt in self.feeds.values():
            if rt.task is not None:
                rt.task.cancel()
        for rt in list(self.feeds.values()):
            if rt.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await rt.task
        for task in (self._watchdog, self._writer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self._flush()
        self.hub.close_all("server shutting down")

    # -- runs ----------------------------------------------------------------------------

    async def start_run(self, spec: RunSpec, feed: models.Feed) -> str:
        """Starts a run on `feed`: from `spec.start_index`, or where a running replay is."""
        running = self.feeds.get(feed.id)
        start_index = running.position if running is not None else spec.start_index
        signal = spec.signal()
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
        await self.repo.add_run(row)
        self._attach(handle, feed, start_index)
        self._alert(
            handle, status_alert("started", f"{spec.strategy_name} started on {spec.symbol}")
        )
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
        await self._detach(handle, "stopped")
        await self.repo.end_run(handle.run_id, strategy_id, "stopped")
        await self._notify_status(handle, "stopped")
        return True

    def is_running_here(self, strategy_id: str) -> bool:
        return strategy_id in self.runs

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
        rt = self.feeds.get(feed.id) or await self._open_feed(feed)
        accepted: list[LiveBar] = []
        rejections: list[tuple[int, LiveBar, str]] = []
        for i, bar in enumerate(bars):
            try:
                accepted.append(rt.validator.accept(bar))
            except BarRejected as e:
                rejections.append((first_index + i, bar, e.reason))
        await self.repo.add_feed_bars(
            feed.id,
            [(b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume) for b in accepted],
            len(rejections),
        )
        for bar in accepted:
            self._dispatch(rt, bar)
        if not rt.runs:
            self.feeds.pop(feed.id, None)
        return PushOutcome(len(accepted), len(rejections), tuple(rejections))

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
        rt = FeedRuntime(feed=feed, validator=validator)
        self.feeds[feed.id] = rt
        return rt

    def _attach(self, handle: RunHandle, feed: models.Feed, start_index: int) -> None:
        strategy_id = handle.spec.strategy_id
        self.runs[strategy_id] = handle
        for kind in KINDS:
            self.hub.open((kind, strategy_id), last_sequence=handle.sequences[kind])
        rt = self.feeds.get(feed.id)
        if rt is None:
            rt = FeedRuntime(feed=feed, validator=FeedValidator(feed.symbols))
            self.feeds[feed.id] = rt
            if feed.kind == "replay":
                rt.task = asyncio.create_task(
                    self._replay(rt, start_index), name=f"replay-{feed.id}"
                )
        rt.runs[handle.run_id] = handle
        handle.dirty = True
        self._pending_runs[strategy_id] = handle.run_id

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
        return True

    async def _detach(self, handle: RunHandle, reason: str) -> None:
        strategy_id = handle.spec.strategy_id
        self._unhook(handle)
        await self._flush()  # while it is still a run here, so its last state is written
        if self.runs.get(strategy_id) is handle:
            del self.runs[strategy_id]
        for kind in KINDS:
            self.hub.close((kind, strategy_id), reason)

    async def _replay(self, rt: FeedRuntime, start_index: int) -> None:
        feed = rt.feed
        try:
            bars = await asyncio.to_thread(self.load_bars, feed.dataset_id)
            symbol = feed.symbols[0]
            source = ReplaySource(bars, symbol, start_index, feed.bars_per_second)
            rt.position = start_index
            async for bar in source.bars():
                rt.position += 1
                rt.validator.accept(bar)
                self._dispatch(rt, bar)
                if not rt.runs:
                    return
            await self.repo.mark_feed_finished(feed.id)
            for handle in list(rt.runs.values()):
                if not self._unhook(handle):
                    continue  # stopped meanwhile
                self._alert(
                    handle, status_alert("finished", "the replay reached the end of its dataset")
                )
                await self._detach(handle, "replay finished")
                await self.repo.end_run(handle.run_id, handle.spec.strategy_id, "stopped")
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
        for alert in handle.alerts.evaluate(handle.performance.figures(), ts=result.ts):
            self._alert(handle, alert)
        handle.dirty = True

    def _alert(self, handle: RunHandle, alert: AlertEvent) -> None:
        ts = handle.last.ts if handle.last else 0
        payload = alert_payload(
            alert.kind, alert.severity, alert.title, alert.message,
            rule=dict(alert.rule) if alert.rule else None, value=alert.value,
        )  # fmt: skip
        self._emit(handle, "alert", ts, payload)
        if self.notify is not None and alert.kind != "status":
            spec = handle.spec
            self._spawn(
                self.notify(
                    spec.owner_id, "strategy.alert", _severity(alert.severity),
                    f"{spec.strategy_name}: {alert.title}", alert.message,
                    f"strategies/{spec.strategy_id}",
                )
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
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.commit_interval)
            self._wake.clear()
            try:
                await self._flush()
            except Exception:
                log.exception("could not record live progress; retrying")
                await asyncio.sleep(self.commit_interval)

    async def _flush(self) -> None:
        """Commits pending events with the states that include them (taken in one go).

        One flush at a time: two would both take the same pending events.
        """
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
            await self.repo.commit_progress(progress, rows)
        except Exception:
            for h in handles:
                h.dirty = True
            raise
        done = len(events)
        del self._pending[:done]

    def _all_handles(self) -> list[RunHandle]:
        return list(self.runs.values())

    # -- internals: resume ---------------------------------------------------------------

    async def _resume(self, row: models.LiveRun) -> None:
        spec = RunSpec.from_json(row.spec)
        feed = await self.repo.get_feed(row.feed_id)
        if feed is None:
            raise RuntimeError("its feed was deleted")
        signal = spec.signal()
        state = row.state or {}
        last = await self.repo.last_sequences(spec.strategy_id)
        if not state.get("run"):
            # Killed before its first commit: start over from where it started.
            run = StrategyRun(signal, spec.execution.resolved(), spec.symbol)
            start_index = spec.start_index
            run.warm_up(await self._warmup_bars(feed, spec, start_index))
            performance = self._tracker(spec)
            alerts = _alert_engine(spec)
            resume_at, skip_ts = start_index, 0
        else:
            snap = state["run"]
            bars = await self._bars_until(feed, spec, int(snap["last_ts"]), signal.window)
            run = StrategyRun.restore(snap, signal, bars)
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
        )
        self._attach(handle, feed, resume_at)
        if feed.kind == "push":
            for ts, o, h, lo, c, v in await self.repo.feed_bars(
                feed.id, spec.symbol, after_ts=skip_ts
            ):
                self._dispatch(self.feeds[feed.id], LiveBar(spec.symbol, ts, o, h, lo, c, v))
        log.info("resumed run %s of strategy %s", row.id, spec.strategy_id)

    async def _warmup_bars(
        self, feed: models.Feed, spec: RunSpec, start_index: int
    ) -> list[LiveBar]:
        n = spec.warmup_bars
        if n <= 0:
            return []
        if feed.kind == "replay":
            bars = await asyncio.to_thread(self.load_bars, feed.dataset_id)
            lo = max(0, start_index - n)
            return _live_bars(bars, spec.symbol, lo, start_index)
        rows = await self.repo.feed_bars(feed.id, spec.symbol, last=n)
        return [LiveBar(spec.symbol, *r) for r in rows]

    async def _bars_until(
        self, feed: models.Feed, spec: RunSpec, last_ts: int, window: int
    ) -> list[LiveBar]:
        """The last `window` bars up to and including `last_ts` (what restore recomputes from)."""
        if feed.kind == "replay":
            bars = await asyncio.to_thread(self.load_bars, feed.dataset_id)
            stop = int(bars.ts.searchsorted(last_ts, side="right"))
            return _live_bars(bars, spec.symbol, max(0, stop - window), stop)
        rows = await self.repo.feed_bars(feed.id, spec.symbol, last=window + 1_000_000)
        rows = [r for r in rows if r[0] <= last_ts][-window:]
        return [LiveBar(spec.symbol, *r) for r in rows]

    async def _index_after(self, feed: models.Feed, ts: int) -> int:
        if feed.kind != "replay":
            return 0
        bars = await asyncio.to_thread(self.load_bars, feed.dataset_id)
        return int(bars.ts.searchsorted(ts, side="right"))

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
            await self._detach(handle, "failed")
        await self.repo.end_run(run_id, strategy_id, "failed", message)
        if self.notify is not None:
            self._spawn(
                self.notify(
                    owner_id, "strategy.failed", "error", "A running strategy failed", message,
                    f"strategies/{strategy_id}",
                )
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
                        self._alert(handle, _stalled(rt.feed, silent))

    async def _notify_status(self, handle: RunHandle, what: str) -> None:
        if self.notify is None:
            return
        spec = handle.spec
        result = self.notify(
            spec.owner_id, "strategy.status", "info", f"{spec.strategy_name} {what}",
            f"on {spec.symbol} (feed {spec.feed_id})", f"strategies/{spec.strategy_id}",
        )  # fmt: skip
        if asyncio.iscoroutine(result):
            await result

    def _spawn(self, result: Any) -> None:
        if asyncio.iscoroutine(result):
            task = asyncio.get_running_loop().create_task(result)
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
            execution=opts,
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
    metrics = PerformanceTracker.restore(perf).metrics() if perf else {}
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
        execution=opts,
    )


def _severity(level: str) -> str:
    return {"critical": "error", "warning": "warning"}.get(level, "info")


def _stalled(feed: models.Feed, silent: float) -> AlertEvent:
    from stratopt.live.alerts import stalled_alert

    return stalled_alert(feed.id, silent)


def _user_error(error: str) -> str:
    """Error text fit for users: one line, bounded, without memory addresses."""
    import re

    line = re.sub(
        r"0x[0-9a-fA-F]+",
        "0x…",
        error.strip().splitlines()[0] if error.strip() else "unknown error",
    )
    return line[:500]


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("live notification failed: %s", task.exception())
