"""Performance metrics of a simulated run, shared by single backtests and grid sweeps.

Conventions (the API and optimizer rely on them):

* Bar returns are ``equity[t] / equity[t-1] - 1`` with ``equity[-1] = initial_cash``, so a
  run of n bars has n returns and the first one already carries any fill made on bar 0.
  Once equity is <= 0 the account is dead and later returns count as 0.
* Annualization uses ``periods_per_year``; when it is not given it is inferred from the
  median spacing of ``ts`` on a 365.25-day calendar (crypto trades every day), e.g. daily
  bars give 365.25 and hourly bars 8766. Stock users should pass 252 (daily) explicitly.
  With fewer than two timestamps it falls back to 365.25 (one bar = one day).
* Fractions, not percent: 0.12 means 12 %. ``max_drawdown`` and ``ulcer_index`` are
  positive magnitudes. Risk-free rate is 0.
* Trade statistics use per-trade returns (``ret``, net of costs, over entry notional), so
  they compare across account sizes; ``profit_factor`` uses currency P&L.
* Durations (``max_drawdown_duration``, ``avg_trade_duration``) are in bars.
* Undefined values are 0.0, never NaN or inf, so results stay JSON-safe: no trades, zero
  volatility, no losing trades (profit factor, Kelly), no downside (Sortino), no drawdown
  (Calmar). Any other non-finite result (e.g. CAGR overflow over a tiny span) is 0.0 too.

* Formulas: CAGR over ``n_bars / periods_per_year`` years; volatility is the sample std
  (ddof 1) of bar returns x sqrt(periods_per_year), and a per-bar std below 1e-12 counts as
  zero; Sharpe = mean / std x sqrt(ppy); Sortino uses sqrt(mean(min(r, 0)^2)) over all
  bars; drawdowns are measured from running peaks that start at the initial cash.

Every metric is one small numba function of a ``Summary``, the statistics gathered once
(three passes over the equity curve, the last one reading the positions too, and two over
the trades), because
sweeps evaluate them thousands of times and a pass per metric over a million-bar curve
would dominate the backtest time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Literal, NamedTuple

import numpy as np
from numba import njit

from stratopt.engine.simulator import COL_BARS_HELD, COL_PNL, COL_RET

SECONDS_PER_YEAR = 365.25 * 86_400.0
DEFAULT_PERIODS_PER_YEAR = 365.25
_SPACING_SAMPLE = 2_001


class Summary(NamedTuple):
    """Sufficient statistics of one run; every metric is a formula over these."""

    n_bars: int
    periods_per_year: float
    initial: float
    final: float
    ret_mean: float
    ret_std: float
    downside_dev: float
    max_dd: float
    max_dd_duration: int
    ulcer: float
    bars_in_market: int
    buy_and_hold: float
    n_trades: int
    n_wins: int
    n_losses: int
    gross_profit: float
    gross_loss: float
    win_ret_sum: float
    loss_ret_sum: float
    best_ret: float
    worst_ret: float
    trade_ret_mean: float
    trade_ret_std: float
    bars_held_sum: float


@njit(cache=True, nogil=True)
def _finite(value: float) -> float:
    """Map inf/NaN to 0.0 (the documented 'undefined')."""
    return value if np.isfinite(value) else 0.0


# Reassociation lets LLVM vectorize the return reductions (4x faster on a 1M-bar curve); it
# only reorders sums, so results move by rounding, and NaN/inf handling stays IEEE.
_REDUCE_MATH = {"reassoc", "nsz", "arcp", "contract"}

# A per-bar return standard deviation below this is rounding noise of a constant-return
# curve, not risk; treating it as zero keeps Sharpe from reporting 1e15.
ZERO_VOLATILITY = 1e-12


@njit(cache=True, nogil=True, fastmath=_REDUCE_MATH)
def _return_stats(equity: np.ndarray, initial: float) -> tuple[float, float, float]:
    """(mean, sample std, downside deviation) of bar returns.

    Two passes over the curve: a one-pass variance cancels badly on flat curves.
    """
    n = equity.shape[0]
    first = equity[0] / initial - 1.0
    total = first
    downside_sq = min(first, 0.0) ** 2
    for t in range(1, n):
        prev = equity[t - 1]
        r = equity[t] / prev - 1.0 if prev > 0.0 else 0.0
        total += r
        neg = min(r, 0.0)
        downside_sq += neg * neg
    mean = total / n
    centred = (first - mean) ** 2
    for t in range(1, n):
        prev = equity[t - 1]
        d = (equity[t] / prev - 1.0 if prev > 0.0 else 0.0) - mean
        centred += d * d
    std = np.sqrt(centred / (n - 1)) if n > 1 else 0.0
    if std < ZERO_VOLATILITY:
        std = 0.0
    return mean, std, np.sqrt(downside_sq / n)


@njit(cache=True, nogil=True)
def _drawdown_stats(
    equity: np.ndarray, initial: float, position: np.ndarray
) -> tuple[float, int, float, int]:
    """(max drawdown, longest bars under water, RMS drawdown, bars in the market).

    The peak starts at initial. The drawdown sums are a serial chain of additions (kept in
    bar order so results never move by rounding), which leaves room to count the bars with
    an open position in the same loop at no extra cost.
    """
    n = equity.shape[0]
    peak = initial
    inv_peak = 1.0 / initial  # a multiply per bar instead of a divide; peaks change rarely
    max_dd = 0.0
    dd_sq = 0.0
    underwater = 0
    longest = 0
    in_market = 0
    for t in range(n):
        cur = equity[t]
        if cur > peak:
            peak = cur
            inv_peak = 1.0 / cur
        dd = 1.0 - cur * inv_peak
        max_dd = max(max_dd, dd)
        dd_sq += dd * dd
        underwater = underwater + 1 if cur < peak else 0
        longest = max(longest, underwater)
        if position[t] != 0.0:
            in_market += 1
    return max_dd, longest, np.sqrt(dd_sq / n), in_market


@njit(cache=True, nogil=True)
def summarize(
    equity: np.ndarray,
    initial: float,
    trades: np.ndarray,
    position: np.ndarray,
    close: np.ndarray,
    periods_per_year: float,
) -> Summary:
    """Fold a run (equity, float64 trade rows as the simulator writes them, ...) into stats."""
    ret_mean, ret_std, downside = _return_stats(equity, initial)
    max_dd, dd_len, ulcer, in_market = _drawdown_stats(equity, initial, position)
    k = trades.shape[0]
    n_wins = 0
    n_losses = 0
    gross_profit = 0.0
    gross_loss = 0.0
    win_sum = 0.0
    loss_sum = 0.0
    best = 0.0
    worst = 0.0
    ret_total = 0.0
    held = 0.0
    for i in range(k):
        pnl = trades[i, COL_PNL]
        r = trades[i, COL_RET]
        ret_total += r
        held += trades[i, COL_BARS_HELD]
        if pnl > 0.0:
            n_wins += 1
            gross_profit += pnl
            win_sum += r
            best = max(best, r)
        elif pnl < 0.0:
            n_losses += 1
            gross_loss -= pnl
            loss_sum += r
            worst = min(worst, r)
    trade_mean = ret_total / k if k > 0 else 0.0
    centred = 0.0
    for i in range(k):
        d = trades[i, COL_RET] - trade_mean
        centred += d * d
    trade_std = np.sqrt(centred / (k - 1)) if k > 1 else 0.0
    n = equity.shape[0]
    return Summary(
        n,
        periods_per_year,
        initial,
        equity[n - 1],
        ret_mean,
        ret_std,
        downside,
        max_dd,
        dd_len,
        ulcer,
        in_market,
        close[n - 1] / close[0] - 1.0,
        k,
        n_wins,
        n_losses,
        gross_profit,
        gross_loss,
        win_sum,
        loss_sum,
        best,
        worst,
        trade_mean,
        trade_std,
        held,
    )


@njit(cache=True, nogil=True)
def total_return(s: Summary) -> float:
    return _finite(s.final / s.initial - 1.0)


@njit(cache=True, nogil=True)
def cagr(s: Summary) -> float:
    """Compound annual growth; -1 once the account is wiped out."""
    if s.final <= 0.0:
        return -1.0
    years = s.n_bars / s.periods_per_year
    return _finite(np.exp(np.log(s.final / s.initial) / years) - 1.0)


@njit(cache=True, nogil=True)
def annual_volatility(s: Summary) -> float:
    return _finite(s.ret_std * np.sqrt(s.periods_per_year))


@njit(cache=True, nogil=True)
def sharpe(s: Summary) -> float:
    if s.ret_std == 0.0:
        return 0.0
    return _finite(s.ret_mean / s.ret_std * np.sqrt(s.periods_per_year))


@njit(cache=True, nogil=True)
def sortino(s: Summary) -> float:
    """Mean return over downside deviation (target 0, averaged over all bars)."""
    if s.downside_dev == 0.0:
        return 0.0
    return _finite(s.ret_mean / s.downside_dev * np.sqrt(s.periods_per_year))


@njit(cache=True, nogil=True)
def calmar(s: Summary) -> float:
    if s.max_dd == 0.0:
        return 0.0
    return _finite(cagr(s) / s.max_dd)


@njit(cache=True, nogil=True)
def max_drawdown(s: Summary) -> float:
    return _finite(s.max_dd)


@njit(cache=True, nogil=True)
def max_drawdown_duration(s: Summary) -> float:
    """Longest run of consecutive bars below the previous equity peak."""
    return float(s.max_dd_duration)


@njit(cache=True, nogil=True)
def ulcer_index(s: Summary) -> float:
    """Root-mean-square drawdown over all bars (as a fraction)."""
    return _finite(s.ulcer)


@njit(cache=True, nogil=True)
def win_rate(s: Summary) -> float:
    return s.n_wins / s.n_trades if s.n_trades > 0 else 0.0


@njit(cache=True, nogil=True)
def profit_factor(s: Summary) -> float:
    """Gross profit over gross loss (currency); 0.0 when there is no loss to divide by."""
    if s.gross_loss == 0.0:
        return 0.0
    return _finite(s.gross_profit / s.gross_loss)


@njit(cache=True, nogil=True)
def expectancy(s: Summary) -> float:
    """Mean trade return: what one more trade is expected to add, as a fraction."""
    return _finite(s.trade_ret_mean)


@njit(cache=True, nogil=True)
def avg_win(s: Summary) -> float:
    return _finite(s.win_ret_sum / s.n_wins) if s.n_wins > 0 else 0.0


@njit(cache=True, nogil=True)
def avg_loss(s: Summary) -> float:
    """Mean return of losing trades (negative)."""
    return _finite(s.loss_ret_sum / s.n_losses) if s.n_losses > 0 else 0.0


@njit(cache=True, nogil=True)
def largest_win(s: Summary) -> float:
    return _finite(s.best_ret)


@njit(cache=True, nogil=True)
def largest_loss(s: Summary) -> float:
    """Worst trade return (negative)."""
    return _finite(s.worst_ret)


@njit(cache=True, nogil=True)
def num_trades(s: Summary) -> float:
    return float(s.n_trades)


@njit(cache=True, nogil=True)
def exposure(s: Summary) -> float:
    """Fraction of bars that end with an open position."""
    return s.bars_in_market / s.n_bars


@njit(cache=True, nogil=True)
def sqn(s: Summary) -> float:
    """Van Tharp's system quality number on trade returns: sqrt(N) * mean / std."""
    if s.trade_ret_std == 0.0:
        return 0.0
    return _finite(np.sqrt(s.n_trades) * s.trade_ret_mean / s.trade_ret_std)


