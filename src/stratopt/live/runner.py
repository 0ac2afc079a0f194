"""One running strategy on one symbol: bars in, signal events, fills, trades and equity out.

``StrategyRun`` is the pure core of paper trading: no clock, no I/O, no threads. The
service layer owns the feed, the persistence of ``snapshot()`` and the streams; this
class turns each accepted bar into a ``StepResult`` with the same signals and trades a
backtest of the same bars would produce (see ``live.signals`` and ``live.broker``).

Bars are numbered from 0 at the first traded bar; warm-up bars only feed the indicators.
After a warm-up, the run starts in the state the strategy is in: the target of the last
warm-up bar is what the first open fills (with ``fill_on_close``, the first bar's own
target fills at its close), so a run equals a backtest over the traded bars whose targets
were computed with the warm-up in view.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy.typing as npt

from stratopt.live.bars import BarRejected, LiveBar, bar_problem, format_ts
from stratopt.live.broker import BrokerUpdate, ClosedTrade, ExecutionLike, Fill, PaperBroker
from stratopt.live.history import BarHistory
from stratopt.live.signals import LiveSignal

SNAPSHOT_VERSION = 1

Action = Literal["buy", "sell", "close"]


@dataclass(frozen=True)
class SignalEvent:
    """The strategy's target changed on the close of bar ``bar_index`` (priced there)."""

    bar_index: int
    ts: int
    symbol: str
    target: int
    previous: int
    price: float

    @property
    def action(self) -> Action:
        """What the new target asks for: go long, go short, or be flat."""
        return "buy" if self.target > 0 else ("sell" if self.target < 0 else "close")


@dataclass(frozen=True)
class StepResult:
    """Everything one bar did to the run; the account figures are after the bar.

    ``realized_pnl`` sums closed trades (net of costs); ``unrealized_pnl`` is the rest of
    the gain, ``equity - initial_cash - realized_pnl`` (so it includes the open trade's
    entry commission). ``drawdown`` is the fraction below the highest equity seen.
    """

    bar_index: int
    ts: int
    symbol: str
    target: int
    signal: SignalEvent | None
    fills: tuple[Fill, ...]
    trades: tuple[ClosedTrade, ...]
    side: int
    position: float
    cash: float
    equity: float
    realized_pnl: float
    unrealized_pnl: float
    peak_equity: float
    drawdown: float

    @property
    def bars_processed(self) -> int:
        return self.bar_index + 1


