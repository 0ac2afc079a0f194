// Backtest: run one with execution options, then metrics, equity against buy-and-hold,
// drawdown, the trades marked on the candles, and the trade list. #/backtest/<id> reopens one.
import { create } from "@bufbuild/protobuf";
import { FieldMaskSchema } from "@bufbuild/protobuf/wkt";
import type { Backtest } from "@stratopt/api/stratopt/v1/backtest_pb";
import {
  ExecutionOptionsSchema,
  ExitReason,
  TradeDirection,
  TradeSide,
  type Metrics,
} from "@stratopt/api/stratopt/v1/common_pb";
import { api, can, Permission } from "../api";
import { candleChart, drawdownChart, lineChart, type Marker, type Point } from "../charts";
import { busy, card, field, h, input, mount, select, table } from "../dom";
import { clearErrors, showError } from "../errors";
import { enumLabel, epochSeconds, num, pct, when } from "../format";
import { navigate, type PageContext } from "../page";
import { paramForm, paramsText, type ParamForm } from "../params";
import { allDatasets, readCandles } from "./datasets";
import { allStrategies } from "./strategies";

const MAX_CANDLES = 20_000;

export async function backtestPage({ root, args, query, signal }: PageContext): Promise<void> {
  if (args[0]) return showBacktest(root, args[0], signal);
  const [datasets, strategies, types, recent] = await Promise.all([
    allDatasets(),
    allStrategies(),
    api.strategies.listStrategyTypes({}).then((r) => r.strategyTypes),
    api.backtests.listBacktests({ pageSize: 20 }).then((r) => r.backtests),
  ]);
  const recentCard = card(
    "Recent backtests",
    recent.length
      ? table(
          ["When", "Strategy", "Parameters", "Return", "Sharpe", "Trades"],
          recent.map((b) => [
            h("a", { href: `#/backtest/${b.id}` }, when(b.createTime)),
            strategies.find((s) => s.id === b.strategyId)?.name ?? b.strategyType,
            paramsText(b.parameters),
            pct(b.metrics?.totalReturn ?? NaN),
            num(b.metrics?.sharpe ?? NaN),
            num(b.tradeCount),
          ]),
        )
      : h("p", { class: "muted" }, "None yet."),
  );
  if (!can(Permission.RUN_BACKTESTS)) {
    mount(root, h("h1", {}, "Backtests"), recentCard);
    return;
  }
  const source = select(
    [
      ...strategies.map((s): [string, string] => [`s:${s.id}`, `${s.name} (${s.strategyType})`]),
      ...types.map((t): [string, string] => [`t:${t.name}`, `type: ${t.displayName || t.name}`]),
    ],
    { name: "strategy" },
    query.get("strategy") ? `s:${query.get("strategy")}` : undefined,
  );
  const dataset = select(
    datasets.map((d) => [d.id, `${d.name} (${d.symbol} ${d.timeframe}, ${num(d.barCount)} bars)`]),
    { name: "dataset_id" },
    query.get("dataset") ?? undefined,
  );
  const paramsHost = h("div");
  let params: ParamForm | undefined;
  const drawParams = () => {
    const t = source.value.startsWith("t:") ? types.find((x) => `t:${x.name}` === source.value) : undefined;
    params = t ? paramForm(t.parameters, "parameters") : undefined;
    mount(paramsHost, params ? [h("h3", {}, "Parameters"), params.el] : null);
  };
  source.addEventListener("change", drawParams);
  drawParams();
  const ex = executionFields();
  const go = h("button", { type: "submit", "data-testid": "run-backtest" }, "Run backtest");
  const form = h(
    "form",
    { class: "stack", novalidate: true, "data-testid": "backtest-form" },
    h(
      "div",
      { class: "grid" },
      field("Strategy", source, "strategy_id"),
      field("Dataset", dataset, "dataset_id"),
    ),
    paramsHost,
    h("h3", {}, "Execution"),
    ex.el,
    go,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const [kind, ref] = [source.value.slice(0, 1), source.value.slice(2)];
    void busy(go, async () => {
      try {
        const r = await api.backtests.runBacktest({
          strategyId: kind === "s" ? ref : "",
          strategyType: kind === "t" ? ref : "",
          parameters: params?.values() ?? {},
          datasetId: dataset.value,
          execution: ex.value(),
          maxEquityPoints: 2_000,
          tradeLimit: 1_000,
        });
        navigate(`backtest/${r.backtest!.id}`);
      } catch (e) {
        showError(form, e);
      }
    });
  });
  mount(root, h("h1", {}, "Backtest"), h("div", { class: "cols" }, card("Run", form), recentCard));
}