@njit(cache=True, nogil=True)
def kelly(s: Summary) -> float:
    """Kelly fraction W - (1 - W) / R with R = avg win / |avg loss|; needs wins and losses."""
    if s.n_wins == 0 or s.n_losses == 0:
        return 0.0
    w = win_rate(s)
    payoff = avg_win(s) / -avg_loss(s)
    return _finite(w - (1.0 - w) / payoff)


@njit(cache=True, nogil=True)
def avg_trade_duration(s: Summary) -> float:
    return s.bars_held_sum / s.n_trades if s.n_trades > 0 else 0.0


@njit(cache=True, nogil=True)
def winning_trades(s: Summary) -> float:
    """Trades with positive currency P&L."""
    return float(s.n_wins)


@njit(cache=True, nogil=True)
def losing_trades(s: Summary) -> float:
    """Trades with negative currency P&L (break-even trades are neither)."""
    return float(s.n_losses)


@njit(cache=True, nogil=True)
def trades_per_month(s: Summary) -> float:
    """Closed trades per month of the run: n_trades / (n_bars / periods_per_year x 12)."""
    return _finite(s.n_trades * s.periods_per_year / (12.0 * s.n_bars))


@njit(cache=True, nogil=True)
def buy_and_hold_return(s: Summary) -> float:
    """Close-to-close return of the instrument over the run, the benchmark to beat."""
    return _finite(s.buy_and_hold)


