// Exports: Pine Script for TradingView (copy and download), and reports of backtests and jobs,
// stored server-side and downloaded over the streaming DownloadExportFile.
import { ExportKind, ReportFormat, ReportTable } from "@stratopt/api/stratopt/v1/export_pb";
import { api, can, Permission } from "../api";
import { busy, button, card, field, h, input, mount, select, table } from "../dom";
import { clearErrors, showError } from "../errors";
import { enumLabel, num, when } from "../format";
import { NOTIFICATION_EVENT, type NotificationDetail } from "../notifications";
import { toast, toastError, type PageContext } from "../page";
import { allStrategies } from "./strategies";

function saveBlob(data: BlobPart[], name: string, type: string): void {
  const url = URL.createObjectURL(new Blob(data, { type }));
  const a = h("a", { href: url, download: name });
  document.body.appendChild(a);
  a.click();
  a.remove();
  window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

async function download(id: string, name: string, type: string): Promise<void> {
  const parts: Uint8Array<ArrayBuffer>[] = [];
  for await (const chunk of api.exports.downloadExportFile({ exportId: id }))
    parts.push(new Uint8Array(chunk.data));
  saveBlob(parts, name, type);
}

export async function exportsPage({ root, query, signal }: PageContext): Promise<void> {
  if (!can(Permission.EXPORT)) {
    mount(
      root,
      h("h1", {}, "Exports"),
      card("Exports", h("p", { class: "muted" }, "Your role cannot export.")),
    );
    return;
  }
  const [strategies, backtests] = await Promise.all([
    allStrategies(),
    api.backtests.listBacktests({ pageSize: 50 }).then((r) => r.backtests),
  ]);
  const files = h("div", { "data-testid": "export-files" });
  const reloadFiles = async () => {
    const r = await api.exports.listExportFiles({ pageSize: 50 });
    mount(
      files,
      r.files.length
        ? table(
            ["File", "Kind", "Size", "Created", ""],
            r.files.map((f) => [
              f.fileName,
              enumLabel(ExportKind, f.kind),
              `${num(Number(f.sizeBytes) / 1024, 1)} KB`,
              when(f.createTime),
              button(
                "Download",
                (ev) =>
                  void busy(ev.currentTarget as HTMLButtonElement, () =>
                    download(f.id, f.fileName, f.contentType).catch(toastError),
                  ),
                { class: "secondary" },
              ),
            ]),
          )
        : h("p", { class: "muted" }, "No files yet."),
    );
  };

  // Pine Script
  const jobId = query.get("job") ?? "";
  const source = select(
    [
      ...(jobId ? [[`j:${jobId}`, `best parameters of job ${jobId.slice(0, 8)}`] as [string, string]] : []),
      ...strategies.map((s): [string, string] => [`s:${s.id}`, `${s.name} (${s.strategyType})`]),
    ],
    { name: "strategy_id" },
    query.get("strategy") ? `s:${query.get("strategy")}` : undefined,
  );
  const title = input({ name: "title", placeholder: "defaults to the strategy's name" });
  const script = h("textarea", {
    readonly: true,
    rows: 16,
    "data-testid": "pine-script",
    spellcheck: "false",
  });
  const go = h("button", { type: "submit", "data-testid": "export-pine" }, "Generate Pine Script");
  const copy = button(
    "Copy",
    () => {
      navigator.clipboard.writeText(script.value).then(
        () => toast("Copied to the clipboard"),
        () => {
          script.select();
          toast("Select-all done: press Ctrl+C to copy");
        },
      );
    },
    { class: "secondary", "data-testid": "copy-pine", disabled: true },
  );
  let fileName = "strategy.pine";
  const save = button("Download .pine", () => saveBlob([script.value], fileName, "text/plain"), {
    class: "secondary",
    "data-testid": "download-pine",
    disabled: true,
  });
  const pineForm = h(
    "form",
    { class: "stack", novalidate: true, "data-testid": "pine-form" },
    h("div", { class: "grid" }, field("Strategy", source, "strategy_id"), field("Title", title, "title")),
    go,
  );
  pineForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearErrors(pineForm);
    const [kind, ref] = [source.value.slice(0, 1), source.value.slice(2)];
    void busy(go, async () => {
      try {
        const r = await api.exports.exportPineScript({
          strategyId: kind === "s" ? ref : "",
          jobId: kind === "j" ? ref : "",
          title: title.value.trim(),
          includeExecution: true,
        });
        script.value = r.script;
        fileName = r.file?.fileName || fileName;
        copy.disabled = false;
        save.disabled = false;
        await reloadFiles();
      } catch (e) {
        showError(pineForm, e);
      }
    });
  });

  // Reports
  const backtestId = query.get("backtest") ?? "";
  const target = select(
    [
      ...(jobId ? [[`j:${jobId}`, `optimization job ${jobId.slice(0, 8)}`] as [string, string]] : []),
      ...backtests.map((b): [string, string] => [
        `b:${b.id}`,
        `backtest ${b.strategyType} ${when(b.createTime)}`,
      ]),
    ],
    { name: "backtest_id" },
    backtestId ? `b:${backtestId}` : undefined,
  );
  const format = select(
    [ReportFormat.HTML, ReportFormat.PDF, ReportFormat.CSV, ReportFormat.JSON].map((f) => [
      String(f),
      enumLabel(ReportFormat, f),
    ]),
    { name: "format" },
  );
  // A CSV report holds one table: a backtest's trades or its equity by bar, a job's trials.
  const csvTable = select([], { name: "csv_table" });
  const csvTableField = field("Table", csvTable, "csv_table");
  const showTables = (): void => {
    const tables: [ReportTable, string][] = target.value.startsWith("j:")
      ? [[ReportTable.TRIALS, "trials"]]
      : [
          [ReportTable.TRADES, "trades"],
          [ReportTable.EQUITY, "equity by bar"],
        ];
    csvTable.replaceChildren(...tables.map(([v, label]) => h("option", { value: String(v) }, label)));
    csvTableField.hidden = Number(format.value) !== ReportFormat.CSV;
  };
  target.addEventListener("change", showTables);
  format.addEventListener("change", showTables);
  showTables();
  const charts = input({ type: "checkbox", name: "include_charts", checked: true });
  const mk = h("button", { type: "submit" }, "Create report");
  const reportForm = h(
    "form",
    { class: "stack", novalidate: true },
    h(
      "div",
      { class: "grid" },
      field("Of", target, "backtest_id"),
      field("Format", format, "format"),
      csvTableField,
      h("div", { class: "field" }, h("label", { class: "check" }, charts, "Include charts")),
    ),
    mk,
  );
  reportForm.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearErrors(reportForm);
    const [kind, ref] = [target.value.slice(0, 1), target.value.slice(2)];
    void busy(mk, async () => {
      try {
        const r = await api.exports.createReport({
          backtestId: kind === "b" ? ref : "",
          jobId: kind === "j" ? ref : "",
          format: Number(format.value) as ReportFormat,
          includeCharts: charts.checked,
          csvTable: csvTableField.hidden ? ReportTable.UNSPECIFIED : (Number(csvTable.value) as ReportTable),
        });
        toast(`Report ${r.file!.fileName} ready`);
        await reloadFiles();
      } catch (e) {
        showError(reportForm, e);
      }
    });
  });

  // A file made elsewhere (another tab, the CLI, a job's report) appears without a reload.
  window.addEventListener(
    NOTIFICATION_EVENT,
    (ev) => {
      if ((ev as CustomEvent<NotificationDetail>).detail.kind === "export.ready") {
        reloadFiles().catch(() => undefined);
      }
    },
    { signal },
  );
  mount(
    root,
    h("h1", {}, "Exports"),
    card("Pine Script", pineForm, script, h("p", { class: "actions" }, copy, save)),
    h("div", { class: "cols" }, card("Reports", reportForm), card("Files", files)),
  );
  await reloadFiles();
}
