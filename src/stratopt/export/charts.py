"""The report charts, as matplotlib figures: backtest (equity against buy-and-hold,
drawdown, trades on price, monthly returns, trade P&L) and optimization job (history,
importances, the two most important parameters, in- vs out-of-sample, walk-forward windows,
Pareto front).

Every chart has labelled axes with units, dates where time is the axis, and a legend (a
colour bar where colour is the value). Inputs are bounded here, whatever the caller passes:
lines are reduced to at most MAX_LINE_POINTS (each bucket keeps its first, lowest and
highest point, so peaks and drawdowns survive), trade markers to MAX_MARKERS and trial dots
to MAX_TRIAL_POINTS, so a report of a million-bar backtest renders as fast as a small one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from stratopt.export.metric_format import PERCENT, axis_label, label, scale

MAX_LINE_POINTS = 2_000
MAX_MARKERS = 250
MAX_TRIAL_POINTS = 5_000
WIDE = (10.0, 4.2)
BLUE, GREY, GREEN, RED, ORANGE = "#1f6feb", "#8c959f", "#1a7f37", "#cf222e", "#bc4c00"
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def decimate(values: FloatArray, points: int = MAX_LINE_POINTS) -> IntArray:
    """Indices of at most ~`points` values keeping each bucket's first, min and max."""
    n = len(values)
    if n <= points:
        return np.arange(n, dtype=np.int64)
    buckets = max(points // 3, 1)
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    starts = edges[:-1]
    lo = np.minimum.reduceat(values, starts)
    hi = np.maximum.reduceat(values, starts)
    keep = [starts, [n - 1]]
    # reduceat gives values; find their positions bucket by bucket (vectorised per bucket).
    for a, b, mn, mx in zip(starts, edges[1:], lo, hi, strict=True):
        seg = values[a:b]
        keep.append([a + int(np.argmax(seg == mn)), a + int(np.argmax(seg == mx))])
    return np.unique(np.concatenate([np.asarray(k, dtype=np.int64) for k in keep]))


def _dates(ts_ns: npt.ArrayLike) -> Any:
    return pd.to_datetime(np.asarray(ts_ns, dtype=np.int64), utc=True).tz_localize(None)


def _time_axis(ax: Axes) -> None:
    loc = AutoDateLocator()
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(loc))
    ax.set_xlabel("Date (UTC)")


def _figure(size: tuple[float, float] = WIDE) -> tuple[Figure, Axes]:
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


# -- backtest -----------------------------------------------------------------------------


def equity_chart(
    ts: IntArray, equity: FloatArray, close: FloatArray | None, initial_cash: float
) -> Figure:
    fig, ax = _figure()
    idx = decimate(equity)
    ax.plot(_dates(ts[idx]), equity[idx], color=BLUE, lw=1.3, label="Strategy")
    if close is not None and len(close) == len(equity) and close[0] > 0:
        bench = initial_cash * close / close[0]
        bidx = np.union1d(idx, decimate(bench))
        ax.plot(_dates(ts[bidx]), bench[bidx], color=GREY, lw=1.0, label="Buy and hold")
    ax.axhline(initial_cash, color="#57606a", lw=0.8, ls=":", label="Initial cash")
    ax.set_title("Equity: strategy against buy-and-hold")
    ax.set_ylabel("Equity (account currency)")
    _time_axis(ax)
    ax.legend(loc="upper left")
    return fig


def drawdown_chart(ts: IntArray, equity: FloatArray, close: FloatArray | None) -> Figure:
    fig, ax = _figure((10.0, 3.2))
    dd = _drawdown(equity)
    idx = decimate(-dd)
    ax.fill_between(_dates(ts[idx]), -dd[idx] * 100, 0, color=RED, alpha=0.35, lw=0)
    ax.plot(_dates(ts[idx]), -dd[idx] * 100, color=RED, lw=0.9, label="Strategy drawdown")
    if close is not None and len(close) == len(equity):
        bdd = _drawdown(close)
        bidx = decimate(-bdd)
        ax.plot(_dates(ts[bidx]), -bdd[bidx] * 100, color=GREY, lw=0.8, label="Buy-and-hold")
    ax.set_title("Drawdown from the running peak")
    ax.set_ylabel("Drawdown (%)")
    _time_axis(ax)
    ax.legend(loc="lower left")
    return fig