@dataclass(frozen=True)
class MetricSpec:
    """What the optimizer and API need to know about a metric."""

    name: str
    direction: Literal["maximize", "minimize"]
    description: str
    fn: Callable[..., float]


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("total_return", "maximize", "Final equity / initial cash - 1", total_return),
        MetricSpec("cagr", "maximize", "Compound annual growth rate", cagr),
        MetricSpec(
            "annual_volatility", "minimize", "Std of bar returns, annualized", annual_volatility
        ),
        MetricSpec("sharpe", "maximize", "Annualized mean / std of bar returns (rf = 0)", sharpe),
        MetricSpec("sortino", "maximize", "Annualized mean / downside deviation", sortino),
        MetricSpec("calmar", "maximize", "CAGR / max drawdown", calmar),
        MetricSpec(
            "max_drawdown",
            "minimize",
            "Largest peak-to-trough equity loss (fraction)",
            max_drawdown,
        ),
        MetricSpec(
            "max_drawdown_duration",
            "minimize",
            "Longest time under water (bars)",
            max_drawdown_duration,
        ),
        MetricSpec("ulcer_index", "minimize", "RMS drawdown (fraction)", ulcer_index),
        MetricSpec("win_rate", "maximize", "Share of trades with positive P&L", win_rate),
        MetricSpec("profit_factor", "maximize", "Gross profit / gross loss", profit_factor),
        MetricSpec("expectancy", "maximize", "Mean trade return (fraction)", expectancy),
        MetricSpec("avg_win", "maximize", "Mean return of winning trades", avg_win),
        MetricSpec("avg_loss", "maximize", "Mean return of losing trades (negative)", avg_loss),
        MetricSpec("largest_win", "maximize", "Best trade return", largest_win),
        MetricSpec("largest_loss", "maximize", "Worst trade return (negative)", largest_loss),
        MetricSpec("num_trades", "maximize", "Number of closed trades", num_trades),
        MetricSpec("exposure", "minimize", "Fraction of bars holding a position", exposure),
        MetricSpec("sqn", "maximize", "System quality number of trade returns", sqn),
        MetricSpec("kelly", "maximize", "Kelly criterion fraction", kelly),
        MetricSpec("avg_trade_duration", "minimize", "Mean bars per trade", avg_trade_duration),
        MetricSpec(
            "buy_and_hold_return", "maximize", "Instrument return over the run", buy_and_hold_return
        ),
        MetricSpec("winning_trades", "maximize", "Number of trades with P&L > 0", winning_trades),
        MetricSpec("losing_trades", "minimize", "Number of trades with P&L < 0", losing_trades),
        MetricSpec("trades_per_month", "maximize", "Closed trades per month", trades_per_month),
    )
}

