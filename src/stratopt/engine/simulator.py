"""Bar-by-bar backtest simulator: turns target positions into fills, trades and equity.

Semantics (the contract users rely on; keep the README's summary in step):

* ``targets[t]`` is the position wanted after seeing the close of bar ``t``: +1 long,
  -1 short, 0 flat (any positive/negative value counts as +1/-1).
* Fill timing. By default the order for ``targets[t]`` fills at the open of bar ``t + 1``
  (``targets[n - 1]`` therefore never fills). With ``fill_on_close`` it fills at the close
  of bar ``t``, except that no position is opened at the very last close (it could not be
  held for any time; exits there still happen).
* Direction. ``"long"`` treats a -1 target as flat, ``"short"`` treats +1 as flat, ``"both"``
  reverses by closing the open trade and then opening the opposite one at the same price.
  A target equal to the side already held does nothing (no re-sizing).
* Sizing. An entry commits ``position_size`` x current equity, commission included:
  ``units = position_size * equity / (fill_price * (1 + commission))``, so 1.0 never leaves
  negative cash on a long. No entry is made while equity is <= 0.
* Costs. Commission is ``commission`` x traded notional on every fill (entry and exit).
  Slippage moves every fill price against the trader by the fraction ``slippage``: buys
  fill at ``price * (1 + slippage)``, sells at ``price * (1 - slippage)``.
* Protective exits (fractions, 0 = off), levels from the *fill* price of the entry:
  stop-loss ``entry * (1 -/+ stop_loss)``, take-profit ``entry * (1 +/- take_profit)``,
  trailing stop ``best * (1 -/+ trailing_stop)`` where ``best`` is the most favourable
  price since entry, starting at the entry fill and updated with the open of each bar
  before the check and with the high (long) / low (short) after it.
  Each bar is checked in this order: a gap at the open through the stop (or trailing)
  level exits at the open; a gap through the target exits at the open; otherwise if the
  low/high reaches the stop level it exits at the level; otherwise if the high/low reaches
  the target it exits there. So when stop and target both lie inside one bar's range the
  stop wins (pessimistic). When the stop-loss and trailing levels coincide the exit is
  reported as a stop-loss. Slippage applies to these fills too.
* Entry bar. With open fills the new position is exposed to the rest of its entry bar, so
  the stop/target/trail are checked on the entry bar itself with that bar's high/low after
  the open fill (and may even fire at the open when slippage exceeds the stop distance).
  With ``fill_on_close`` the entry happens after the bar's range, so checks start on the
  next bar.
* After a protective exit the strategy stays flat until its target differs from the side
  that was stopped out; otherwise a still-long target would re-enter at the next open and
  churn commission on every bar.
* Equity is cash plus the position marked to each bar's close. A position still open after
  the last bar closes at the last close (with costs) with exit reason ``end``; the last
  equity value includes that exit, while ``position[n - 1]`` still shows the units held
  during the bar.
* Resumable runs. ``simulate_range`` advances an account held in a small float vector
  (layout ``STATE_*``) over any range of bars and stops; running adjacent ranges one after
  the other is identical to one run over their union, which is how paper trading steps
  the same kernel one bar at a time. A backtest (``simulate_into``) is a fresh account
  over all bars followed by the end-of-data exit (``close_out``); a live feed has no last
  bar, so it neither forces that exit nor refuses an entry at a close.
* Trades: ``pnl`` is net of both commissions; ``ret`` is ``pnl`` over the entry notional
  (``units * entry_price``); ``bars_held = exit_idx - entry_idx`` (0 for a trade opened and
  stopped inside one bar).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

if TYPE_CHECKING:
    from stratopt.engine.options import ExecutionOptions

DIRECTIONS: dict[str, int] = {"long": 1, "short": -1, "both": 0}

EXIT_SIGNAL, EXIT_STOP, EXIT_TARGET, EXIT_TRAIL, EXIT_END = 0, 1, 2, 3, 4
EXIT_REASONS: tuple[str, ...] = ("signal", "stop", "target", "trail", "end")

TRADE_DTYPE = np.dtype(
    [
        ("entry_idx", np.int64),
        ("exit_idx", np.int64),
        ("side", np.int8),
        ("entry_price", np.float64),
        ("exit_price", np.float64),
        ("size", np.float64),
        ("pnl", np.float64),
        ("ret", np.float64),
        ("bars_held", np.int64),
        ("exit_reason", np.int8),
    ]
)

# Column layout of the float64 trade buffer the kernel fills; it mirrors TRADE_DTYPE so the
# kernel can write one contiguous row per trade and stay free of record types.
COL_ENTRY_IDX, COL_EXIT_IDX, COL_SIDE, COL_ENTRY_PRICE, COL_EXIT_PRICE = 0, 1, 2, 3, 4
COL_SIZE, COL_PNL, COL_RET, COL_BARS_HELD, COL_REASON = 5, 6, 7, 8, 9
TRADE_COLUMNS = 10

# Positions in the float64 config vector handed to kernels (see ExecutionOptions.to_vector).
CFG_CASH, CFG_COMMISSION, CFG_SLIPPAGE, CFG_SIZE, CFG_DIRECTION = 0, 1, 2, 3, 4
CFG_FILL_ON_CLOSE, CFG_STOP_LOSS, CFG_TAKE_PROFIT, CFG_TRAILING = 5, 6, 7, 8
CFG_LENGTH = 9

# Positions in the float64 state vector of a resumable run (see simulate_range): the
# account, the side a protective exit blocked, the last target resolved and the target
# of the latest bar (what the next open fills). Integers are stored exactly as floats.
STATE_CASH, STATE_SIDE, STATE_UNITS, STATE_ENTRY_PRICE, STATE_ENTRY_FEE = 0, 1, 2, 3, 4
STATE_ENTRY_IDX, STATE_BEST, STATE_BLOCKED, STATE_LAST_TARGET, STATE_PENDING = 5, 6, 7, 8, 9
STATE_LENGTH = 10


@dataclass(frozen=True)
class SimResult:
    """Raw simulator output: per-bar equity and signed units, plus the closed trades."""

    equity: np.ndarray
    position: np.ndarray
    trades: np.ndarray


@njit(cache=True, nogil=True)
def _resolve_target(target: float, direction: int, blocked: int) -> tuple[int, int]:
    """Return (side wanted, updated block) for one target value.

    The block set by a protective exit lifts as soon as the target stops asking for the
    side that was stopped out.
    """
    side = 1 if target > 0 else (-1 if target < 0 else 0)
    if blocked != 0 and side != blocked:
        blocked = 0
    if blocked != 0 or (direction != 0 and side != direction):
        return 0, blocked
    return side, blocked


@njit(cache=True, nogil=True)
def _protective_exit(
    side: int,
    open_: float,
    high: float,
    low: float,
    entry: float,
    best: float,
    stop_loss: float,
    take_profit: float,
    trailing: float,
) -> tuple[float, int]:
    """Return (exit price before slippage, exit reason) for one bar, or (0, -1) if none."""
    if side > 0:
        stop = entry * (1.0 - stop_loss) if stop_loss > 0.0 else -np.inf
        trail = best * (1.0 - trailing) if trailing > 0.0 else -np.inf
        level = max(stop, trail)
        reason = EXIT_STOP if stop >= trail else EXIT_TRAIL
        target = entry * (1.0 + take_profit) if take_profit > 0.0 else np.inf
        if open_ <= level:
            return open_, reason
        if open_ >= target:
            return open_, EXIT_TARGET
        if low <= level:
            return level, reason
        if high >= target:
            return target, EXIT_TARGET
        return 0.0, -1
    stop = entry * (1.0 + stop_loss) if stop_loss > 0.0 else np.inf
    trail = best * (1.0 + trailing) if trailing > 0.0 else np.inf
    level = min(stop, trail)
    reason = EXIT_STOP if stop <= trail else EXIT_TRAIL
    target = entry * (1.0 - take_profit) if take_profit > 0.0 else -np.inf
    if open_ >= level:
        return open_, reason
    if open_ <= target:
        return open_, EXIT_TARGET
    if high >= level:
        return level, reason
    if low <= target:
        return target, EXIT_TARGET
    return 0.0, -1


@njit(cache=True, nogil=True)
def _close_trade(
    trades: np.ndarray,
    k: int,
    cash: float,
    side: int,
    units: float,
    entry_price: float,
    entry_fee: float,
    entry_idx: int,
    exit_idx: int,
    price: float,
    slippage: float,
    commission: float,
    reason: int,
) -> float:
    """Exit the whole position at ``price`` (before slippage), log it as row k, return cash."""
    fill = price * (1.0 - side * slippage)
    fee = units * fill * commission
    pnl = side * units * (fill - entry_price) - entry_fee - fee
    trades[k, COL_ENTRY_IDX] = entry_idx
    trades[k, COL_EXIT_IDX] = exit_idx
    trades[k, COL_SIDE] = side
    trades[k, COL_ENTRY_PRICE] = entry_price
    trades[k, COL_EXIT_PRICE] = fill
    trades[k, COL_SIZE] = units
    trades[k, COL_PNL] = pnl
    trades[k, COL_RET] = pnl / (units * entry_price)
    trades[k, COL_BARS_HELD] = exit_idx - entry_idx
    trades[k, COL_REASON] = reason
    return cash + side * units * fill - fee


@njit(cache=True, nogil=True)
def _rebalance(
    trades: np.ndarray,
    k: int,
    t: int,
    price: float,
    wanted: int,
    can_enter: bool,
    cfg: np.ndarray,
    state: tuple[float, int, float, float, float, int, float],
) -> tuple[int, tuple[float, int, float, float, float, int, float]]:
    """Move from the held side to ``wanted`` at ``price``: exit, then maybe enter.

    ``state`` is (cash, side, units, entry_price, entry_fee, entry_idx, best); returns the
    new trade count and state.
    """
    cash, side, units, entry_price, entry_fee, entry_idx, best = state
    slippage = cfg[CFG_SLIPPAGE]
    commission = cfg[CFG_COMMISSION]
    if side != 0:
        cash = _close_trade(
            trades, k, cash, side, units, entry_price, entry_fee, entry_idx,
            t, price, slippage, commission, EXIT_SIGNAL,
        )  # fmt: skip
        k += 1
        side = 0
        units = 0.0
    if wanted != 0 and cash > 0.0 and can_enter:
        entry_price = price * (1.0 + wanted * slippage)
        units = cfg[CFG_SIZE] * cash / (entry_price * (1.0 + commission))
        if units * entry_price <= 0.0:
            # Too little cash to buy anything representable (e.g. 5e-324): stay flat.
            return k, (cash, 0, 0.0, entry_price, entry_fee, entry_idx, best)
        entry_fee = units * entry_price * commission
        cash -= wanted * units * entry_price + entry_fee
        side = wanted
        entry_idx = t
        best = entry_price
    return k, (cash, side, units, entry_price, entry_fee, entry_idx, best)


@njit(cache=True, nogil=True)
def _run(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    targets: np.ndarray,
    cfg: np.ndarray,
    t0: int,
    final: int,
    equity: np.ndarray,
    position: np.ndarray,
    trades: np.ndarray,
    k: int,
    state: tuple[float, int, float, float, float, int, float],
    blocked: int,
    last_target: int,
    pending: int,
) -> tuple[int, tuple[float, int, float, float, float, int, float], int, int, int]:
    """The bar loop, the only one: bars ``t0 .. t0 + len(close) - 1`` from a given state.

    Row ``i`` of every array is bar ``t0 + i``. The account lives in locals (a tuple and
    three ints) rather than in the state vector so numba keeps it in registers; the
    wrappers below load and store it once per call. ``pending`` is the target of the bar
    before ``t0`` (what the open of bar ``t0`` fills). Targets are only resolved when they
    change: on a million bars that skip is a third of the run time. It is exact: an
    unchanged target wants the side already held, or flat after a skipped entry (a flat
    account's cash cannot change), or, after a protective exit, the stopped-out side, which
    the block keeps flat.
    """
    direction = int(cfg[CFG_DIRECTION])
    on_close = cfg[CFG_FILL_ON_CLOSE] != 0.0
    stop_loss = cfg[CFG_STOP_LOSS]
    take_profit = cfg[CFG_TAKE_PROFIT]
    trailing = cfg[CFG_TRAILING]
    protective = stop_loss > 0.0 or take_profit > 0.0 or trailing > 0.0
    m = close.shape[0]
    for i in range(m):
        t = t0 + i
        if not on_close:
            raw = targets[i - 1] if i > 0 else pending
            if raw != last_target:
                last_target = raw
                wanted, blocked = _resolve_target(raw, direction, blocked)
                if wanted != state[1]:
                    k, state = _rebalance(trades, k, t, open_[i], wanted, True, cfg, state)
        cash, side, units, entry_price, entry_fee, entry_idx, best = state
        if side != 0 and protective:
            best = max(best, open_[i]) if side > 0 else min(best, open_[i])
            level, reason = _protective_exit(
                side, open_[i], high[i], low[i], entry_price, best,
                stop_loss, take_profit, trailing,
            )  # fmt: skip
            if reason >= 0:
                cash = _close_trade(
                    trades, k, cash, side, units, entry_price, entry_fee, entry_idx,
                    t, level, cfg[CFG_SLIPPAGE], cfg[CFG_COMMISSION], reason,
                )  # fmt: skip
                k += 1
                blocked = side
                side = 0
                units = 0.0
            else:
                best = max(best, high[i]) if side > 0 else min(best, low[i])
            state = (cash, side, units, entry_price, entry_fee, entry_idx, best)
        if on_close:
            raw = targets[i]
            if raw != last_target:
                last_target = raw
                wanted, blocked = _resolve_target(raw, direction, blocked)
                if wanted != state[1]:
                    k, state = _rebalance(trades, k, t, close[i], wanted, t != final, cfg, state)
        held = state[1] * state[2]
        equity[i] = state[0] + held * close[i]
        position[i] = held
    if m > 0:
        pending = targets[m - 1]
    return k, state, blocked, last_target, pending


@njit(cache=True, nogil=True)
def new_state(cfg: np.ndarray) -> np.ndarray:
    """A fresh account for ``simulate_range``: all cash, flat, no block, no targets seen."""
    state = np.zeros(STATE_LENGTH, dtype=np.float64)
    state[STATE_CASH] = cfg[CFG_CASH]
    return state


@njit(cache=True, nogil=True)
def simulate_range(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    targets: np.ndarray,
    cfg: np.ndarray,
    state: np.ndarray,
    t0: int,
    final: int,
    equity: np.ndarray,
    position: np.ndarray,
    trades: np.ndarray,
    k: int,
) -> int:
    """Advance the account in ``state`` over bars ``t0 .. t0 + len(close) - 1``; return k.

    Row ``i`` of the price, target, equity and position arrays is bar ``t0 + i``; bar
    numbers are absolute so trade rows (from row ``k`` of ``trades``) and the entry index in
    ``state`` stay meaningful across calls. ``targets[i]`` is the target after the close of
    bar ``t0 + i``; the target of the bar before ``t0`` comes from ``state``. ``final`` is
    the index of the data's last bar, at whose close ``fill_on_close`` opens nothing; an
    open-ended feed passes -1. ``state`` (layout STATE_*) is read at the start and written
    at the end, so consecutive calls over adjacent ranges give exactly one call over their
    union. ``trades`` needs ``len(close) + 1`` free rows from ``k`` (every bar opens at
    most one trade, plus the position already open at ``t0``).
    """
    account = (
        state[STATE_CASH],
        int(state[STATE_SIDE]),
        state[STATE_UNITS],
        state[STATE_ENTRY_PRICE],
        state[STATE_ENTRY_FEE],
        int(state[STATE_ENTRY_IDX]),
        state[STATE_BEST],
    )
    k, account, blocked, last_target, pending = _run(
        open_, high, low, close, targets, cfg, t0, final, equity, position, trades, k,
        account, int(state[STATE_BLOCKED]), int(state[STATE_LAST_TARGET]),
        int(state[STATE_PENDING]),
    )  # fmt: skip
    cash, side, units, entry_price, entry_fee, entry_idx, best = account
    state[STATE_CASH] = cash
    state[STATE_SIDE] = side
    state[STATE_UNITS] = units
    state[STATE_ENTRY_PRICE] = entry_price
    state[STATE_ENTRY_FEE] = entry_fee
    state[STATE_ENTRY_IDX] = entry_idx
    state[STATE_BEST] = best
    state[STATE_BLOCKED] = blocked
    state[STATE_LAST_TARGET] = last_target
    state[STATE_PENDING] = pending
    return k


@njit(cache=True, nogil=True)
def close_out(
    state: np.ndarray,
    cfg: np.ndarray,
    t: int,
    price: float,
    reason: int,
    trades: np.ndarray,
    k: int,
) -> int:
    """Close any open position in ``state`` at ``price`` (before slippage) on bar ``t``.

    The end-of-data exit of a backtest, and a live run's request to flatten. Costs apply
    as on any fill. Like a protective exit it blocks the closed side, so the strategy stays
    flat until its target changes. Returns the new trade count (k or k + 1).
    """
    side = int(state[STATE_SIDE])
    if side == 0:
        return k
    state[STATE_CASH] = _close_trade(
        trades, k, state[STATE_CASH], side, state[STATE_UNITS], state[STATE_ENTRY_PRICE],
        state[STATE_ENTRY_FEE], int(state[STATE_ENTRY_IDX]), t, price,
        cfg[CFG_SLIPPAGE], cfg[CFG_COMMISSION], reason,
    )  # fmt: skip
    state[STATE_SIDE] = 0.0
    state[STATE_UNITS] = 0.0
    state[STATE_BLOCKED] = side
    return k + 1


@njit(cache=True, nogil=True)
def simulate_into(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    targets: np.ndarray,
    cfg: np.ndarray,
    equity: np.ndarray,
    position: np.ndarray,
    trades: np.ndarray,
) -> int:
    """Run a whole backtest into caller-owned buffers and return the number of trades.

    A fresh account over bars ``[0, n)``, then the end-of-data exit at the last close.
    Buffers are passed in so the sweep can reuse per-iteration scratch space and the hot
    loop never allocates. ``trades`` needs ``len(close)`` rows: at most one entry per bar.
    """
    n = close.shape[0]
    state = new_state(cfg)
    k = simulate_range(
        open_, high, low, close, targets, cfg, state, 0, n - 1, equity, position, trades, 0
    )
    if state[STATE_SIDE] != 0.0:
        k = close_out(state, cfg, n - 1, close[n - 1], EXIT_END, trades, k)
        equity[n - 1] = state[STATE_CASH]
    return k


def trades_from_buffer(buffer: np.ndarray) -> np.ndarray:
    """Convert the kernel's float64 trade rows into the public structured array."""
    trades = np.empty(buffer.shape[0], dtype=TRADE_DTYPE)
    for column, name in enumerate(TRADE_DTYPE.names or ()):
        trades[name] = buffer[:, column]
    return trades


def as_targets(targets: np.ndarray) -> np.ndarray:
    """Coerce any numeric target array to contiguous int8 in {-1, 0, 1} (no copy if already)."""
    arr = np.asarray(targets)
    if arr.dtype == np.int8:
        return np.ascontiguousarray(arr)
    return np.ascontiguousarray(np.sign(np.nan_to_num(arr, nan=0.0)).astype(np.int8))


def simulate(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    targets: np.ndarray,
    cfg: ExecutionOptions | None = None,
) -> SimResult:
    """Backtest one target-position array over OHLC prices (semantics in the module doc)."""
    if cfg is None:
        from stratopt.engine.options import ExecutionOptions  # it imports this module

        cfg = ExecutionOptions()
    o, h, lo, c = (np.ascontiguousarray(a, dtype=np.float64) for a in (open_, high, low, close))
    n = c.shape[0]
    wanted = as_targets(targets)
    if any(a.shape[0] != n for a in (o, h, lo, wanted)):
        raise ValueError("open, high, low, close and targets must have the same length")
    equity = np.empty(n, dtype=np.float64)
    position = np.empty(n, dtype=np.float64)
    buffer = np.empty((n, TRADE_COLUMNS), dtype=np.float64)
    count = simulate_into(o, h, lo, c, wanted, cfg.to_vector(), equity, position, buffer)
    return SimResult(equity=equity, position=position, trades=trades_from_buffer(buffer[:count]))
