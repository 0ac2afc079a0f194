"""Where a feed's bars come from: a replayed dataset, bars pushed by a client, an exchange.

The runner only ever sees a `BarSource`: an async iterator of validated `LiveBar`s in time
order. Adding an exchange means writing one class with `symbols` and `bars()` (see
`ExchangeAdapter` below) and registering it; nothing in the runner changes.

Pushed bars do not go through a source object: PushBars validates, persists and hands each
accepted bar to the feed directly (see `live.manager`), so a bridge's call returns only
when its bars are durable and have been traded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol, runtime_checkable

from stratopt.data.bars import Bars
from stratopt.live.bars import LiveBar


@runtime_checkable
class BarSource(Protocol):
    """A stream of completed bars, oldest first, per symbol strictly increasing in time."""

    @property
    def symbols(self) -> frozenset[str]: ...

    def bars(self) -> AsyncIterator[LiveBar]: ...


class ReplaySource:
    """A stored dataset replayed from bar `start`, at `bars_per_second` (0 = no pacing).

    Pacing follows an absolute schedule (bar i is due at t0 + i / rate), so a slow step does
    not make the whole replay drift; a replay that falls behind catches up without sleeping
    (but still yields to the event loop between bars).
    Unpaced replays still yield to the event loop every `YIELD_EVERY` bars so that streams,
    stops and other feeds keep running.
    """

    YIELD_EVERY = 64

    def __init__(self, bars: Bars, symbol: str, start: int, bars_per_second: float) -> None:
        if bars_per_second < 0:
            raise ValueError("bars_per_second must be >= 0")
        self._bars = bars
        self._symbol = symbol
        self._start = start
        self._rate = bars_per_second

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset({self._symbol})

    async def bars(self) -> AsyncIterator[LiveBar]:
        b = self._bars
        ts, o, h, lo, c, v = b.ts, b.open, b.high, b.low, b.close, b.volume
        t0 = time.monotonic()
        for k, i in enumerate(range(self._start, len(b))):
            if self._rate > 0:
                delay = t0 + k / self._rate - time.monotonic()
                # Behind schedule, still let streams run between bars: catching up on a
                # backlog without yielding would hold every signal until it is done.
                await asyncio.sleep(max(delay, 0.0))
            elif k % self.YIELD_EVERY == 0:
                await asyncio.sleep(0)
            yield LiveBar(
                self._symbol, int(ts[i]), float(o[i]), float(h[i]), float(lo[i]),
                float(c[i]), float(v[i]),
            )  # fmt: skip


class ExchangeAdapter(BarSource, Protocol):
    """What an exchange feed implements (for example a ccxt-based adapter, added later).

    - `symbols`: the instruments it was configured with, in the exchange's notation mapped
      to ours (e.g. "BTC/USDT" -> "BTCUSDT").
    - `bars()`: completed candles only (never the forming one), oldest first, each symbol's
      timestamps strictly increasing; reconnects and backfills the gap itself, and raises
      only when it gives up (the run then fails with the error as an alert).
    - `close()`: releases connections; called when no running strategy uses the feed.

    The feed validates every bar again, so an adapter bug rejects bars, not strategies.
    """

    async def close(self) -> None: ...


AdapterFactory = Callable[[Mapping[str, Any]], ExchangeAdapter]
_ADAPTERS: dict[str, AdapterFactory] = {}


def register_adapter(name: str, factory: AdapterFactory) -> None:
    """Makes an exchange adapter available under `name` (no network is reached here)."""
    _ADAPTERS[name] = factory


def adapter(name: str, options: Mapping[str, Any]) -> ExchangeAdapter:
    try:
        return _ADAPTERS[name](options)
    except KeyError:
        raise ValueError(f"no exchange adapter named {name!r}") from None
