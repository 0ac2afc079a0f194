// Optimization: start a job from a form, then watch it live over WatchJob (progress,
// best-so-far, trials per second). The job id is in the URL, so a reload re-opens the stream,
// whose first event is a snapshot: the page picks up where it was. Finished jobs show
// parameter importances, the trial history and a heatmap over two parameters.
import { create } from "@bufbuild/protobuf";
import { durationMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  JobEventType,
  JobState,
  ObjectiveSchema,
  OptimizeDirection,
  ParameterOverrideSchema,
  Sampler,
  type ParameterOverride,
  type Job,
  type TrialSummary,
} from "@stratopt/api/stratopt/v1/optimization_pb";
import { ParameterKind } from "@stratopt/api/stratopt/v1/common_pb";
import { api, can, Permission, refresh } from "../api";
import { heatmap, trialScatter } from "../charts";
import { busy, button, card, field, h, input, mount, select, table } from "../dom";
import { clearErrors, showError } from "../errors";
import { enumLabel, num, when } from "../format";
import { isAbort, navigate, toastError, type PageContext } from "../page";
import { paramsText, valueNumber } from "../params";
import { executionFields } from "./backtest";
import { allDatasets } from "./datasets";
import { allStrategies } from "./strategies";

const OBJECTIVES = [
  "sharpe",
  "total_return",
  "sortino",
  "calmar",
  "cagr",
  "profit_factor",
  "max_drawdown",
  "sqn",
];
const TERMINAL = new Set([JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED]);
/** The optimizer scores a parameter set the strategy rejects (e.g. fast >= slow) at +-1e12
 * (optimize/evaluate.py PENALTY): such trials are counted, never drawn, or they would flatten
 * every plot. */
const REJECTED = 1e11;

function drawable(v: number | undefined): v is number {
  return v !== undefined && Number.isFinite(v) && Math.abs(v) < REJECTED;
}