/** Execution option controls; only the ones the user filled in are sent (set_fields). */
export function executionFields(prefix = "execution"): {
  el: HTMLElement;
  value: () => ReturnType<typeof create<typeof ExecutionOptionsSchema>>;
} {
  const numbers: [string, string, string, string][] = [
    ["initial_cash", "initialCash", "Initial cash", "10000"],
    ["position_size", "positionSize", "Position size (0–1]", "1"],
    ["commission", "commission", "Commission (fraction)", "0.001"],
    ["slippage", "slippage", "Slippage (fraction)", "0"],
    ["stop_loss", "stopLoss", "Stop loss (fraction)", ""],
    ["take_profit", "takeProfit", "Take profit (fraction)", ""],
    ["trailing_stop", "trailingStop", "Trailing stop (fraction)", ""],
  ];
  const controls = numbers.map(([proto, , , value]) =>
    input({ type: "number", name: proto, step: "any", value, placeholder: "default" }),
  );
  const direction = select(
    [
      ["0", "default (long only)"],
      [String(TradeDirection.LONG_ONLY), "long only"],
      [String(TradeDirection.SHORT_ONLY), "short only"],
      [String(TradeDirection.BOTH), "long and short"],
    ],
    { name: "direction" },
  );
  const onClose = input({ type: "checkbox", name: "fill_on_close" });
  const el = h(
    "div",
    { class: "grid" },
    numbers.map(([proto, , label], i) => field(label, controls[i]!, `${prefix}.${proto}`)),
    field("Direction", direction, `${prefix}.direction`),
    h(
      "div",
      { class: "field", "data-field": `${prefix}.fill_on_close` },
      h("label", { class: "check" }, onClose, "Fill on the signal bar's close"),
    ),
  );
  return {
    el,
    value() {
      const opts = create(ExecutionOptionsSchema, {});
      const paths: string[] = [];
      numbers.forEach(([proto, key], i) => {
        const raw = controls[i]!.value.trim();
        if (raw === "") return;
        (opts as unknown as Record<string, number>)[key] = Number(raw);
        paths.push(proto);
      });
      opts.direction = Number(direction.value) as TradeDirection;
      if (onClose.checked) {
        opts.fillOnClose = true;
        paths.push("fill_on_close");
      }
      opts.setFields = create(FieldMaskSchema, { paths });
      return opts;
    },
  };
}

const METRICS: [keyof Metrics, string, (x: number) => string][] = [
  ["totalReturn", "Total return", pct],
  ["buyAndHoldReturn", "Buy & hold", pct],
  ["cagr", "CAGR", pct],
  ["sharpe", "Sharpe", (x) => num(x)],
  ["sortino", "Sortino", (x) => num(x)],
  ["calmar", "Calmar", (x) => num(x)],
  ["maxDrawdown", "Max drawdown", pct],
  ["winRate", "Win rate", pct],
  ["profitFactor", "Profit factor", (x) => num(x)],
  ["exposure", "Exposure", pct],
  ["finalEquity", "Final equity", (x) => num(x)],
];

