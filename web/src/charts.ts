// Charts: lightweight-charts (TradingView, Apache-2.0) for candles and equity; a small canvas
// painter for the optimizer's trial scatter and parameter heatmap, which are not time series.
import {
  AreaSeries,
  CandlestickSeries,
  ColorType,
  createChart,
  createSeriesMarkers,
  LineSeries,
  type IChartApi,
  type SeriesMarker,
  type Time,
  type UTCTimestamp,
} from "lightweight-charts";
import { h } from "./dom";

export interface Candle {
  time: number;
  open: number;
  high: number;
  low: number;
  close: number;
}

export interface Point {
  time: number;
  value: number;
}

export interface Marker {
  time: number;
  kind: "entry-long" | "entry-short" | "exit";
  text: string;
}

const charts = new Set<IChartApi>();

function dark(): boolean {
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ?? false;
}

/** Removes every chart of the previous page (their resize observers and canvases). */
export function disposeCharts(): void {
  for (const c of charts) c.remove();
  charts.clear();
}

function chartIn(el: HTMLElement, height: number): IChartApi {
  const chart = createChart(el, {
    height,
    autoSize: true,
    layout: {
      background: { type: ColorType.Solid, color: "transparent" },
      textColor: dark() ? "#d0d4dc" : "#333",
      attributionLogo: true,
    },
    grid: {
      vertLines: { color: dark() ? "#2a2e39" : "#eee" },
      horzLines: { color: dark() ? "#2a2e39" : "#eee" },
    },
    timeScale: { timeVisible: true, secondsVisible: false },
  });
  charts.add(chart);
  return chart;
}

/** Strictly increasing times: lightweight-charts refuses repeats and disorder. */
function ascending<T extends { time: number }>(rows: T[]): T[] {
  const out: T[] = [];
  for (const r of [...rows].sort((a, b) => a.time - b.time)) {
    if (!out.length || r.time > out[out.length - 1]!.time) out.push(r);
  }
  return out;
}

const t = (s: number): UTCTimestamp => s as UTCTimestamp;

export function candleChart(
  el: HTMLElement,
  bars: Candle[],
  markers: Marker[] = [],
  height = 360,
): IChartApi {
  const chart = chartIn(el, height);
  const series = chart.addSeries(CandlestickSeries, {
    upColor: "#26a69a",
    downColor: "#ef5350",
    borderVisible: false,
    wickUpColor: "#26a69a",
    wickDownColor: "#ef5350",
  });
  series.setData(ascending(bars).map((b) => ({ ...b, time: t(b.time) })));
  if (markers.length) {
    const ms: SeriesMarker<Time>[] = [...markers]
      .sort((a, b) => a.time - b.time)
      .map((m) => ({
        time: t(m.time),
        position: m.kind === "entry-long" ? "belowBar" : "aboveBar",
        shape: m.kind === "entry-long" ? "arrowUp" : m.kind === "entry-short" ? "arrowDown" : "circle",
        color: m.kind === "entry-long" ? "#1e88e5" : m.kind === "entry-short" ? "#8e24aa" : "#f9a825",
        text: m.text,
      }));
    createSeriesMarkers(series, ms);
  }
  chart.timeScale().fitContent();
  return chart;
}

export interface Line {
  title: string;
  color: string;
  points: Point[];
}

export function lineChart(el: HTMLElement, lines: Line[], height = 280): IChartApi {
  const chart = chartIn(el, height);
  for (const line of lines) {
    const s = chart.addSeries(LineSeries, { color: line.color, lineWidth: 2, title: line.title });
    s.setData(ascending(line.points).map((p) => ({ time: t(p.time), value: p.value })));
  }
  chart.timeScale().fitContent();
  return chart;
}

/** A line that grows as points arrive (live equity): one chart, points appended in place. */
export function liveLine(el: HTMLElement, title: string, color: string, height = 280): (p: Point) => void {
  const chart = chartIn(el, height);
  const series = chart.addSeries(LineSeries, { color, lineWidth: 2, title });
  let last = -Infinity;
  return (p) => {
    if (p.time <= last) return;
    last = p.time;
    series.update({ time: t(p.time), value: p.value });
  };
}

/** Drawdown as a red area below zero (values are fractions, shown as percent). */
export function drawdownChart(el: HTMLElement, points: Point[], height = 180): IChartApi {
  const chart = chartIn(el, height);
  const s = chart.addSeries(AreaSeries, {
    lineColor: "#ef5350",
    topColor: "rgba(239,83,80,0.05)",
    bottomColor: "rgba(239,83,80,0.4)",
    invertFilledArea: true,
    title: "drawdown %",
  });
  s.setData(ascending(points).map((p) => ({ time: t(p.time), value: -Math.abs(p.value) * 100 })));
  chart.timeScale().fitContent();
  return chart;
}