export async function optimizePage(ctx: PageContext): Promise<void> {
  if (ctx.args[0]) return watchJob(ctx, ctx.args[0]);
  const { root, query } = ctx;
  const jobs = (await api.jobs.listJobs({ pageSize: 20 })).jobs;
  const jobsCard = card(
    "Recent jobs",
    jobs.length
      ? table(
          ["Job", "Type", "State", "Trials", "Best", "Created"],
          jobs.map((j) => [
            h("a", { href: `#/optimize/${j.id}` }, j.id.slice(0, 8)),
            j.spec?.strategyType || j.spec?.strategyId.slice(0, 8) || "",
            enumLabel(JobState, j.state),
            `${j.trialsCompleted}/${j.trialsTotal}`,
            j.bestValue !== undefined ? num(j.bestValue, 4) : "–",
            when(j.createTime),
          ]),
        )
      : h("p", { class: "muted" }, "None yet."),
  );
  if (!can(Permission.RUN_OPTIMIZATIONS)) {
    mount(root, h("h1", {}, "Optimization"), jobsCard);
    return;
  }
  const [datasets, strategies, types] = await Promise.all([
    allDatasets(),
    allStrategies(),
    api.strategies.listStrategyTypes({}).then((r) => r.strategyTypes),
  ]);
  const source = select(
    [
      ...types.map((t): [string, string] => [`t:${t.name}`, `type: ${t.displayName || t.name}`]),
      ...strategies.map((s): [string, string] => [`s:${s.id}`, `${s.name} (${s.strategyType})`]),
    ],
    { name: "strategy" },
    query.get("strategy") ? `s:${query.get("strategy")}` : undefined,
  );
  const dataset = select(
    datasets.map((d) => [d.id, `${d.name} (${d.symbol} ${d.timeframe}, ${num(d.barCount)} bars)`]),
    { name: "dataset_id" },
  );
  const trials = input({ type: "number", name: "trials", value: 200, min: 1, step: 1 });
  const sampler = select(
    [
      ["0", "default (TPE)"],
      ...[Sampler.TPE, Sampler.RANDOM, Sampler.GRID, Sampler.CMA_ES, Sampler.QMC].map(
        (s): [string, string] => [String(s), enumLabel(Sampler, s)],
      ),
    ],
    { name: "sampler" },
  );
  const metric = select(
    OBJECTIVES.map((m) => [m, m.replace(/_/g, " ")]),
    { name: "metric" },
  );
  const seed = input({ type: "number", name: "seed", step: 1, placeholder: "random" });
  // The search space: each numeric parameter's range, prefilled from the type's spec.
  const spaceHost = h("div");
  let space: () => ParameterOverride[] = () => [];
  const drawSpace = () => {
    const [kind, ref] = [source.value.slice(0, 1), source.value.slice(2)];
    const typeName = kind === "t" ? ref : strategies.find((x) => x.id === ref)?.strategyType;
    const specs = (types.find((t) => t.name === typeName)?.parameters ?? []).filter(
      (p) => p.kind === ParameterKind.INT || p.kind === ParameterKind.FLOAT,
    );
    const rows = specs.map((p, i) => {
      const step = p.kind === ParameterKind.INT ? 1 : "any";
      const lo = input({ type: "number", name: `${p.name}.min`, value: p.min, step });
      const hi = input({ type: "number", name: `${p.name}.max`, value: p.max, step });
      const at = `spec.search_space[${i}]`;
      return {
        p,
        lo,
        hi,
        el: [field(`${p.name} from`, lo, `${at}.min`), field(`${p.name} to`, hi, `${at}.max`)],
      };
    });
    mount(
      spaceHost,
      rows.length
        ? h(
            "div",
            { class: "grid" },
            rows.flatMap((r) => r.el),
          )
        : null,
    );
    space = () =>
      rows.map((r) =>
        create(ParameterOverrideSchema, {
          name: r.p.name,
          min: Number(r.lo.value),
          max: Number(r.hi.value),
          step: r.p.step,
          logScale: r.p.logScale,
        }),
      );
  };
  source.addEventListener("change", drawSpace);
  drawSpace();
  const ex = executionFields("spec.execution");
  const go = h("button", { type: "submit", "data-testid": "start-optimization" }, "Start optimization");
  const form = h(
    "form",
    { class: "stack", novalidate: true, "data-testid": "optimize-form" },
    h(
      "div",
      { class: "grid" },
      field("Strategy", source, "spec.strategy_type"),
      field("Dataset", dataset, "spec.dataset_id"),
      field("Trials", trials, "spec.trials"),
      field("Sampler", sampler, "spec.sampler"),
      field("Objective", metric, "spec.objectives"),
      field("Seed", seed, "spec.seed"),
    ),
    h("details", {}, h("summary", {}, "Search space"), spaceHost),
    h("details", {}, h("summary", {}, "Execution options"), ex.el),
    go,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const [kind, ref] = [source.value.slice(0, 1), source.value.slice(2)];
    void busy(go, async () => {
      try {
        const r = await api.jobs.startOptimization({
          spec: {
            strategyType: kind === "t" ? ref : "",
            strategyId: kind === "s" ? ref : "",
            datasetId: dataset.value,
            trials: Number(trials.value || 0),
            sampler: Number(sampler.value) as Sampler,
            objectives: [create(ObjectiveSchema, { metric: metric.value })],
            searchSpace: space(),
            seed: seed.value.trim() ? BigInt(seed.value.trim()) : undefined,
            execution: ex.value(),
          },
        });
        navigate(`optimize/${r.job!.id}`);
      } catch (e) {
        showError(form, e);
      }
    });
  });
  mount(root, h("h1", {}, "Optimization"), h("div", { class: "cols" }, card("Start a job", form), jobsCard));
}

function maximizing(job: Job): boolean {
  return (job.spec?.objectives[0]?.direction ?? OptimizeDirection.MAXIMIZE) !== OptimizeDirection.MINIMIZE;
}