METRIC_NAMES: tuple[str, ...] = tuple(METRICS)


@njit(cache=True, nogil=True)
def metrics_vector(s: Summary) -> np.ndarray:
    """All metrics in METRIC_NAMES order (a vector so sweeps can fill a matrix row)."""
    out = np.empty(25, dtype=np.float64)
    out[0] = total_return(s)
    out[1] = cagr(s)
    out[2] = annual_volatility(s)
    out[3] = sharpe(s)
    out[4] = sortino(s)
    out[5] = calmar(s)
    out[6] = max_drawdown(s)
    out[7] = max_drawdown_duration(s)
    out[8] = ulcer_index(s)
    out[9] = win_rate(s)
    out[10] = profit_factor(s)
    out[11] = expectancy(s)
    out[12] = avg_win(s)
    out[13] = avg_loss(s)
    out[14] = largest_win(s)
    out[15] = largest_loss(s)
    out[16] = num_trades(s)
    out[17] = exposure(s)
    out[18] = sqn(s)
    out[19] = kelly(s)
    out[20] = avg_trade_duration(s)
    out[21] = buy_and_hold_return(s)
    out[22] = winning_trades(s)
    out[23] = losing_trades(s)
    out[24] = trades_per_month(s)
    return out


@njit(cache=True, nogil=True)
def metrics_of(
    equity: np.ndarray,
    initial: float,
    trades: np.ndarray,
    position: np.ndarray,
    close: np.ndarray,
    periods_per_year: float,
) -> np.ndarray:
    """summarize() then metrics_vector() in one compiled call (no Summary boxing)."""
    return metrics_vector(summarize(equity, initial, trades, position, close, periods_per_year))


# Metrics of a single backtest report that sweeps, walk-forward and the live tracker do not
# keep (they need the buy-and-hold return series or every drawdown episode): computed by
# report_metrics() and added to a backtest's metrics, in this order.
REPORT_METRIC_NAMES: tuple[str, ...] = ("burke_ratio", "alpha", "beta")