def _drawdown(values: FloatArray) -> FloatArray:
    peak = np.maximum.accumulate(values)
    return np.where(peak > 0, 1.0 - values / np.where(peak > 0, peak, 1.0), 0.0)


def trades_on_price_chart(ts: IntArray, close: FloatArray, trades: pd.DataFrame) -> Figure:
    """Price with entries (triangles: up long, down short) and exits (circles: green win,
    red loss). Markers use the trades' own prices; past MAX_MARKERS trades an even sample."""
    fig, ax = _figure()
    idx = decimate(close)
    ax.plot(_dates(ts[idx]), close[idx], color="#57606a", lw=0.9, label="Close")
    shown = trades
    if len(trades) > MAX_MARKERS:
        pick = np.unique(np.linspace(0, len(trades) - 1, MAX_MARKERS).astype(np.int64))
        shown = trades.iloc[pick]
    if len(shown):
        side = shown["side"].to_numpy()
        entry_t = pd.to_datetime(shown["entry_time"], utc=True).dt.tz_convert(None).to_numpy()
        exit_t = pd.to_datetime(shown["exit_time"], utc=True).dt.tz_convert(None).to_numpy()
        entry_p, exit_p = shown["entry_price"].to_numpy(), shown["exit_price"].to_numpy()
        win = shown["pnl"].to_numpy() > 0
        for mask, marker, color, name in (
            (side > 0, "^", GREEN, "Long entry"),
            (side < 0, "v", RED, "Short entry"),
        ):
            if mask.any():
                ax.scatter(entry_t[mask], entry_p[mask], marker=marker, s=28, color=color,
                           edgecolor="white", lw=0.4, zorder=3, label=name)  # fmt: skip
        for mask, color, name in ((win, GREEN, "Exit, win"), (~win, RED, "Exit, loss")):
            if mask.any():
                ax.scatter(exit_t[mask], exit_p[mask], marker="o", s=16, facecolor="none",
                           edgecolor=color, lw=0.9, zorder=3, label=name)  # fmt: skip
    title = "Trades on price"
    if len(trades) > len(shown):
        title += f" ({len(shown)} of {len(trades)} trades shown, evenly sampled)"
    ax.set_title(title)
    ax.set_ylabel("Price (quote currency)")
    _time_axis(ax)
    ax.legend(loc="upper left", ncols=3)
    return fig


def monthly_returns(ts: IntArray, equity: FloatArray, initial_cash: float) -> pd.DataFrame:
    """Year x month table of returns (fractions), from month-end equity; the first month
    is measured from the initial cash."""
    s = pd.Series(equity, index=pd.to_datetime(ts, utc=True))
    month_end = s.resample("ME").last().dropna()
    prev = month_end.shift(1)
    prev.iloc[0] = initial_cash if initial_cash > 0 else s.iloc[0]
    rets = month_end / prev - 1.0
    frame = pd.DataFrame({"year": rets.index.year, "month": rets.index.month, "ret": rets.values})
    return frame.pivot(index="year", columns="month", values="ret").reindex(columns=range(1, 13))


