"""A running strategy's performance, kept up to date in O(1) time and memory per bar.

``PerformanceTracker`` folds each ``StepResult`` of a ``StrategyRun`` into running sums, so
``metrics()`` answers at any moment with the figures a backtest reports
(``engine.metrics``), without an equity array that grows with the run. Pure: no clock, no
I/O; ``snapshot()`` is a small JSON-able dict and ``restore()`` continues exactly.

Every name of ``engine.metrics.METRIC_NAMES`` is maintained, with the engine's definitions
(its module docstring): the same returns (``equity[t] / equity[t-1] - 1`` with the first
bar against the initial cash, 0 once the account is dead), sample std with ddof 1 and the
1e-12 zero-volatility floor, downside deviation over all bars, drawdowns from a peak that
starts at the initial cash (computed with the same multiply-by-inverse-peak, so bit for
bit), trade statistics on ``ret`` and ``pnl`` exactly as ``summarize`` splits them, and
0.0 for every undefined value. How each one is kept:

* sums: returns (compensated, for the mean), squared downside returns, squared drawdowns
  (ulcer index), bars in the market, trade returns, P&L, bars held, win/loss counts;
* Welford's running mean and sum of squared deviations for the two sample stds (bar
  returns, trade returns), where the engine makes two passes: equal to rounding;
* running maxima and counters: peak, max drawdown, bars under water, best/worst trade;
* first and last close for ``buy_and_hold_return`` (pass ``close=`` to ``update``).

What differs from a backtest, and why:

* ``periods_per_year`` (when not given) is inferred from the median bar spacing like
  ``engine.metrics.infer_periods_per_year``, but from a histogram of the distinct spacings
  seen so far (at most ``MAX_SPACINGS`` distinct values; later new values are not
  counted). For any feed with at most that many distinct gaps, every regular bar feed,
  missing bars and weekends included, it is the median of all gaps, which the engine
  approximates with 2,001 evenly spaced gaps: the same spacing. Only the annualised
  metrics (cagr, annual_volatility, sharpe, sortino, calmar) depend on it, by a final
  factor, so a refined estimate applies to the whole run at once. Until the second bar
  the engine's fallback of 365.25 applies.
* CAGR follows the engine (years = bars / periods_per_year), not the calendar time between
  the first and last bar, so that a replay and a backtest agree.
* The newest bar stays *pending* until the next one arrives, so that a second result for
  the same bar, the one ``StrategyRun.close_position()`` returns when a stop flattens the
  position at that bar's close, restates that bar instead of adding one: its equity
  replaces the bar's, its trades are added, and the bar still counts as in the market, as
  the backtest's end-of-data exit does. So a tracker fed every step and then the
  flattening result reports exactly the metrics of a backtest over the same bars.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol

from stratopt.engine.metrics import (
    DEFAULT_PERIODS_PER_YEAR,
    METRIC_NAMES,
    SECONDS_PER_YEAR,
    ZERO_VOLATILITY,
)
from stratopt.live.runner import StepResult

SNAPSHOT_VERSION = 1

# Distinct bar spacings remembered for the periods-per-year estimate (see module docstring).
MAX_SPACINGS = 64

# The account figures (besides the metrics) that ``figures()`` reports and alert rules may
# name; ``position`` is the side (1 long, -1 short, 0 flat) as in PerformanceSnapshot.
ACCOUNT_FIGURES: tuple[str, ...] = (
    "equity",
    "final_equity",
    "cash",
    "position",
    "position_quantity",
    "realized_pnl",
    "unrealized_pnl",
    "drawdown",
    "bars_processed",
)

# Float state, in snapshot order; all are finite, so the snapshot is plain JSON.
_FLOATS: tuple[str, ...] = (
    "initial_cash",
    "prev_equity",
    "ret_sum",
    "ret_comp",
    "ret_mean",
    "ret_m2",
    "down_sq",
    "peak",
    "inv_peak",
    "max_dd",
    "dd_sq",
    "gross_profit",
    "gross_loss",
    "win_sum",
    "loss_sum",
    "best",
    "worst",
    "tret_sum",
    "tret_mean",
    "tret_m2",
    "held_sum",
    "p_equity",
    "cash",
    "position_quantity",
    "realized_pnl",
    "unrealized_pnl",
    "drawdown",
)
_INTS: tuple[str, ...] = (
    "n",
    "in_market",
    "underwater",
    "longest",
    "n_trades",
    "n_wins",
    "n_losses",
    "p_index",
    "p_in_market",
    "side",
)
_OPTIONAL: tuple[str, ...] = (
    "periods_per_year",
    "first_ts",
    "last_ts",
    "first_close",
    "last_close",
)


class PerformanceTracker:
    """Backtest metrics of a live run, updated bar by bar (see the module docstring).

    ``periods_per_year`` None or 0 means "infer from the bar spacing", as in
    ``ExecutionOptions``. Not thread-safe; the run's owner calls it.
    """

    def __init__(self, initial_cash: float, periods_per_year: float | None = None) -> None:
        initial = float(initial_cash)
        if not (math.isfinite(initial) and initial > 0):
            raise ValueError(f"initial cash {initial_cash!r} must be a positive number")
        ppy = float(periods_per_year) if periods_per_year else None
        if ppy is not None and not (math.isfinite(ppy) and ppy > 0):
            raise ValueError(f"periods_per_year {periods_per_year!r} must be positive")
        self.initial_cash = initial
        self.periods_per_year = ppy
        # Committed bars: every bar before the pending one.
        self.n = 0
        self.prev_equity = initial
        self.ret_sum = 0.0
        self.ret_comp = 0.0
        self.ret_mean = 0.0
        self.ret_m2 = 0.0
        self.down_sq = 0.0
        self.peak = initial
        self.inv_peak = 1.0 / initial
        self.max_dd = 0.0
        self.dd_sq = 0.0
        self.underwater = 0
        self.longest = 0
        self.in_market = 0
        # Trades (never pending: a closed trade is final).
        self.n_trades = 0
        self.n_wins = 0
        self.n_losses = 0
        self.gross_profit = 0.0
        self.gross_loss = 0.0
        self.win_sum = 0.0
        self.loss_sum = 0.0
        self.best = 0.0
        self.worst = 0.0
        self.tret_sum = 0.0
        self.tret_mean = 0.0
        self.tret_m2 = 0.0
        self.held_sum = 0.0
        # The pending (newest) bar, -1 before the first, and the account after it.
        self.p_index = -1
        self.p_equity = initial
        self.p_in_market = 0
        self.cash = initial
        self.side = 0
        self.position_quantity = 0.0
        self.realized_pnl = 0.0
        self.unrealized_pnl = 0.0
        self.drawdown = 0.0
        # Time and prices.
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.first_close: float | None = None
        self.last_close: float | None = None
        self.spacings: dict[int, int] = {}

    # -- feeding -----------------------------------------------------------------------------

    @property
    def bars_processed(self) -> int:
        return self.p_index + 1

    def update(self, step: StepResult, close: float | None = None) -> None:
        """Fold in the result of the next bar, or restate the newest bar (a flatten).

        ``close`` is the bar's close, needed only for ``buy_and_hold_return`` (0.0 when
        no close was ever given). Bars must arrive in order: ValueError for a bar that
        was already counted or one that skips a bar, so nothing is counted twice or lost.
        A result for the newest bar again must come from ``StrategyRun.close_position()``
        (it may not open a position).
        """
        t = step.bar_index
        if t == self.p_index and t >= 0:
            if any(f.kind == "entry" for f in step.fills):
                raise ValueError(f"bar {t} was already counted; only a flatten may restate it")
            self.p_in_market = self.p_in_market or int(step.position != 0.0)
        elif t == self.p_index + 1:
            if self.p_index >= 0:
                self._commit()
                assert self.last_ts is not None
                self._add_spacing(step.ts - self.last_ts)
            else:
                self.first_ts = step.ts
            self.p_index = t
            self.last_ts = step.ts
            self.p_in_market = int(step.position != 0.0)
        else:
            expected = self.p_index + 1
            raise ValueError(
                f"bar {t} is out of order: the tracker expects bar {expected}"
                + (f" (or a flatten of bar {self.p_index})" if self.p_index >= 0 else "")
            )
        self.p_equity = float(step.equity)
        self.cash = float(step.cash)
        self.side = int(step.side)
        self.position_quantity = float(step.position)
        self.realized_pnl = float(step.realized_pnl)
        self.unrealized_pnl = float(step.unrealized_pnl)
        self.drawdown = float(step.drawdown)
        if close is not None:
            price = float(close)
            if self.first_close is None:
                self.first_close = price
            self.last_close = price
        for trade in step.trades:
            self._add_trade(trade.pnl, trade.ret, trade.bars_held)

    def _commit(self) -> None:
        """Fold the pending bar into the committed sums (it is final once a newer one came)."""
        _fold(self, self.p_equity, self.p_in_market, self.initial_cash)  # in place: no copy

    def _add_spacing(self, gap: int) -> None:
        if gap in self.spacings:
            self.spacings[gap] += 1
        elif len(self.spacings) < MAX_SPACINGS:
            self.spacings[gap] = 1

    def _add_trade(self, pnl: float, ret: float, bars_held: int) -> None:
        self.n_trades += 1
        self.tret_sum += ret
        delta = ret - self.tret_mean
        self.tret_mean += delta / self.n_trades
        self.tret_m2 += delta * (ret - self.tret_mean)
        self.held_sum += bars_held
        if pnl > 0.0:
            self.n_wins += 1
            self.gross_profit += pnl
            self.win_sum += ret
            self.best = max(self.best, ret)
        elif pnl < 0.0:
            self.n_losses += 1
            self.gross_loss -= pnl
            self.loss_sum += ret
            self.worst = min(self.worst, ret)

    # -- reading -----------------------------------------------------------------------------

    def inferred_periods_per_year(self) -> float:
        """The annualisation factor in use: the given one, or the bar spacing's."""
        if self.periods_per_year is not None:
            return self.periods_per_year
        total = sum(self.spacings.values())
        if total == 0:
            return DEFAULT_PERIODS_PER_YEAR
        ordered = sorted(self.spacings.items())
        if total % 2:
            median = float(_nth(ordered, total // 2))
        else:
            median = (float(_nth(ordered, total // 2 - 1)) + float(_nth(ordered, total // 2))) / 2
        spacing = median / 1e9
        return SECONDS_PER_YEAR / spacing if spacing > 0 else DEFAULT_PERIODS_PER_YEAR

    def metrics(self) -> dict[str, float]:
        """Every metric of ``METRIC_NAMES`` over the bars so far (all 0.0 before the first)."""
        if self.p_index < 0:
            return dict.fromkeys(METRIC_NAMES, 0.0)
        st = _BarStats.of(self)
        st.fold(self.p_equity, self.p_in_market, self.initial_cash)
        n = st.n
        ppy = self.inferred_periods_per_year()
        root_ppy = math.sqrt(ppy)
        initial, final = self.initial_cash, self.p_equity
        ret_mean = (st.ret_sum + st.ret_comp) / n
        ret_std = math.sqrt(st.ret_m2 / (n - 1)) if n > 1 else 0.0
        if ret_std < ZERO_VOLATILITY:
            ret_std = 0.0
        downside = math.sqrt(st.down_sq / n)
        k = self.n_trades
        cagr = _cagr(final, initial, n / ppy)
        win_rate = self.n_wins / k if k > 0 else 0.0
        avg_win = _finite(self.win_sum / self.n_wins) if self.n_wins > 0 else 0.0
        avg_loss = _finite(self.loss_sum / self.n_losses) if self.n_losses > 0 else 0.0
        trade_mean = self.tret_sum / k if k > 0 else 0.0
        trade_std = math.sqrt(self.tret_m2 / (k - 1)) if k > 1 else 0.0
        kelly = 0.0
        if self.n_wins > 0 and self.n_losses > 0:
            payoff = _div(avg_win, -avg_loss)
            kelly = _finite(win_rate - _div(1.0 - win_rate, payoff))
        bnh = 0.0
        if self.first_close is not None and self.last_close is not None:
            bnh = _finite(_div(self.last_close, self.first_close) - 1.0)
        values = {
            "total_return": _finite(final / initial - 1.0),
            "cagr": cagr,
            "annual_volatility": _finite(ret_std * root_ppy),
            "sharpe": 0.0 if ret_std == 0.0 else _finite(ret_mean / ret_std * root_ppy),
            "sortino": 0.0 if downside == 0.0 else _finite(ret_mean / downside * root_ppy),
            "calmar": 0.0 if st.max_dd == 0.0 else _finite(cagr / st.max_dd),
            "max_drawdown": _finite(st.max_dd),
            "max_drawdown_duration": float(st.longest),
            "ulcer_index": _finite(math.sqrt(st.dd_sq / n)),
            "win_rate": win_rate,
            "profit_factor": (
                0.0 if self.gross_loss == 0.0 else _finite(self.gross_profit / self.gross_loss)
            ),
            "expectancy": _finite(trade_mean),
            "avg_win": avg_win,
            "avg_loss": avg_loss,
            "largest_win": _finite(self.best),
            "largest_loss": _finite(self.worst),
            "num_trades": float(k),
            "exposure": st.in_market / n,
            "sqn": 0.0 if trade_std == 0.0 else _finite(math.sqrt(k) * trade_mean / trade_std),
            "kelly": kelly,
            "avg_trade_duration": self.held_sum / k if k > 0 else 0.0,
            "buy_and_hold_return": bnh,
            "winning_trades": float(self.n_wins),
            "losing_trades": float(self.n_losses),
            "trades_per_month": _finite(k * ppy / (12.0 * n)),
        }
        return {name: values[name] for name in METRIC_NAMES}

    def to_dict(self) -> dict[str, Any]:
        """The account figures of a PerformanceSnapshot after the newest bar (JSON-able).

        ``position`` is the side (1 long, -1 short, 0 flat), ``position_quantity`` the
        signed units; ``last_bar_ts`` is epoch nanoseconds (None before the first bar).
        """
        return {
            "equity": self.p_equity,
            "cash": self.cash,
            "position": self.side,
            "position_quantity": self.position_quantity,
            "realized_pnl": self.realized_pnl,
            "unrealized_pnl": self.unrealized_pnl,
            "drawdown": self.drawdown,
            "bars_processed": self.bars_processed,
            "last_bar_ts": self.last_ts,
        }

    def figures(self) -> dict[str, float]:
        """``metrics()`` plus the account figures, as floats: what alert rules can name.

        The keys are exactly ``alerts.KNOWN_METRICS`` (``final_equity`` is the equity, as
        in the Metrics message).
        """
        out = self.metrics()
        account = self.to_dict()
        for name in ACCOUNT_FIGURES:
            out[name] = float(self.p_equity if name == "final_equity" else account[name])
        return out

    # -- persistence -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole state as a small JSON-able dict (a few hundred bytes)."""
        out: dict[str, Any] = {"version": SNAPSHOT_VERSION}
        for name in _FLOATS:
            out[name] = float(getattr(self, name))
        for name in _INTS:
            out[name] = int(getattr(self, name))
        for name in _OPTIONAL:
            out[name] = getattr(self, name)
        out["spacings"] = [[gap, count] for gap, count in sorted(self.spacings.items())]
        return out

    @classmethod
    def restore(cls, data: Mapping[str, Any]) -> PerformanceTracker:
        """A tracker that continues exactly where ``snapshot()`` was taken."""
        if not isinstance(data, Mapping) or data.get("version") != SNAPSHOT_VERSION:
            version = data.get("version") if isinstance(data, Mapping) else None
            raise ValueError(f"unsupported performance snapshot version {version!r}")
        missing = [n for n in (*_FLOATS, *_INTS, *_OPTIONAL, "spacings") if n not in data]
        if missing:
            raise ValueError(f"performance snapshot lacks {', '.join(missing)}")
        tracker = cls(float(data["initial_cash"]), data["periods_per_year"])
        for name in _FLOATS:
            value = float(data[name])
            if not math.isfinite(value):
                raise ValueError(f"performance snapshot {name} is not finite")
            setattr(tracker, name, value)
        for name in _INTS:
            setattr(tracker, name, int(data[name]))
        for name in ("first_ts", "last_ts"):
            setattr(tracker, name, None if data[name] is None else int(data[name]))
        for name in ("first_close", "last_close"):
            setattr(tracker, name, None if data[name] is None else float(data[name]))
        tracker.spacings = {int(gap): int(count) for gap, count in data["spacings"]}
        return tracker


class _BarStats:
    """The committed per-bar sums, folded one bar at a time (engine's formulas)."""

    __slots__ = (
        "dd_sq",
        "down_sq",
        "in_market",
        "inv_peak",
        "longest",
        "max_dd",
        "n",
        "peak",
        "prev_equity",
        "ret_comp",
        "ret_m2",
        "ret_mean",
        "ret_sum",
        "underwater",
    )  # fmt: skip

    n: int
    prev_equity: float
    ret_sum: float
    ret_comp: float
    ret_mean: float
    ret_m2: float
    down_sq: float
    peak: float
    inv_peak: float
    max_dd: float
    dd_sq: float
    underwater: int
    longest: int
    in_market: int

    @classmethod
    def of(cls, tracker: PerformanceTracker) -> _BarStats:
        st = cls()
        for name in cls.__slots__:
            setattr(st, name, getattr(tracker, name))
        return st

    def store(self, tracker: PerformanceTracker) -> None:
        for name in self.__slots__:
            setattr(tracker, name, getattr(self, name))

    def fold(self, equity: float, in_market: int, initial: float) -> None:
        _fold(self, equity, in_market, initial)


class _Sums(Protocol):
    """What `_fold` reads and writes: the names `_BarStats` and the tracker share."""

    n: int
    prev_equity: float
    ret_sum: float
    ret_comp: float
    ret_mean: float
    ret_m2: float
    down_sq: float
    peak: float
    inv_peak: float
    max_dd: float
    dd_sq: float
    underwater: int
    longest: int
    in_market: int


def _fold(st: _Sums, equity: float, in_market: int, initial: float) -> None:
    """One bar into the committed sums of `st` (a `_BarStats`, or the tracker itself)."""
    # Return: the first bar against the initial cash; 0 after a dead account.
    if st.n == 0:
        r = equity / initial - 1.0
    else:
        prev = st.prev_equity
        r = equity / prev - 1.0 if prev > 0.0 else 0.0
    st.n += 1
    # Neumaier-compensated sum for the mean; Welford for the sample variance.
    s = st.ret_sum + r
    if abs(st.ret_sum) >= abs(r):
        st.ret_comp += (st.ret_sum - s) + r
    else:
        st.ret_comp += (r - s) + st.ret_sum
    st.ret_sum = s
    delta = r - st.ret_mean
    st.ret_mean += delta / st.n
    st.ret_m2 += delta * (r - st.ret_mean)
    neg = min(r, 0.0)
    st.down_sq += neg * neg
    # Drawdown exactly as engine.metrics._drawdown_stats computes it.
    if equity > st.peak:
        st.peak = equity
        st.inv_peak = 1.0 / equity
    dd = 1.0 - equity * st.inv_peak
    st.max_dd = max(st.max_dd, dd)
    st.dd_sq += dd * dd
    st.underwater = st.underwater + 1 if equity < st.peak else 0
    st.longest = max(st.longest, st.underwater)
    st.in_market += in_market
    st.prev_equity = equity


def _nth(ordered: list[tuple[int, int]], index: int) -> int:
    """The ``index``-th value (0-based) of a sorted histogram of (value, count) pairs."""
    seen = 0
    for value, count in ordered:
        seen += count
        if index < seen:
            return value
    raise IndexError(index)


def _finite(value: float) -> float:
    """The engine's 'undefined is 0.0' for inf and NaN."""
    return value if math.isfinite(value) else 0.0


def _div(a: float, b: float) -> float:
    """IEEE division, as the compiled engine divides: x/0 is +-inf (NaN for 0/0)."""
    if b != 0.0:
        return a / b
    if a == 0.0 or math.isnan(a):
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _cagr(final: float, initial: float, years: float) -> float:
    """engine.metrics.cagr: -1 once wiped out; overflow (inf) and NaN are 0.0."""
    if final <= 0.0:
        return -1.0
    ratio = final / initial
    if ratio == 0.0:  # underflow: log is -inf, so the growth is -1
        return -1.0
    try:
        return _finite(math.exp(math.log(ratio) / years) - 1.0)
    except OverflowError:
        return 0.0
