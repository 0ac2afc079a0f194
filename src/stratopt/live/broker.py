"""The paper broker: one strategy's simulated account, advanced one bar at a time.

It owns no trading rules. Each bar is handed to the backtest simulator's own kernel
(``engine.simulator.simulate_range``) as a one-bar range, with the account carried in the
kernel's state vector, so fills, costs, sizing, protective exits and the block after a
stop are the backtest's by construction, and a paper run over some bars trades exactly
as a backtest of those bars (bar for bar; only the backtest's forced exit after its last
bar and its refusal to enter at that bar's close are absent, a feed having no last bar).

What the kernel leaves implicit is spelled out for callers: the fills of the bar (entry
and exit orders, in the order they happened), the trades it closed, and the account.
The state is a handful of numbers, so ``snapshot()`` is a small JSON-able dict from which
``from_snapshot`` rebuilds a broker that continues exactly where this one stopped.
A broker is not thread-safe; one run task owns it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from stratopt.engine.simulator import (
    CFG_COMMISSION,
    CFG_LENGTH,
    COL_BARS_HELD,
    COL_ENTRY_IDX,
    COL_ENTRY_PRICE,
    COL_EXIT_IDX,
    COL_EXIT_PRICE,
    COL_PNL,
    COL_REASON,
    COL_RET,
    COL_SIDE,
    COL_SIZE,
    EXIT_END,
    EXIT_REASONS,
    STATE_CASH,
    STATE_ENTRY_FEE,
    STATE_ENTRY_IDX,
    STATE_ENTRY_PRICE,
    STATE_LENGTH,
    STATE_PENDING,
    STATE_SIDE,
    STATE_UNITS,
    TRADE_COLUMNS,
    close_out,
    new_state,
    simulate_range,
)

SNAPSHOT_VERSION = 1

# Names of the kernel's config and state vector slots, in vector order, for snapshots
# that stay readable (and checkable) in a database row.
CONFIG_FIELDS: tuple[str, ...] = (
    "initial_cash",
    "commission",
    "slippage",
    "size",
    "direction",
    "fill_on_close",
    "stop_loss",
    "take_profit",
    "trailing_stop",
)
STATE_FIELDS: tuple[str, ...] = (
    "cash",
    "side",
    "units",
    "entry_price",
    "entry_fee",
    "entry_idx",
    "best",
    "blocked",
    "last_target",
    "pending",
)
_INT_STATE = frozenset({"side", "entry_idx", "blocked", "last_target", "pending"})
assert len(CONFIG_FIELDS) == CFG_LENGTH and len(STATE_FIELDS) == STATE_LENGTH

Side = Literal["buy", "sell"]
FillKind = Literal["entry", "exit"]


class ExecutionLike(Protocol):
    """Execution settings that pack into the kernel's config vector (ExecutionOptions does)."""

    def to_vector(self) -> npt.NDArray[np.float64]: ...


@dataclass(frozen=True)
class Fill:
    """One simulated order fill; ``price`` includes slippage, ``fee`` is the commission."""

    bar_index: int
    kind: FillKind
    side: Side
    quantity: float
    price: float
    fee: float
    reason: str


@dataclass(frozen=True)
class ClosedTrade:
    """A round trip, with the backtest's trade fields (``engine.simulator.TRADE_DTYPE``).

    ``entry_ts``/``exit_ts`` are filled in by a run that knows the bars' times.
    """

    entry_idx: int
    exit_idx: int
    side: int
    entry_price: float
    exit_price: float
    size: float
    pnl: float
    ret: float
    bars_held: int
    exit_reason: str
    entry_ts: int | None = None
    exit_ts: int | None = None

    @classmethod
    def from_row(cls, row: npt.NDArray[np.float64]) -> ClosedTrade:
        return cls(
            entry_idx=int(row[COL_ENTRY_IDX]),
            exit_idx=int(row[COL_EXIT_IDX]),
            side=int(row[COL_SIDE]),
            entry_price=float(row[COL_ENTRY_PRICE]),
            exit_price=float(row[COL_EXIT_PRICE]),
            size=float(row[COL_SIZE]),
            pnl=float(row[COL_PNL]),
            ret=float(row[COL_RET]),
            bars_held=int(row[COL_BARS_HELD]),
            exit_reason=EXIT_REASONS[int(row[COL_REASON])],
        )