@njit(cache=True, nogil=True)
def _report_values(
    equity: np.ndarray, initial: float, close: np.ndarray, periods_per_year: float
) -> np.ndarray:
    """(Burke ratio, annualized alpha, beta) of one run; see report_metrics()."""
    n = equity.shape[0]
    out = np.zeros(3, dtype=np.float64)
    # Burke: CAGR / sqrt(sum of squared episode drawdowns); an episode runs from a peak
    # until equity makes a new peak, and contributes its deepest drawdown.
    peak = initial
    episode = 0.0
    dd_sq = 0.0
    for t in range(n):
        cur = equity[t]
        if cur > peak:
            dd_sq += episode * episode
            episode = 0.0
            peak = cur
        else:
            episode = max(episode, 1.0 - cur / peak)
    dd_sq += episode * episode
    final = equity[n - 1]
    if final <= 0.0:
        growth = -1.0
    else:
        growth = np.exp(np.log(final / initial) / (n / periods_per_year)) - 1.0
    if dd_sq > 0.0:
        out[0] = _finite(growth / np.sqrt(dd_sq))
    # Alpha and beta against buy-and-hold over bars 1..n-1 (bar 0 has no prior close):
    # beta = cov(r, b) / var(b), alpha = (mean(r) - beta mean(b)) x periods_per_year.
    m = n - 1
    if m < 2:
        return out
    mean_r = 0.0
    mean_b = 0.0
    for t in range(1, n):
        prev = equity[t - 1]
        mean_r += equity[t] / prev - 1.0 if prev > 0.0 else 0.0
        mean_b += close[t] / close[t - 1] - 1.0
    mean_r /= m
    mean_b /= m
    cov = 0.0
    var_b = 0.0
    for t in range(1, n):
        prev = equity[t - 1]
        dr = (equity[t] / prev - 1.0 if prev > 0.0 else 0.0) - mean_r
        db = close[t] / close[t - 1] - 1.0 - mean_b
        cov += dr * db
        var_b += db * db
    beta = cov / var_b if np.sqrt(var_b / (m - 1)) >= ZERO_VOLATILITY else 0.0
    out[1] = _finite((mean_r - beta * mean_b) * periods_per_year)
    out[2] = _finite(beta)
    return out


def report_metrics(
    equity: np.ndarray,
    close: np.ndarray,
    *,
    initial_cash: float,
    periods_per_year: float,
) -> dict[str, float]:
    """REPORT_METRIC_NAMES of one run, with the module's conventions (rf = 0, 0.0 if undefined).

    * ``burke_ratio``: CAGR / sqrt(sum of D_i^2), D_i the deepest drawdown (fraction) of each
      drawdown episode, an episode ending when equity makes a new peak; 0 with no drawdown.
    * ``beta``: cov(r, b) / var(b) of bar returns r and buy-and-hold close-to-close returns b
      over bars 1..n-1; 0 when the instrument's returns do not vary.
    * ``alpha``: Jensen's alpha, (mean(r) - beta x mean(b)) x periods_per_year.
    """
    eq = np.ascontiguousarray(equity, dtype=np.float64)
    if eq.shape[0] == 0:
        return dict.fromkeys(REPORT_METRIC_NAMES, 0.0)
    px = np.ascontiguousarray(close, dtype=np.float64)
    if px.shape != eq.shape:
        raise ValueError("close must have one value per equity value")
    values = _report_values(eq, float(initial_cash), px, float(periods_per_year))
    return dict(zip(REPORT_METRIC_NAMES, values.tolist(), strict=True))


EULER_GAMMA = 0.5772156649015329


def expected_max_sharpe(trial_sharpes: np.ndarray) -> float:
    """SR0: the best Sharpe ratio expected among N trials of strategies with no skill.

    With N independent trials whose Sharpe ratios spread with variance V, the expected
    maximum is sqrt(V) ((1 - g) Z^-1(1 - 1/N) + g Z^-1(1 - 1/(N e))), g Euler's constant
    (Bailey & Lopez de Prado, 2014). Non-finite values are ignored; 0.0 for fewer than two.
    """
    values = np.asarray(trial_sharpes, dtype=np.float64)
    values = values[np.isfinite(values)]
    n = values.shape[0]
    if n < 2:
        return 0.0
    z = NormalDist()
    spread = float(np.std(values, ddof=1))
    return spread * (
        (1.0 - EULER_GAMMA) * z.inv_cdf(1.0 - 1.0 / n)
        + EULER_GAMMA * z.inv_cdf(1.0 - 1.0 / (n * np.e))
    )