class StrategyRun:
    """A strategy's signal plus its paper broker, stepped one bar of one symbol at a time."""

    def __init__(
        self,
        signal: LiveSignal,
        config: ExecutionLike | npt.ArrayLike,
        symbol: str,
    ) -> None:
        self.signal = signal
        self.symbol = symbol
        self.broker = PaperBroker(config)
        self.history = BarHistory(keep=signal.window)
        self._initial_cash = self.broker.cash
        self._bar_index = -1
        self._target = 0
        self._realized = 0.0
        self._peak = self._initial_cash
        self._entry_ts: int | None = None
        self._last_close = math.nan

    @property
    def bars_processed(self) -> int:
        """Bars traded so far (the next bar's index)."""
        return self._bar_index + 1

    @property
    def target(self) -> int:
        """The target after the newest bar (warm-up included), 0 before any."""
        return self._target

    def warm_up(self, bars: Iterable[LiveBar]) -> int:
        """Feed bars to the indicators without trading; only before the first step.

        Returns how many bars were added. The last one's target becomes the starting
        target (see the module docstring). All or nothing: one bad bar rejects the batch.
        """
        if self._bar_index >= 0:
            raise RuntimeError("warm_up() is only allowed before the first step")
        batch = list(bars)
        last = self.history.last_ts
        for bar in batch:
            self._check(bar, last)
            last = bar.ts
        for bar in batch:
            self.history.append_bar(bar)
        if batch:
            self._target = self.signal.target(self.history)
            self.broker.prime(self._target)
        return len(batch)

    def step(self, bar: LiveBar) -> StepResult:
        """Process the next bar of this run's symbol; BarRejected leaves the run unchanged."""
        self._check(bar, self.history.last_ts)
        self.history.append_bar(bar)
        try:
            target = self.signal.target(self.history)
        except BaseException:
            self.history.drop_last()
            raise
        t = self._bar_index + 1
        update = self.broker.on_bar(t, bar.open, bar.high, bar.low, bar.close, target)
        self._bar_index = t
        self._last_close = bar.close
        event = None
        if target != self._target:
            event = SignalEvent(t, bar.ts, bar.symbol, target, self._target, bar.close)
            self._target = target
        trades = self._stamp(update.trades, t, bar.ts) if update.trades else ()
        if update.side != 0 and any(f.kind == "entry" for f in update.fills):
            self._entry_ts = bar.ts
        return self._result(t, bar.ts, target, event, trades, update)

    def close_position(self) -> StepResult:
        """Flatten at the last bar's close (a stop that asks to); no-op result when flat."""
        if self._bar_index < 0:
            raise RuntimeError("nothing has been traded yet")
        last_ts = self.history.last_ts
        assert last_ts is not None
        update = self.broker.close_position(self._last_close)
        trades = self._stamp(update.trades, self._bar_index, last_ts)
        return self._result(self._bar_index, last_ts, self._target, None, trades, update)

    def snapshot(self) -> dict[str, Any]:
        """The run's state as a small JSON-able dict (the bars themselves are not in it)."""
        return {
            "version": SNAPSHOT_VERSION,
            "symbol": self.symbol,
            "window": self.signal.window,
            "bar_index": self._bar_index,
            "last_ts": self.history.last_ts,
            "history_bars": self.history.total,
            "target": self._target,
            "realized_pnl": self._realized,
            "peak_equity": self._peak,
            "entry_ts": self._entry_ts,
            "last_close": None if math.isnan(self._last_close) else self._last_close,
            "broker": self.broker.snapshot(),
        }

    @classmethod
    def restore(
        cls, snapshot: Mapping[str, Any], signal: LiveSignal, bars: Iterable[LiveBar]
    ) -> StrategyRun:
        """Continue a run from ``snapshot()`` and the bars it had seen (warm-up included).

        ``bars`` must end with the snapshot's last bar and hold at least its last
        ``window`` bars (all of them while the run had seen fewer): the signal is
        recomputed from them, so the continued run is identical to an uninterrupted one.
        """
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported run snapshot version {snapshot.get('version')!r}")
        if snapshot["window"] != signal.window:
            raise ValueError(
                f"the signal reads {signal.window} bars but the run was saved with "
                f"{snapshot['window']}: not the same strategy"
            )
        broker = PaperBroker.from_snapshot(snapshot["broker"])
        run = cls(signal, broker.config, str(snapshot["symbol"]))
        for bar in bars:
            run._check(bar, run.history.last_ts)
            run.history.append_bar(bar)
        needed = min(int(snapshot["history_bars"]), signal.window)
        if run.history.last_ts != snapshot["last_ts"] or len(run.history) < needed:
            raise ValueError(
                f"restore needs the last {needed} bars up to "
                f"{format_ts(snapshot['last_ts'])}; got {len(run.history)} bars up to "
                f"{format_ts(run.history.last_ts)}"
            )
        run.broker = broker
        run._bar_index = int(snapshot["bar_index"])
        run._target = int(snapshot["target"])
        run._realized = float(snapshot["realized_pnl"])
        run._peak = float(snapshot["peak_equity"])
        run._entry_ts = None if snapshot["entry_ts"] is None else int(snapshot["entry_ts"])
        last_close = snapshot["last_close"]
        run._last_close = math.nan if last_close is None else float(last_close)
        return run

    def _check(self, bar: LiveBar, last: int | None) -> None:
        """Raise BarRejected unless ``bar`` is a valid bar of this symbol after ``last``."""
        if bar.symbol != self.symbol:
            raise BarRejected(bar, f"this run trades {self.symbol!r}, not {bar.symbol!r}")
        problem = bar_problem(bar)
        if problem is None and last is not None and bar.ts <= last:
            problem = f"timestamp is not after the previous bar ({format_ts(last)})"
        if problem is not None:
            raise BarRejected(bar, problem)

    def _stamp(self, trades: tuple[ClosedTrade, ...], t: int, ts: int) -> tuple[ClosedTrade, ...]:
        """Add entry/exit times to trades closed on bar ``t`` (time ``ts``)."""
        stamped = []
        for trade in trades:
            entry_ts = ts if trade.entry_idx == t else self._entry_ts
            stamped.append(replace(trade, entry_ts=entry_ts, exit_ts=ts))
            self._realized += trade.pnl
        if trades and self.broker.side == 0:
            self._entry_ts = None
        return tuple(stamped)

    def _result(
        self,
        t: int,
        ts: int,
        target: int,
        event: SignalEvent | None,
        trades: tuple[ClosedTrade, ...],
        update: BrokerUpdate,
    ) -> StepResult:
        equity = update.equity
        if equity > self._peak:
            self._peak = equity
        drawdown = 1.0 - equity / self._peak if self._peak > 0 else 0.0
        return StepResult(
            bar_index=t,
            ts=ts,
            symbol=self.symbol,
            target=target,
            signal=event,
            fills=update.fills,
            trades=trades,
            side=update.side,  # the broker's, as of this update
            position=self.broker.position,
            cash=update.cash,
            equity=equity,
            realized_pnl=self._realized,
            unrealized_pnl=equity - self._initial_cash - self._realized,
            peak_equity=self._peak,
            drawdown=max(0.0, drawdown),
        )