/** A canvas sized for the device's pixel ratio, with its 2D context. */
function canvas(width: number, height: number): [HTMLCanvasElement, CanvasRenderingContext2D] {
  const c = h("canvas", { class: "plot" });
  const ratio = window.devicePixelRatio || 1;
  c.width = width * ratio;
  c.height = height * ratio;
  c.style.width = "100%";
  c.style.maxWidth = `${width}px`;
  c.style.aspectRatio = `${width} / ${height}`;
  const ctx = c.getContext("2d")!;
  ctx.scale(ratio, ratio);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = dark() ? "#d0d4dc" : "#333";
  return [c, ctx];
}

function extent(xs: number[]): [number, number] {
  let lo = Math.min(...xs);
  let hi = Math.max(...xs);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
  if (lo === hi) [lo, hi] = [lo - 1, hi + 1];
  return [lo, hi];
}

/** Objective value of every trial (dots) with the best-so-far line. */
export function trialScatter(
  values: { n: number; v: number }[],
  maximize: boolean,
  width = 640,
  height = 240,
): HTMLCanvasElement {
  const [c, ctx] = canvas(width, height);
  const pad = 36;
  const pts = values.filter((p) => Number.isFinite(p.v));
  const [x0, x1] = extent(pts.map((p) => p.n));
  const [y0, y1] = extent(pts.map((p) => p.v));
  const X = (n: number) => pad + ((n - x0) / (x1 - x0)) * (width - pad - 8);
  const Y = (v: number) => height - pad + 12 - ((v - y0) / (y1 - y0)) * (height - pad - 8);
  ctx.fillText(y1.toPrecision(3), 2, 12);
  ctx.fillText(y0.toPrecision(3), 2, height - pad + 12);
  ctx.fillText("trial", width - 30, height - 4);
  ctx.fillStyle = "rgba(30,136,229,0.6)";
  for (const p of pts) ctx.fillRect(X(p.n) - 2, Y(p.v) - 2, 4, 4);
  ctx.strokeStyle = "#f9a825";
  ctx.lineWidth = 2;
  ctx.beginPath();
  let best = maximize ? -Infinity : Infinity;
  for (const [i, p] of [...pts].sort((a, b) => a.n - b.n).entries()) {
    best = maximize ? Math.max(best, p.v) : Math.min(best, p.v);
    if (i === 0) ctx.moveTo(X(p.n), Y(best));
    else ctx.lineTo(X(p.n), Y(best));
  }
  ctx.stroke();
  return c;
}

/** Mean objective over a grid of two parameters: where the good region lies. */
export function heatmap(
  trials: { x: number; y: number; v: number }[],
  names: [string, string],
  maximize: boolean,
  width = 420,
  height = 320,
): HTMLCanvasElement {
  const [c, ctx] = canvas(width, height);
  const cells = 12;
  const pad = 40;
  const pts = trials.filter((p) => Number.isFinite(p.v));
  const [x0, x1] = extent(pts.map((p) => p.x));
  const [y0, y1] = extent(pts.map((p) => p.y));
  const sum = new Float64Array(cells * cells);
  const count = new Uint32Array(cells * cells);
  for (const p of pts) {
    const i = Math.min(cells - 1, Math.floor(((p.x - x0) / (x1 - x0)) * cells));
    const j = Math.min(cells - 1, Math.floor(((p.y - y0) / (y1 - y0)) * cells));
    sum[j * cells + i] += p.v;
    count[j * cells + i]! += 1;
  }
  const means: number[] = [];
  for (let k = 0; k < sum.length; k++) if (count[k]) means.push(sum[k]! / count[k]!);
  const [lo, hi] = extent(means);
  const w = (width - pad) / cells;
  const hh = (height - pad) / cells;
  for (let j = 0; j < cells; j++) {
    for (let i = 0; i < cells; i++) {
      const k = j * cells + i;
      if (!count[k]) continue;
      let q = (sum[k]! / count[k]! - lo) / (hi - lo);
      if (!maximize) q = 1 - q;
      ctx.fillStyle = `hsl(${Math.round(q * 120)}, 70%, 45%)`;
      ctx.fillRect(pad + i * w, height - pad - (j + 1) * hh, w - 1, hh - 1);
    }
  }
  ctx.fillStyle = dark() ? "#d0d4dc" : "#333";
  ctx.fillText(`${names[0]} ${num3(x0)}…${num3(x1)}`, pad, height - 22);
  ctx.save();
  ctx.translate(12, height - pad);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText(`${names[1]} ${num3(y0)}…${num3(y1)}`, 0, 0);
  ctx.restore();
  ctx.fillText("red = worse, green = better", pad, height - 6);
  return c;
}

function num3(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(3);
}