@dataclass(frozen=True)
class BrokerUpdate:
    """What one bar (or a flatten request) did, and the account after it."""

    bar_index: int
    fills: tuple[Fill, ...]
    trades: tuple[ClosedTrade, ...]
    side: int
    position: float
    cash: float
    equity: float


def config_vector(config: ExecutionLike | npt.ArrayLike) -> npt.NDArray[np.float64]:
    """The kernel config vector of an ExecutionOptions-like object, or a copy of a vector."""
    to_vector = getattr(config, "to_vector", None)
    raw = to_vector() if callable(to_vector) else config
    vec = np.array(raw, dtype=np.float64).reshape(-1)
    if vec.shape != (CFG_LENGTH,):
        raise ValueError(f"an execution config vector has {CFG_LENGTH} values")
    return vec


class PaperBroker:
    """A simulated account driven by the backtest kernel, one bar per ``on_bar`` call."""

    def __init__(self, config: ExecutionLike | npt.ArrayLike) -> None:
        self._cfg = config_vector(config)
        self._state: npt.NDArray[np.float64] = new_state(self._cfg)
        self._bar_index = -1
        # One-bar scratch arrays for the kernel, reused so a step allocates nothing big.
        self._prices = np.empty((4, 1), dtype=np.float64)
        self._target = np.zeros(1, dtype=np.int8)
        self._equity = np.empty(1, dtype=np.float64)
        self._position = np.empty(1, dtype=np.float64)
        self._trades = np.empty((2, TRADE_COLUMNS), dtype=np.float64)
        self._rows = (self._prices[0], self._prices[1], self._prices[2], self._prices[3])

    @property
    def config(self) -> npt.NDArray[np.float64]:
        return self._cfg.copy()

    @property
    def bar_index(self) -> int:
        """Index of the last bar processed (-1 before the first)."""
        return self._bar_index

    @property
    def side(self) -> int:
        return int(self._state[STATE_SIDE])

    @property
    def units(self) -> float:
        return float(self._state[STATE_UNITS])

    @property
    def position(self) -> float:
        """Signed units held (negative when short)."""
        return self.side * self.units

    @property
    def cash(self) -> float:
        return float(self._state[STATE_CASH])

    @property
    def entry_price(self) -> float | None:
        """Fill price of the open position, None while flat."""
        return float(self._state[STATE_ENTRY_PRICE]) if self.side else None

    def equity(self, mark: float) -> float:
        """Cash plus the position marked at ``mark``, as the simulator marks each close."""
        return self.cash + self.position * mark

    def prime(self, target: int) -> None:
        """Set the target of the bar before the first traded one (a warm-up's last bar).

        With next-open fills it is what the first bar's open fills, exactly as in a
        backtest whose earlier bars had produced that target. Only before the first bar.
        """
        if self._bar_index >= 0:
            raise RuntimeError("prime() is only allowed before the first bar")
        self._state[STATE_PENDING] = _sign(target)

    def on_bar(
        self, bar_index: int, open_: float, high: float, low: float, close: float, target: int
    ) -> BrokerUpdate:
        """Trade bar ``bar_index`` with the simulator's rules; ``target`` is this bar's.

        ``target`` is the strategy's target after this bar's close. With next-open fills
        it fills at the next bar's open (the broker keeps it for then); with
        ``fill_on_close`` it fills at this close. Prices must be a valid bar
        (``live.bars.bar_problem``); indices must increase.
        """
        if bar_index <= self._bar_index:
            raise ValueError(f"bar {bar_index} is not after bar {self._bar_index}")
        o, h, lo, c = self._rows
        o[0], h[0], lo[0], c[0] = open_, high, low, close
        self._target[0] = 1 if target > 0 else (-1 if target < 0 else 0)
        state = self._state
        count = simulate_range(
            o, h, lo, c, self._target, self._cfg, state, bar_index, -1,
            self._equity, self._position, self._trades, 0,
        )  # fmt: skip
        self._bar_index = bar_index
        side = int(state[STATE_SIDE])
        if count:
            trades = tuple(ClosedTrade.from_row(self._trades[i]) for i in range(count))
            fills = self._fills(bar_index, trades)
        elif side != 0 and int(state[STATE_ENTRY_IDX]) == bar_index:
            trades, fills = (), self._fills(bar_index, ())
        else:  # most bars: nothing filled (what _fills would find, without looking)
            trades, fills = (), ()
        return BrokerUpdate(
            bar_index=bar_index,
            fills=fills,
            trades=trades,
            side=side,
            position=float(self._position[0]),
            cash=float(state[STATE_CASH]),
            equity=float(self._equity[0]),
        )

    def close_position(self, price: float) -> BrokerUpdate:
        """Flatten at ``price`` on the last bar processed (a stop request that asks to).

        The exit is priced like the backtest's end-of-data exit (slippage, commission,
        reason ``end``). Afterwards the strategy stays flat until its target changes.
        """
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"price {price!r} must be a positive number")
        t = self._bar_index
        count = close_out(self._state, self._cfg, t, price, EXIT_END, self._trades, 0)
        trades = tuple(ClosedTrade.from_row(self._trades[i]) for i in range(count))
        return BrokerUpdate(
            bar_index=t,
            fills=self._fills(t, trades, entries=False),
            trades=trades,
            side=self.side,
            position=self.position,
            cash=self.cash,
            equity=self.cash + self.position * price,
        )

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to continue exactly: config, account and bar index (JSON-able)."""
        state: dict[str, float | int] = {}
        for name, value in zip(STATE_FIELDS, self._state.tolist(), strict=True):
            state[name] = int(value) if name in _INT_STATE else value
        return {
            "version": SNAPSHOT_VERSION,
            "bar_index": self._bar_index,
            "config": dict(zip(CONFIG_FIELDS, self._cfg.tolist(), strict=True)),
            "state": state,
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> PaperBroker:
        """Rebuild a broker from ``snapshot()``; ValueError if the data is not one."""
        if data.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported broker snapshot version {data.get('version')!r}")
        broker = cls(_vector(data.get("config"), CONFIG_FIELDS, "config"))
        broker._state = _vector(data.get("state"), STATE_FIELDS, "state")
        broker._bar_index = int(data["bar_index"])
        return broker

    def _fills(
        self, t: int, trades: tuple[ClosedTrade, ...], entries: bool = True
    ) -> tuple[Fill, ...]:
        """The bar's fills in execution order, rebuilt from its closed trades and the state.

        Only one trade can open per bar, so: each closed trade, preceded by its entry if
        that was on this bar (opened at the open and stopped in the bar), then the entry
        of the position still open if it was made on this bar. Fees use the kernel's
        formula (units x price x commission), so they equal what it charged. A flatten
        request passes ``entries=False``: its bar's entry was reported by ``on_bar``.
        """
        commission = float(self._cfg[CFG_COMMISSION])
        fills: list[Fill] = []
        for trade in trades:
            if entries and trade.entry_idx == t:
                fee = trade.size * trade.entry_price * commission
                fills.append(_entry(t, trade.side, trade.size, trade.entry_price, fee))
            fee = trade.size * trade.exit_price * commission
            fills.append(
                Fill(
                    bar_index=t,
                    kind="exit",
                    side="sell" if trade.side > 0 else "buy",
                    quantity=trade.size,
                    price=trade.exit_price,
                    fee=fee,
                    reason=trade.exit_reason,
                )
            )
        state = self._state
        if entries and self.side != 0 and int(state[STATE_ENTRY_IDX]) == t:
            fills.append(
                _entry(
                    t,
                    self.side,
                    self.units,
                    float(state[STATE_ENTRY_PRICE]),
                    float(state[STATE_ENTRY_FEE]),
                )
            )
        return tuple(fills)


def _entry(t: int, side: int, units: float, price: float, fee: float) -> Fill:
    return Fill(
        bar_index=t,
        kind="entry",
        side="buy" if side > 0 else "sell",
        quantity=units,
        price=price,
        fee=fee,
        reason="signal",
    )


def _sign(target: float) -> int:
    return 1 if target > 0 else (-1 if target < 0 else 0)


def _vector(values: Any, names: tuple[str, ...], what: str) -> npt.NDArray[np.float64]:
    if not isinstance(values, Mapping) or set(values) != set(names):
        raise ValueError(f"broker snapshot {what} must have exactly: {', '.join(names)}")
    vec = np.array([float(values[name]) for name in names], dtype=np.float64)
    if not np.isfinite(vec).all():
        raise ValueError(f"broker snapshot {what} has a non-finite value")
    return vec