async function watchJob({ root, signal }: PageContext, jobId: string): Promise<void> {
  const bar = h("progress", { max: 1, value: 0, "data-testid": "progress-bar" });
  const progress = h("strong", { "data-testid": "progress" }, "…");
  const state = h("span", { "data-testid": "job-state" }, "");
  const best = h("span", { "data-testid": "best" }, "–");
  const rate = h("span", { "data-testid": "rate" }, "–");
  const eta = h("span", {}, "–");
  const reason = h("p", { class: "muted" });
  const bestParams = h("p", { class: "muted", "data-testid": "best-params" });
  const live = h("div", { class: "plot-host", "data-testid": "live-trials" });
  const results = h("div", { "data-testid": "results" });
  const liveCard = card("Trials so far", live);
  const cancel = button(
    "Cancel job",
    (ev) => {
      void busy(ev.currentTarget as HTMLButtonElement, () =>
        api.jobs.cancelJob({ jobId }).then(() => undefined, toastError),
      );
    },
    { class: "danger", hidden: true },
  );
  mount(
    root,
    h("h1", {}, `Optimization ${jobId.slice(0, 8)}`),
    h("p", {}, h("a", { href: "#/optimize" }, "← all jobs")),
    card(
      "Progress",
      h("div", { class: "progress" }, bar, progress),
      h(
        "dl",
        { class: "metrics" },
        h("div", {}, h("dt", {}, "State"), h("dd", {}, state)),
        h("div", {}, h("dt", {}, "Best so far"), h("dd", {}, best)),
        h("div", {}, h("dt", {}, "Trials / s"), h("dd", {}, rate)),
        h("div", {}, h("dt", {}, "ETA"), h("dd", {}, eta)),
      ),
      reason,
      bestParams,
      can(Permission.RUN_OPTIMIZATIONS) ? cancel : null,
    ),
    liveCard,
    results,
  );
  const seen: { n: number; v: number }[] = [];
  let job: Job | undefined;
  let drawn = 0;
  const draw = () => {
    if (!job || seen.length === drawn) return;
    drawn = seen.length;
    mount(live, trialScatter(seen, maximizing(job), Math.max(live.clientWidth, 300)));
  };
  const timer = window.setInterval(draw, 500);
  signal.addEventListener("abort", () => window.clearInterval(timer));
  const show = (j: Job) => {
    job = j;
    const total = j.trialsTotal || j.spec?.trials || 0;
    bar.max = Math.max(total, 1);
    bar.value = j.trialsCompleted;
    progress.textContent = `${j.trialsCompleted}/${total}`;
    state.textContent = enumLabel(JobState, j.state);
    best.textContent = j.bestValue !== undefined ? num(j.bestValue, 4) : "–";
    rate.textContent = j.throughput ? num(j.throughput, 1) : "–";
    eta.textContent = j.eta && !TERMINAL.has(j.state) ? `${num(durationMs(j.eta) / 1000, 0)} s` : "–";
    reason.textContent = j.error || j.stateReason;
    bestParams.textContent = Object.keys(j.bestParameters).length
      ? `best: ${paramsText(j.bestParameters)}`
      : "";
    cancel.hidden = TERMINAL.has(j.state);
  };
  // The stream ends when the job does; a dropped connection re-opens it (snapshot first).
  for (let attempt = 0; !signal.aborted; attempt++) {
    try {
      for await (const ev of api.jobs.watchJob({ jobId }, { signal })) {
        attempt = 0;
        if (ev.job) show(ev.job);
        const v = ev.trial?.values[0];
        if (ev.type === JobEventType.TRIAL_COMPLETED && ev.trial && drawable(v)) {
          seen.push({ n: ev.trial.number, v });
        }
      }
      break;
    } catch (e) {
      if (isAbort(e, signal)) return;
      if (attempt >= 5) throw e;
      // A stream is not retried by the auth interceptor (its request is consumed): an
      // expired token (a laptop that slept through the refresh timer) is renewed here.
      if (ConnectError.from(e).code === Code.Unauthenticated && !(await refresh())) throw e;
      await new Promise((r) => window.setTimeout(r, 500 * (attempt + 1)));
    }
  }
  if (signal.aborted) return;
  const final = (await api.jobs.getJob({ jobId })).job!;
  show(final);
  if (final.state === JobState.SUCCEEDED) {
    liveCard.remove(); // the trial history below has every trial
    await showResults(results, final, signal);
  }
  draw();
  window.clearInterval(timer);
}