def deflated_sharpe_ratio(
    sharpe_ratio: float,
    trial_sharpes: np.ndarray,
    n_obs: int,
    skewness: float,
    kurtosis: float,
) -> float:
    """Deflated Sharpe ratio (Bailey & Lopez de Prado, 2014): the probability that the best
    of N trials has a true Sharpe ratio above zero, after accounting for selection bias.

    Sharpe ratios are per bar (not annualized). ``trial_sharpes`` are the Sharpe ratios of
    all N trials (the best included), ``n_obs`` the number of bar returns T, ``skewness``
    and ``kurtosis`` (non-excess: 3 for a normal) those of the best trial's bar returns.
    SR0 = sqrt(V[SR]) x ((1 - g) Z^-1(1 - 1/N) + g Z^-1(1 - 1/(N e))), g Euler's constant;
    DSR = Z((SR - SR0) sqrt(T - 1) / sqrt(1 - skew SR + (kurt - 1) / 4 SR^2)).
    Returns 0.0 when undefined (fewer than two observations, non-finite inputs).
    """
    if n_obs < 2 or not np.isfinite(sharpe_ratio):
        return 0.0
    sr0 = expected_max_sharpe(trial_sharpes)
    denom = 1.0 - skewness * sharpe_ratio + (kurtosis - 1.0) / 4.0 * sharpe_ratio**2
    if not denom > 0.0 or not np.isfinite(denom):
        return 0.0
    stat = (sharpe_ratio - sr0) * np.sqrt(n_obs - 1.0) / np.sqrt(denom)
    return float(NormalDist().cdf(float(stat))) if np.isfinite(stat) else 0.0


def infer_periods_per_year(ts: np.ndarray) -> float:
    """Bars per year from the median spacing of epoch-nanosecond timestamps.

    Long series use the median of an evenly spaced sample of gaps: an exact median over a
    million gaps costs a third of a whole backtest, and 2,000 gaps find the same spacing.
    """
    stamps = np.asarray(ts, dtype=np.int64)
    if stamps.shape[0] < 2:
        return DEFAULT_PERIODS_PER_YEAR
    gaps = stamps.shape[0] - 1
    if gaps > _SPACING_SAMPLE:
        starts = np.linspace(0, gaps - 1, _SPACING_SAMPLE).astype(np.int64)
        spacing_ns = np.median(stamps[starts + 1] - stamps[starts])
    else:
        spacing_ns = np.median(np.diff(stamps))
    spacing = float(spacing_ns) / 1e9
    return SECONDS_PER_YEAR / spacing if spacing > 0 else DEFAULT_PERIODS_PER_YEAR


def trade_rows(trades: np.ndarray) -> np.ndarray:
    """The float64 (k, columns) view summarize() reads, from the public structured array."""
    rows = np.zeros((trades.shape[0], COL_BARS_HELD + 1), dtype=np.float64)
    rows[:, COL_PNL] = trades["pnl"]
    rows[:, COL_RET] = trades["ret"]
    rows[:, COL_BARS_HELD] = trades["bars_held"]
    return rows


def compute_metrics(
    equity: np.ndarray,
    trades: np.ndarray,
    ts: np.ndarray,
    periods_per_year: float | None = None,
    *,
    close: np.ndarray,
    position: np.ndarray,
    initial_cash: float,
) -> dict[str, float]:
    """Every metric of METRICS for one simulated run, as plain floats."""
    eq = np.ascontiguousarray(equity, dtype=np.float64)
    if eq.shape[0] == 0:
        return dict.fromkeys(METRIC_NAMES, 0.0)
    held = np.ascontiguousarray(position, dtype=np.float64)
    if held.shape != eq.shape:
        raise ValueError("position must have one value per equity value")
    ppy = periods_per_year or infer_periods_per_year(ts)
    values = metrics_of(
        eq,
        float(initial_cash),
        trade_rows(trades),
        held,
        np.ascontiguousarray(close, dtype=np.float64),
        float(ppy),
    )
    return dict(zip(METRIC_NAMES, values.tolist(), strict=True))


def metric_index(name: str) -> int:
    """Column of ``name`` in metric matrices; KeyError lists the valid names."""
    try:
        return METRIC_NAMES.index(name)
    except ValueError:
        raise KeyError(f"unknown metric {name!r}; choose from {', '.join(METRIC_NAMES)}") from None
