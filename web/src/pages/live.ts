// Live: running strategies, each with its signals, equity and alerts streamed as they happen
// (StreamSignals/StreamAlerts resume after the last sequence shown; StreamPerformance ticks).
import {
  AlertSeverity,
  RunState,
  SignalAction,
  type Alert,
  type Signal,
} from "@stratopt/api/stratopt/v1/strategy_pb";
import { api, can, Permission } from "../api";
import { liveLine } from "../charts";
import { busy, button, card, field, h, input, mount, select, table } from "../dom";
import { clearErrors, showError } from "../errors";
import { enumLabel, epochSeconds, num, pct, when } from "../format";
import { isAbort, navigate, toastError, type PageContext } from "../page";
import { allDatasets } from "./datasets";
import { allStrategies } from "./strategies";

export async function livePage({ root, args, signal }: PageContext): Promise<void> {
  const strategies = await allStrategies();
  const running = strategies.filter((s) => s.runState === RunState.RUNNING);
  const list = card(
    "Running strategies",
    running.length
      ? table(
          ["Strategy", "Type", "Symbols", "TF"],
          running.map((s) => [
            h("a", { href: `#/live/${s.id}` }, s.name),
            s.strategyType,
            s.symbols.join(", "),
            s.timeframe,
          ]),
        )
      : h("p", { class: "muted" }, "Nothing is running."),
  );
  const id = args[0];
  if (id) return follow(root, id, list, signal);
  let startCard: HTMLElement | null = null;
  if (can(Permission.EXECUTE_STRATEGIES)) {
    const datasets = await allDatasets();
    const strategy = select(
      strategies.filter((s) => s.runState !== RunState.RUNNING).map((s) => [s.id, s.name]),
      { name: "strategy_id" },
    );
    const dataset = select(
      datasets.map((d) => [d.id, `${d.name} (${d.symbol} ${d.timeframe})`]),
      { name: "dataset_id" },
    );
    const speed = input({ type: "number", name: "bars_per_second", value: 20, step: "any", min: 0 });
    const go = h("button", { type: "submit", "data-testid": "start-live" }, "Start paper trading");
    const form = h(
      "form",
      { class: "stack", novalidate: true },
      h(
        "div",
        { class: "grid" },
        field("Strategy", strategy, "strategy_id"),
        field("Replay of dataset", dataset, "dataset_id"),
        field("Bars per second", speed, "bars_per_second"),
      ),
      go,
    );
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      clearErrors(form);
      void busy(go, async () => {
        try {
          await api.strategies.startStrategy({
            strategyId: strategy.value,
            datasetId: dataset.value,
            barsPerSecond: Number(speed.value),
          });
          navigate(`live/${strategy.value}`);
        } catch (e) {
          showError(form, e);
        }
      });
    });
    startCard = card("Start on a replay", form);
  }
  mount(root, h("h1", {}, "Live"), h("div", { class: "cols" }, list, startCard));
}

async function follow(root: HTMLElement, id: string, list: HTMLElement, signal: AbortSignal): Promise<void> {
  const s = (await api.strategies.getStrategy({ strategyId: id })).strategy!;
  const equityEl = h("div", { class: "chart", "data-testid": "live-equity" });
  const stats = h("dl", { class: "metrics" });
  const signalsBody = h("tbody");
  const alertsBody = h("tbody");
  const stop = can(Permission.EXECUTE_STRATEGIES)
    ? button(
        "Stop",
        (ev) =>
          void busy(ev.currentTarget as HTMLButtonElement, () =>
            api.strategies
              .stopStrategy({ strategyId: id, closePosition: true })
              .then(() => navigate("live"), toastError),
          ),
        { class: "danger", "data-testid": "stop" },
      )
    : null;
  mount(
    root,
    h("h1", {}, `Live: ${s.name}`),
    h("p", {}, h("a", { href: "#/live" }, "← all running"), " ", stop),
    card("Equity", stats, equityEl),
    h(
      "div",
      { class: "cols" },
      card(
        "Signals",
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { "data-testid": "signals" },
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                ["Time", "Action", "Price", "Position", "Reason"].map((x) => h("th", {}, x)),
              ),
            ),
            signalsBody,
          ),
        ),
      ),
      card(
        "Alerts",
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { "data-testid": "alerts" },
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                ["Time", "Severity", "Title", "Message"].map((x) => h("th", {}, x)),
              ),
            ),
            alertsBody,
          ),
        ),
      ),
    ),
    list,
  );
  const addRow = (body: HTMLElement, cells: string[]) => {
    body.prepend(
      h(
        "tr",
        {},
        cells.map((c) => h("td", {}, c)),
      ),
    );
    while (body.childElementCount > 200) body.lastElementChild!.remove();
  };
  const addSignal = (x: Signal) =>
    addRow(signalsBody, [
      when(x.time),
      enumLabel(SignalAction, x.action),
      num(x.price, 4),
      String(x.position),
      x.reason,
    ]);
  const addAlert = (a: Alert) =>
    addRow(alertsBody, [when(a.time), enumLabel(AlertSeverity, a.severity), a.title, a.message]);
  const history = await api.strategies.listSignals({ strategyId: id, pageSize: 50 });
  let lastSignal = 0n;
  for (const x of [...history.signals].sort((a, b) => Number(a.sequence - b.sequence))) {
    addSignal(x);
    lastSignal = x.sequence > lastSignal ? x.sequence : lastSignal;
  }
  const pastAlerts = await api.strategies.listAlerts({ strategyId: id, pageSize: 50 });
  let lastAlert = 0n;
  for (const a of [...pastAlerts.alerts].sort((x, y) => Number(x.sequence - y.sequence))) {
    addAlert(a);
    lastAlert = a.sequence > lastAlert ? a.sequence : lastAlert;
  }
  const push = liveLine(equityEl, "equity", "#1e88e5");
  const streams = [
    (async () => {
      for await (const r of api.strategies.streamSignals(
        { strategyId: id, afterSequence: lastSignal },
        { signal },
      )) {
        if (r.signal) addSignal(r.signal);
      }
    })(),
    (async () => {
      for await (const r of api.strategies.streamAlerts(
        { strategyId: id, afterSequence: lastAlert },
        { signal },
      )) {
        if (r.alert) addAlert(r.alert);
      }
    })(),
    (async () => {
      for await (const r of api.strategies.streamPerformance(
        { strategyId: id, intervalSeconds: 1 },
        { signal },
      )) {
        const p = r.performance;
        if (!p) continue;
        mount(
          stats,
          [
            ["Equity", num(p.equity)],
            ["Position", String(p.position)],
            ["Unrealized", num(p.unrealizedPnl)],
            ["Realized", num(p.realizedPnl)],
            ["Drawdown", pct(p.drawdown)],
            ["Bars", num(p.barsProcessed)],
            ["State", enumLabel(RunState, p.runState)],
          ].map(([k, v]) => h("div", {}, h("dt", {}, k!), h("dd", {}, v!))),
        );
        const time = epochSeconds(p.lastBarTime ?? p.time);
        if (time) push({ time, value: p.equity });
      }
    })(),
  ];
  for (const r of await Promise.allSettled(streams)) {
    if (r.status === "rejected" && !isAbort(r.reason, signal)) toastError(r.reason);
  }
}