async function allTrials(jobId: string): Promise<TrialSummary[]> {
  const out: TrialSummary[] = [];
  let pageToken = "";
  do {
    const r = await api.jobs.listTrials({ jobId, pageSize: 500, pageToken });
    out.push(...r.trials);
    pageToken = r.nextPageToken;
  } while (pageToken && out.length < 20_000);
  return out;
}

async function showResults(host: HTMLElement, job: Job, signal: AbortSignal): Promise<void> {
  const [result, trials] = await Promise.all([
    api.jobs.getOptimizationResult({ jobId: job.id }),
    allTrials(job.id),
  ]);
  if (signal.aborted) return;
  const max = maximizing(job);
  const scored = trials.filter((t) => drawable(t.values[0]));
  const rejected = trials.length - scored.length;
  const imp = [...result.importances].sort((a, b) => b.importance - a.importance);
  const numeric = imp
    .map((i) => i.parameter)
    .filter((p) => trials.some((t) => Number.isFinite(valueNumber(t.parameters[p]))));
  const names = [...new Set([...numeric, ...Object.keys(trials[0]?.parameters ?? {})])].filter((p) =>
    trials.some((t) => Number.isFinite(valueNumber(t.parameters[p]))),
  );
  const xSel = select(
    names.map((n) => [n, n]),
    { name: "x" },
    names[0],
  );
  const ySel = select(
    names.map((n) => [n, n]),
    { name: "y" },
    names[1] ?? names[0],
  );
  const heat = h("div", { class: "plot-host", "data-testid": "heatmap" });
  const drawHeat = () => {
    const x = xSel.value;
    const y = ySel.value;
    const pts = scored.map((t) => ({
      x: valueNumber(t.parameters[x]),
      y: valueNumber(t.parameters[y]),
      v: t.values[0]!,
    }));
    mount(heat, heatmap(pts, [x, y], max));
  };
  xSel.addEventListener("change", drawHeat);
  ySel.addEventListener("change", drawHeat);
  const bestTrial = result.bestTrial;
  mount(
    host,
    card(
      "Result",
      bestTrial
        ? h(
            "p",
            { "data-testid": "best-trial" },
            `Best trial #${bestTrial.number}: ${paramsText(bestTrial.parameters)} → ${num(bestTrial.values[0] ?? NaN, 4)}`,
          )
        : null,
      h(
        "p",
        { class: "actions" },
        can(Permission.EXPORT)
          ? h("a", { class: "button", href: `#/exports?job=${job.id}` }, "Pine Script / report")
          : null,
      ),
      h("h3", {}, "Parameter importances"),
      h(
        "div",
        { class: "bars", "data-testid": "importances" },
        imp.map((i) =>
          h(
            "div",
            { class: "bar-row" },
            h("span", {}, i.parameter),
            h("span", { class: "bar", style: `width:${Math.max(1, i.importance * 100).toFixed(1)}%` }),
            h("span", {}, num(i.importance, 3)),
          ),
        ),
      ),
    ),
    card(
      "Trial history",
      h(
        "div",
        { class: "plot-host" },
        trialScatter(
          scored.map((t) => ({ n: t.number, v: t.values[0]! })),
          max,
          Math.max(host.clientWidth - 40, 300),
        ),
      ),
      rejected
        ? h(
            "p",
            { class: "muted" },
            `${rejected} trials tried parameter sets the strategy rejects; they are not drawn.`,
          )
        : null,
    ),
    names.length >= 2
      ? card("Heatmap", h("div", { class: "grid" }, field("x", xSel), field("y", ySel)), heat)
      : null,
    card(
      "Top trials",
      table(
        ["#", "Value", "Parameters", "Sharpe", "Return", "Trades"],
        [...scored]
          .sort((a, b) => (max ? b.values[0]! - a.values[0]! : a.values[0]! - b.values[0]!))
          .slice(0, 20)
          .map((t) => [
            String(t.number),
            num(t.values[0]!, 4),
            paramsText(t.parameters),
            num(t.metrics?.sharpe ?? NaN),
            num((t.metrics?.totalReturn ?? NaN) * 100) + "%",
            num(t.metrics?.numTrades ?? 0n),
          ]),
      ),
    ),
  );
  if (names.length >= 2) drawHeat();
}