export function metricsGrid(m: Metrics | undefined): HTMLElement {
  return h(
    "dl",
    { class: "metrics", "data-testid": "metrics" },
    METRICS.map(([key, label, fmt]) =>
      h("div", {}, h("dt", {}, label), h("dd", {}, m ? fmt(m[key] as number) : "–")),
    ),
    h("div", {}, h("dt", {}, "Trades"), h("dd", {}, m ? num(m.numTrades) : "–")),
  );
}

async function showBacktest(root: HTMLElement, id: string, signal: AbortSignal): Promise<void> {
  const b: Backtest = (await api.backtests.getBacktest({ backtestId: id })).backtest!;
  const candlesEl = h("div", { class: "chart", "data-testid": "candles" });
  const equityEl = h("div", { class: "chart", "data-testid": "equity" });
  const ddEl = h("div", { class: "chart small", "data-testid": "drawdown" });
  mount(
    root,
    h("h1", {}, `Backtest ${b.strategyType}`),
    h(
      "p",
      { class: "muted" },
      `${paramsText(b.parameters)} · ${num(b.barCount)} bars · ${when(b.createTime)} · ${num(b.durationMs)} ms `,
      h("a", { href: "#/backtest" }, "← new backtest"),
      can(Permission.EXPORT) ? [" · ", h("a", { href: `#/exports?backtest=${b.id}` }, "report")] : null,
    ),
    card("Metrics", metricsGrid(b.metrics)),
    card("Equity vs buy-and-hold", equityEl, h("h3", {}, "Drawdown"), ddEl),
    card("Trades on the candles", candlesEl),
    card("Trades", tradeTable(b)),
  );
  const start = b.timeRange?.startTime;
  const candles = (await readCandles(b.datasetId, MAX_CANDLES, signal)).filter(
    (c) => !start || c.time >= epochSeconds(start),
  );
  const equity: Point[] = b.equityCurve.map((p) => ({ time: epochSeconds(p.time), value: p.equity }));
  const cash = b.execution?.initialCash || equity[0]?.value || 10_000;
  const first = candles[0]?.close ?? 1;
  const hold: Point[] = candles.map((c) => ({ time: c.time, value: (cash * c.close) / first }));
  lineChart(equityEl, [
    { title: "strategy", color: "#1e88e5", points: equity },
    { title: "buy & hold", color: "#9e9e9e", points: hold },
  ]);
  drawdownChart(
    ddEl,
    b.equityCurve.map((p) => ({ time: epochSeconds(p.time), value: p.drawdown })),
  );
  const markers: Marker[] = b.trades.flatMap((t) => [
    {
      time: epochSeconds(t.entryTime),
      kind: t.side === TradeSide.SHORT ? "entry-short" : "entry-long",
      text: t.side === TradeSide.SHORT ? "short" : "long",
    } as Marker,
    { time: epochSeconds(t.exitTime), kind: "exit", text: pct(t.tradeReturn, 1) } as Marker,
  ]);
  candleChart(candlesEl, candles, markers, 420);
}

function tradeTable(b: Backtest): HTMLElement {
  if (!b.trades.length) return h("p", { class: "muted" }, "No trades.");
  return h(
    "div",
    {},
    b.tradeCount > BigInt(b.trades.length)
      ? h("p", { class: "muted" }, `First ${b.trades.length} of ${num(b.tradeCount)}.`)
      : null,
    table(
      ["#", "Side", "Entry", "Exit", "Entry price", "Exit price", "P&L", "Return", "Bars", "Exit reason"],
      b.trades.map((t, i) => [
        String(i + 1),
        enumLabel(TradeSide, t.side),
        when(t.entryTime),
        when(t.exitTime),
        num(t.entryPrice, 4),
        num(t.exitPrice, 4),
        num(t.pnl),
        pct(t.tradeReturn),
        num(t.barsHeld),
        enumLabel(ExitReason, t.exitReason),
      ]),
      { "data-testid": "trades" },
    ),
  );
}
