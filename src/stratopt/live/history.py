"""A growable bar buffer for one symbol, read as contiguous float64 arrays.

Signal functions are the numba kernels backtests use, and they take whole arrays. A live
run appends one bar at a time and recomputes the newest target over the last N bars, so
the buffer must append in amortized O(1) and hand out the last N bars of each field as
C-contiguous float64 views, which numba accepts without a copy or a recompile.

Layout: one (5, capacity) float64 block (open, high, low, close, volume rows) plus an
int64 timestamp row; a row slice of a C-ordered block is itself contiguous. When the
buffer is full it either doubles or, with a ``keep`` limit, slides the newest ``keep``
bars to the front (capacity is at least twice ``keep``, so each slide is paid for by as
many appends as it copies). Views are only valid until the next append.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stratopt.live.bars import LiveBar

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
OPEN, HIGH, LOW, CLOSE, VOLUME = 0, 1, 2, 3, 4


@dataclass(frozen=True)
class BarWindow:
    """Views of the last bars held, oldest first; valid until the buffer's next append."""

    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    def prices(self) -> tuple[F64, F64, F64, F64, F64]:
        """(open, high, low, close, volume): the argument order of a signal function."""
        return (self.open, self.high, self.low, self.close, self.volume)

    def __len__(self) -> int:
        return int(self.ts.shape[0])


class BarHistory:
    """The bars of one symbol in arrival order, oldest possibly dropped past ``keep``.

    ``keep`` (None = unbounded) is how many recent bars must stay available; a live run
    sets it to its signal window. ``total`` counts every bar ever appended, dropped ones
    included, so it doubles as the index of the next bar.
    """

    def __init__(self, keep: int | None = None, capacity: int = 1024) -> None:
        if keep is not None and keep < 1:
            raise ValueError("keep must be >= 1 (or None to keep everything)")
        capacity = max(capacity, 16, 2 * keep if keep else 0)
        self._keep = keep
        self._prices: F64 = np.empty((5, capacity), dtype=np.float64)
        self._ts: I64 = np.empty(capacity, dtype=np.int64)
        self._end = 0
        self._total = 0

    @property
    def keep(self) -> int | None:
        return self._keep

    @property
    def total(self) -> int:
        """Bars appended since creation (held or dropped)."""
        return self._total

    def __len__(self) -> int:
        """Bars currently held: all of them, or at least ``keep`` once older ones are dropped."""
        return self._end

    @property
    def last_ts(self) -> int | None:
        """Timestamp of the newest bar, or None while empty."""
        return int(self._ts[self._end - 1]) if self._end else None

    def append(
        self, ts: int, open_: float, high: float, low: float, close: float, volume: float
    ) -> None:
        """Add the newest bar (callers validate it; see ``live.bars``)."""
        if self._end == self._ts.shape[0]:
            self._make_room()
        end = self._end
        self._ts[end] = ts
        column = self._prices[:, end]
        column[OPEN] = open_
        column[HIGH] = high
        column[LOW] = low
        column[CLOSE] = close
        column[VOLUME] = volume
        self._end = end + 1
        self._total += 1

    def append_bar(self, bar: LiveBar) -> None:
        self.append(bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume)

    def drop_last(self) -> None:
        """Undo the latest append (a step that failed after storing its bar)."""
        if self._end == 0:
            raise IndexError("no bar to drop")
        self._end -= 1
        self._total -= 1

    def window(self, n: int | None = None) -> BarWindow:
        """The last ``n`` bars held (all of them if ``n`` is None or more than held)."""
        end = self._end
        start = 0 if n is None else max(0, end - n)
        p = self._prices
        return BarWindow(
            ts=self._ts[start:end],
            open=p[OPEN, start:end],
            high=p[HIGH, start:end],
            low=p[LOW, start:end],
            close=p[CLOSE, start:end],
            volume=p[VOLUME, start:end],
        )

    def prices(self, n: int) -> tuple[F64, F64, F64, F64, F64]:
        """(open, high, low, close, volume) views of the last ``n`` bars held: what
        ``window(n).prices()`` returns, without building the window (a live step's path)."""
        end = self._end
        start = max(0, end - n)
        p = self._prices
        return (
            p[OPEN, start:end],
            p[HIGH, start:end],
            p[LOW, start:end],
            p[CLOSE, start:end],
            p[VOLUME, start:end],
        )

    def _make_room(self) -> None:
        """Called when full: slide the newest ``keep`` bars to the front, or double."""
        end = self._end
        keep = self._keep
        if keep is not None:
            # capacity >= 2 * keep, so source and destination never overlap.
            first = end - keep
            self._prices[:, :keep] = self._prices[:, first:end]
            self._ts[:keep] = self._ts[first:end]
            self._end = keep
            return
        grown = 2 * self._ts.shape[0]
        prices = np.empty((5, grown), dtype=np.float64)
        ts = np.empty(grown, dtype=np.int64)
        prices[:, :end] = self._prices[:, :end]
        ts[:end] = self._ts[:end]
        self._prices, self._ts = prices, ts