def monthly_heatmap_chart(table: pd.DataFrame) -> Figure:
    years = list(table.index)
    fig, ax = _figure((10.0, 1.2 + 0.32 * max(len(years), 2)))
    data = table.to_numpy(dtype=float) * 100
    finite = data[np.isfinite(data)]
    bound = float(np.max(np.abs(finite))) if finite.size else 1.0
    bound = bound or 1.0
    im = ax.imshow(
        np.ma.masked_invalid(data), cmap="RdYlGn", aspect="auto",
        norm=TwoSlopeNorm(vmin=-bound, vcenter=0.0, vmax=bound),
    )  # fmt: skip
    ax.set_xticks(range(12), MONTHS)
    ax.set_yticks(range(len(years)), [str(y) for y in years])
    ax.set_xlabel("Month")
    ax.set_ylabel("Year")
    ax.grid(False)
    if len(years) <= 30:
        for (r, c), v in np.ndenumerate(data):
            if np.isfinite(v):
                ax.text(c, r, f"{v:.1f}", ha="center", va="center", size=7)
    fig.colorbar(im, ax=ax, label="Monthly return (%)", pad=0.01)
    ax.set_title("Monthly returns (cells in %, from month-end equity)")
    return fig


def pnl_distribution_chart(trades: pd.DataFrame) -> Figure:
    fig, ax = _figure((10.0, 3.6))
    ret = trades["ret"].to_numpy(dtype=float) * 100
    ret = ret[np.isfinite(ret)]
    bins = np.histogram_bin_edges(ret, bins=min(60, max(10, len(ret) // 5))).tolist()
    ax.hist(ret[ret > 0], bins=bins, color=GREEN, alpha=0.8, label=f"Wins ({(ret > 0).sum()})")
    ax.hist(ret[ret <= 0], bins=bins, color=RED, alpha=0.8, label=f"Losses ({(ret <= 0).sum()})")
    if len(ret):
        mean = float(ret.mean())
        ax.axvline(mean, color="#1f2328", ls="--", lw=1, label=f"Mean {mean:.2f}%")
    ax.set_title("Trade return distribution")
    ax.set_xlabel("Trade return (%)")
    ax.set_ylabel("Trades (count)")
    ax.legend(loc="upper right")
    return fig


# -- optimization job -----------------------------------------------------------------------


def history_chart(
    numbers: Sequence[int], values: Sequence[float], feasible: Sequence[bool], metric: str,
    direction: str,
) -> Figure:  # fmt: skip
    fig, ax = _figure()
    n = np.asarray(numbers, dtype=np.int64)
    v = np.asarray([scale(metric, x) for x in values], dtype=float)
    ok = np.asarray(feasible, dtype=bool) & np.isfinite(v)
    order = np.argsort(n)
    n, v, ok = n[order], v[order], ok[order]
    best = np.where(ok, v, -np.inf if direction == "maximize" else np.inf)
    best = np.maximum.accumulate(best) if direction == "maximize" else np.minimum.accumulate(best)
    pick = np.arange(len(n))
    if len(n) > MAX_TRIAL_POINTS:
        pick = np.unique(np.linspace(0, len(n) - 1, MAX_TRIAL_POINTS).astype(np.int64))
    feas, infeas = pick[ok[pick]], pick[~ok[pick]]
    ax.scatter(n[feas], v[feas], s=10, color=BLUE, alpha=0.6, label="Trial")
    if len(infeas):
        ax.scatter(n[infeas], v[infeas], s=10, color=GREY, alpha=0.6, label="Infeasible trial")
    shown = np.isfinite(best)
    ax.step(n[shown], best[shown], where="post", color=ORANGE, lw=1.5, label="Best so far")
    ax.set_title(f"Optimization history ({direction} {label(metric)})")
    ax.set_xlabel("Trial number")
    ax.set_ylabel(axis_label(metric))
    ax.legend(loc="best")
    return fig


def importance_chart(importances: Mapping[str, float], metric: str) -> Figure:
    items = sorted(importances.items(), key=lambda kv: kv[1])
    fig, ax = _figure((10.0, 1.4 + 0.35 * len(items)))
    ax.barh([k for k, _ in items], [v * 100 for _, v in items], color=BLUE,
            label=f"Share of {label(metric)} variance")  # fmt: skip
    ax.set_title("Parameter importances (fANOVA)")
    ax.set_xlabel("Importance (%)")
    ax.set_ylabel("Parameter")
    ax.legend(loc="lower right")
    return fig


def _numeric(values: Sequence[Any]) -> tuple[FloatArray, list[str]]:
    """Numbers as they are; anything else as category codes (and their names)."""
    try:
        return np.asarray(values, dtype=float), []
    except (TypeError, ValueError):
        codes, names = pd.factorize(pd.Series([str(v) for v in values]), sort=True)
        return codes.astype(float), [str(n) for n in names]


def param_heatmap_chart(
    x_name: str, xs: Sequence[Any], y_name: str, ys: Sequence[Any], values: Sequence[float],
    metric: str,
) -> Figure:  # fmt: skip
    """Mean objective on a grid of the two parameters, with the trials on top."""
    fig, ax = _figure((8.0, 5.5))
    x, x_cats = _numeric(xs)
    y, y_cats = _numeric(ys)
    z = np.asarray([scale(metric, v) for v in values], dtype=float)
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(z)
    x, y, z = x[ok], y[ok], z[ok]
    nx = len(x_cats) or min(16, max(2, len(np.unique(x))))
    ny = len(y_cats) or min(16, max(2, len(np.unique(y))))
    xe = _edges(x, nx, bool(x_cats))
    ye = _edges(y, ny, bool(y_cats))
    total, _, _ = np.histogram2d(x, y, bins=(xe, ye), weights=z)
    count, _, _ = np.histogram2d(x, y, bins=(xe, ye))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.where(count > 0, count, 1), np.nan)
    mesh = ax.pcolormesh(xe, ye, np.ma.masked_invalid(mean.T), cmap="viridis", shading="flat")
    pick = np.arange(len(x))
    if len(x) > MAX_TRIAL_POINTS:
        pick = np.unique(np.linspace(0, len(x) - 1, MAX_TRIAL_POINTS).astype(np.int64))
    ax.scatter(x[pick], y[pick], s=8, color="white", edgecolor="#1f2328", lw=0.4,
               label="Trial")  # fmt: skip
    if x_cats:
        ax.set_xticks(range(len(x_cats)), x_cats)
    if y_cats:
        ax.set_yticks(range(len(y_cats)), y_cats)
    ax.grid(False)
    ax.set_xlabel(f"{x_name} (parameter value)")
    ax.set_ylabel(f"{y_name} (parameter value)")
    ax.set_title(f"Mean {label(metric)} over the two most important parameters")
    fig.colorbar(mesh, ax=ax, label=f"Mean {axis_label(metric)}")
    ax.legend(loc="upper right")
    return fig


def _edges(v: FloatArray, n: int, categorical: bool) -> FloatArray:
    if categorical:
        return np.arange(n + 1, dtype=float) - 0.5
    lo, hi = (float(v.min()), float(v.max())) if len(v) else (0.0, 1.0)
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    return np.linspace(lo, hi, n + 1)


def param_scatter_chart(
    name: str, xs: Sequence[Any], values: Sequence[float], metric: str
) -> Figure:
    """The one-parameter case of the heatmap: objective against the parameter."""
    fig, ax = _figure()
    x, cats = _numeric(xs)
    ax.scatter(x, [scale(metric, v) for v in values], s=10, color=BLUE, label="Trial")
    if cats:
        ax.set_xticks(range(len(cats)), cats)
    ax.set_xlabel(f"{name} (parameter value)")
    ax.set_ylabel(axis_label(metric))
    ax.set_title(f"{label(metric)} against {name}")
    ax.legend(loc="best")
    return fig


IS_OOS_GROUPS = (
    ("Returns and risk (%)", ("total_return", "cagr", "max_drawdown", "win_rate")),
    ("Risk-adjusted (ratio)", ("sharpe", "sortino", "calmar", "profit_factor")),
)


def in_vs_out_chart(in_sample: Mapping[str, float], out_of_sample: Mapping[str, float]) -> Figure:
    fig = Figure(figsize=WIDE, layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, (title, group) in zip(axes, IS_OOS_GROUPS, strict=True):
        names = [n for n in group if n in in_sample or n in out_of_sample]
        pos = np.arange(len(names))
        for offset, data, color, name in (
            (-0.2, in_sample, BLUE, "In-sample"),
            (0.2, out_of_sample, ORANGE, "Out-of-sample"),
        ):
            vals = [_finite(scale(n, float(data.get(n, np.nan)))) for n in names]
            ax.bar(pos + offset, vals, width=0.4, color=color, label=name)
        ax.set_xticks(pos, [label(n) for n in names], rotation=15)
        ax.axhline(0, color="#57606a", lw=0.8)
        ax.set_ylabel("%" if names and names[0] in PERCENT else "ratio")
        ax.set_xlabel("Metric")
        ax.set_title(title)
        ax.legend(loc="best")
    fig.suptitle("Best parameters in-sample against the held-out period")
    return fig


def _finite(v: float) -> float:
    return v if np.isfinite(v) else 0.0


def walk_forward_chart(
    windows: Sequence[Mapping[str, float]], metric: str, in_sample: float | None,
    periods: Sequence[str] = (),
) -> Figure:  # fmt: skip
    fig, ax = _figure()
    vals = [_finite(scale(metric, float(w.get(metric, np.nan)))) for w in windows]
    pos = np.arange(1, len(vals) + 1)
    colors = [GREEN if v >= 0 else RED for v in vals]
    ax.bar(pos, vals, color=colors, label=f"{label(metric)} per window")
    if in_sample is not None:
        ax.axhline(scale(metric, in_sample), color=BLUE, ls="--", lw=1.2,
                   label=f"In-sample {label(metric)}")  # fmt: skip
    if len(vals):
        ax.axhline(float(np.mean(vals)), color=ORANGE, ls=":", lw=1.2, label="Mean of windows")
    names = [*periods, *[""] * len(pos)][: len(pos)]
    ticks = [f"{i}\n{p}" if p else str(i) for i, p in zip(pos, names, strict=True)]
    ax.set_xticks(pos, ticks)
    ax.set_xlabel("Walk-forward window (period, UTC)" if periods else "Walk-forward window")
    ax.set_ylabel(axis_label(metric))
    ax.set_title("Walk-forward windows: the best parameters re-run window by window")
    ax.legend(loc="best")
    return fig


def pareto_chart(
    all_values: Sequence[Sequence[float]], front: Sequence[Sequence[float]],
    metrics: Sequence[str],
) -> Figure:  # fmt: skip
    fig, ax = _figure((8.0, 5.5))
    mx, my = metrics[0], metrics[1]
    pts = np.asarray([(scale(mx, v[0]), scale(my, v[1])) for v in all_values], dtype=float)
    if len(pts) > MAX_TRIAL_POINTS:
        pts = pts[np.linspace(0, len(pts) - 1, MAX_TRIAL_POINTS).astype(np.int64)]
    fr = np.asarray([(scale(mx, v[0]), scale(my, v[1])) for v in front], dtype=float)
    if len(pts):
        ax.scatter(pts[:, 0], pts[:, 1], s=10, color=GREY, alpha=0.6, label="Trial")
    if len(fr):
        fr = fr[np.argsort(fr[:, 0])]
        ax.plot(fr[:, 0], fr[:, 1], color=RED, lw=1, marker="o", ms=5,
                label=f"Pareto front ({len(fr)} trials)")  # fmt: skip
    ax.set_xlabel(axis_label(mx))
    ax.set_ylabel(axis_label(my))
    ax.set_title(f"Pareto front: {label(mx)} against {label(my)}")
    ax.legend(loc="best")
    return fig
