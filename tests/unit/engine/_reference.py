"""A slow, plain-Python backtester written from the semantics, to check the numba one.

Deliberately structured differently (a position object, event helpers, no buffers) so a
shared mistake is unlikely; only the price-level formulas are written the same way, since a
different rounding of a level would flip exact-touch cases and make comparisons flaky.
"""

from __future__ import annotations

from dataclasses import dataclass, field

REASONS = {"signal": 0, "stop": 1, "target": 2, "trail": 3, "end": 4}


@dataclass
class Position:
    side: int
    units: float
    entry_price: float
    entry_fee: float
    entry_idx: int
    best: float


@dataclass
class Book:
    cash: float
    pos: Position | None = None
    latched: int = 0
    trades: list[dict[str, float]] = field(default_factory=list)


def _sign(x: float) -> int:
    return (x > 0) - (x < 0)


def _permitted(side: int, direction: str) -> bool:
    return (
        direction == "both"
        or (side == 1 and direction == "long")
        or (side == -1 and direction == "short")
    )


def _fill(raw: float, buying: bool, slippage: float) -> float:
    return raw * (1 + slippage) if buying else raw * (1 - slippage)


def _exit(book: Book, t: int, raw: float, reason: str, opts: dict) -> None:
    pos = book.pos
    assert pos is not None
    price = _fill(raw, buying=pos.side == -1, slippage=opts["slippage"])
    fee = pos.units * price * opts["commission"]
    if pos.side == 1:
        book.cash += pos.units * price - fee
        gross = pos.units * (price - pos.entry_price)
    else:
        book.cash -= pos.units * price + fee
        gross = pos.units * (pos.entry_price - price)
    pnl = gross - pos.entry_fee - fee
    book.trades.append(
        {
            "entry_idx": pos.entry_idx,
            "exit_idx": t,
            "side": pos.side,
            "entry_price": pos.entry_price,
            "exit_price": price,
            "size": pos.units,
            "pnl": pnl,
            "ret": pnl / (pos.units * pos.entry_price),
            "bars_held": t - pos.entry_idx,
            "exit_reason": REASONS[reason],
        }
    )
    book.pos = None


def _enter(book: Book, t: int, raw: float, side: int, opts: dict) -> None:
    if book.cash <= 0:
        return
    price = _fill(raw, buying=side == 1, slippage=opts["slippage"])
    units = opts["position_size"] * book.cash / (price * (1 + opts["commission"]))
    fee = units * price * opts["commission"]
    if side == 1:
        book.cash -= units * price + fee
    else:
        book.cash += units * price - fee
    book.pos = Position(side, units, price, fee, t, price)


def _act_on_target(
    book: Book, t: int, raw: float, target: float, may_enter: bool, opts: dict
) -> None:
    wanted = _sign(target)
    if book.latched and wanted != book.latched:
        book.latched = 0
    if book.latched or not _permitted(wanted, opts["direction"]):
        wanted = 0
    held = book.pos.side if book.pos else 0
    if wanted == held:
        return
    if book.pos:
        _exit(book, t, raw, "signal", opts)
    if wanted and may_enter:
        _enter(book, t, raw, wanted, opts)


def _levels(pos: Position, opts: dict) -> tuple[float | None, str, float | None]:
    """(protective stop level or None, its reason, take-profit level or None)."""
    sl, tp, tr = opts["stop_loss"], opts["take_profit"], opts["trailing_stop"]
    if pos.side == 1:
        loss = pos.entry_price * (1.0 - sl) if sl > 0 else None
        trail = pos.best * (1.0 - tr) if tr > 0 else None
        target = pos.entry_price * (1.0 + tp) if tp > 0 else None
        candidates = [x for x in (loss, trail) if x is not None]
        stop = max(candidates) if candidates else None
    else:
        loss = pos.entry_price * (1.0 + sl) if sl > 0 else None
        trail = pos.best * (1.0 + tr) if tr > 0 else None
        target = pos.entry_price * (1.0 - tp) if tp > 0 else None
        candidates = [x for x in (loss, trail) if x is not None]
        stop = min(candidates) if candidates else None
    reason = "stop" if loss is not None and loss == stop else "trail"
    return stop, reason, target


def _protect(book: Book, t: int, o: float, h: float, lo: float, opts: dict) -> None:
    pos = book.pos
    if pos is None:
        return
    if not (opts["stop_loss"] > 0 or opts["take_profit"] > 0 or opts["trailing_stop"] > 0):
        return
    pos.best = max(pos.best, o) if pos.side == 1 else min(pos.best, o)
    stop, reason, target = _levels(pos, opts)
    adverse = (lambda p, lvl: p <= lvl) if pos.side == 1 else (lambda p, lvl: p >= lvl)
    favour = (lambda p, lvl: p >= lvl) if pos.side == 1 else (lambda p, lvl: p <= lvl)
    worst_in_bar = lo if pos.side == 1 else h
    best_in_bar = h if pos.side == 1 else lo
    if stop is not None and adverse(o, stop):
        _exit(book, t, o, reason, opts)
    elif target is not None and favour(o, target):
        _exit(book, t, o, "target", opts)
    elif stop is not None and adverse(worst_in_bar, stop):
        _exit(book, t, stop, reason, opts)
    elif target is not None and favour(best_in_bar, target):
        _exit(book, t, target, "target", opts)
    else:
        pos.best = max(pos.best, h) if pos.side == 1 else min(pos.best, lo)
    if book.pos is None:
        book.latched = pos.side


def reference_simulate(
    o: list[float],
    h: list[float],
    lo: list[float],
    c: list[float],
    targets: list[int],
    opts: dict,
) -> tuple[list[float], list[float], list[dict[str, float]]]:
    """(equity, signed units, trades) bar by bar, following the simulator docstring."""
    n = len(c)
    book = Book(cash=opts["initial_cash"])
    equity: list[float] = []
    units: list[float] = []
    for t in range(n):
        if not opts["fill_on_close"] and t > 0:
            _act_on_target(book, t, o[t], targets[t - 1], True, opts)
        _protect(book, t, o[t], h[t], lo[t], opts)
        if opts["fill_on_close"]:
            _act_on_target(book, t, c[t], targets[t], t < n - 1, opts)
        held = book.pos.side * book.pos.units if book.pos else 0.0
        units.append(held)
        equity.append(book.cash + held * c[t])
    if book.pos is not None:
        _exit(book, n - 1, c[n - 1], "end", opts)
        equity[-1] = book.cash
    return equity, units, book.trades
