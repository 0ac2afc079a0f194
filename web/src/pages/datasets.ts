// Datasets: the list, a candlestick preview, import by upload, and synthetic generation.
// Upload goes over REST (POST /v1/datasets:import): ImportBars is client-streaming, which
// gRPC-Web cannot carry, and the transcoder takes the stream as a JSON array of messages.
import { DatasetSource, ImportFormat, type Dataset } from "@stratopt/api/stratopt/v1/market_data_pb";
import { api, can, Permission, restFetch } from "../api";
import { candleChart, type Candle } from "../charts";
import { busy, card, field, h, input, mount, select, table } from "../dom";
import { clearErrors, RestError, showError } from "../errors";
import { enumLabel, epochSeconds, num, when } from "../format";
import { navigate, toast, toastError, type PageContext } from "../page";

/** Bars drawn in a preview: enough to see the shape, few enough to stay quick on a phone. */
const PREVIEW_BARS = 2_000;
const CHUNK = 256 * 1024;

export async function readCandles(datasetId: string, limit: number, signal?: AbortSignal): Promise<Candle[]> {
  const out: Candle[] = [];
  for await (const page of api.data.readBars({ datasetId, pageSize: Math.min(limit, 5_000) }, { signal })) {
    for (const b of page.bars) {
      out.push({ time: epochSeconds(b.time), open: b.open, high: b.high, low: b.low, close: b.close });
    }
    if (out.length >= limit) break;
  }
  return out.slice(0, limit);
}

export async function allDatasets(): Promise<Dataset[]> {
  const out: Dataset[] = [];
  let pageToken = "";
  do {
    const r = await api.data.listDatasets({ pageSize: 200, pageToken });
    out.push(...r.datasets);
    pageToken = r.nextPageToken;
  } while (pageToken && out.length < 2_000);
  return out;
}

export async function datasetsPage({ root, args, signal }: PageContext): Promise<void> {
  const list = h("div", { "data-testid": "dataset-list" }, "Loading…");
  const preview = h("div", { class: "chart", "data-testid": "dataset-chart" });
  const previewCard = card(
    "Preview",
    h("p", { class: "muted" }, "Pick a dataset to see its candles."),
    preview,
  );
  mount(
    root,
    h("h1", {}, "Datasets"),
    h("div", { class: "cols" }, card("Your datasets", list), previewCard),
    can(Permission.WRITE_DATA) ? h("div", { class: "cols" }, generateCard(), uploadCard()) : null,
  );

  const datasets = await allDatasets();
  mount(
    list,
    datasets.length
      ? table(
          ["Name", "Symbol", "TF", "Bars", "From", "To", "Source"],
          datasets.map((d) => [
            h("a", { href: `#/datasets/${d.id}`, "data-dataset": d.name }, d.name),
            d.symbol,
            d.timeframe,
            num(d.barCount),
            when(d.startTime),
            when(d.endTime),
            enumLabel(DatasetSource, d.source),
          ]),
        )
      : h("p", { class: "muted" }, "No datasets yet."),
  );

  const id = args[0];
  if (!id) return;
  const d = datasets.find((x) => x.id === id) ?? (await api.data.getDataset({ datasetId: id })).dataset!;
  const candles = await readCandles(id, PREVIEW_BARS, signal);
  mount(
    previewCard,
    h("h2", {}, `${d.name} · ${d.symbol} ${d.timeframe}`),
    h("p", { class: "muted" }, `${num(d.barCount)} bars; the first ${num(candles.length)} shown.`),
    preview,
    h("p", {}, h("a", { href: `#/backtest?dataset=${d.id}` }, "Backtest on this dataset →")),
  );
  candleChart(preview, candles);
}

function generateCard(): HTMLElement {
  const name = input({
    name: "name",
    value: `synthetic-${new Date().toISOString().slice(0, 10)}`,
    required: true,
  });
  const symbol = input({ name: "symbol", value: "SYNTH" });
  const timeframe = select(
    ["1m", "5m", "15m", "1h", "4h", "1d"].map((t) => [t, t]),
    { name: "timeframe" },
    "1h",
  );
  const bars = input({ name: "bar_count", type: "number", value: 2000, min: 1, step: 1 });
  const price = input({ name: "start_price", type: "number", value: 100, step: "any" });
  const seed = input({ name: "seed", type: "number", value: 1, step: 1 });
  const go = h("button", { type: "submit", "data-testid": "generate" }, "Generate");
  const form = h(
    "form",
    { class: "stack", novalidate: true, "data-testid": "generate-form" },
    h("div", { class: "grid" }, [
      field("Name", name, "name"),
      field("Symbol", symbol, "symbol"),
      field("Timeframe", timeframe, "timeframe"),
      field("Bars", bars, "bar_count"),
      field("Start price", price, "start_price"),
      field("Seed", seed, "seed"),
    ]),
    go,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearErrors(form);
    void busy(go, async () => {
      try {
        const r = await api.data.generateSyntheticDataset({
          name: name.value.trim(),
          symbol: symbol.value.trim(),
          timeframe: timeframe.value,
          barCount: BigInt(bars.value || "0"),
          startPrice: Number(price.value || 0),
          seed: BigInt(seed.value || "0"),
        });
        toast(`Generated ${r.dataset!.name}`);
        navigate(`datasets/${r.dataset!.id}`);
      } catch (e) {
        showError(form, e);
      }
    });
  });
  return card("Generate synthetic", form);
}

function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function uploadCard(): HTMLElement {
  const file = input({ name: "file", type: "file", accept: ".csv,.parquet,text/csv", required: true });
  const name = input({ name: "name", required: true });
  const symbol = input({ name: "symbol", required: true });
  const timeframe = input({ name: "timeframe", placeholder: "e.g. 1h (blank: inferred)" });
  const go = h("button", { type: "submit" }, "Import");
  file.addEventListener("change", () => {
    const f = file.files?.[0];
    if (f && !name.value) name.value = f.name.replace(/\.[^.]+$/, "");
  });
  const form = h(
    "form",
    { class: "stack", novalidate: true, "data-testid": "upload-form" },
    field("CSV or Parquet file", file, "file", "columns: time, open, high, low, close, volume"),
    h("div", { class: "grid" }, [
      field("Name", name, "header.name"),
      field("Symbol", symbol, "header.symbol"),
      field("Timeframe", timeframe, "header.timeframe"),
    ]),
    go,
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const f = file.files?.[0];
    if (!f) return;
    void busy(go, async () => {
      try {
        const bytes = new Uint8Array(await f.arrayBuffer());
        const format = f.name.toLowerCase().endsWith(".parquet") ? ImportFormat.PARQUET : ImportFormat.CSV;
        const messages: unknown[] = [
          {
            header: {
              name: name.value.trim(),
              symbol: symbol.value.trim(),
              timeframe: timeframe.value.trim(),
              format: ImportFormat[format] ? `IMPORT_FORMAT_${ImportFormat[format]}` : format,
            },
          },
        ];
        for (let i = 0; i < bytes.length; i += CHUNK)
          messages.push({ chunk: base64(bytes.subarray(i, i + CHUNK)) });
        const resp = await restFetch("/v1/datasets:import", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(messages),
        });
        const body: unknown = await resp.json().catch(() => ({}));
        if (!resp.ok) throw RestError.fromJson(resp.status, body);
        const d = (body as { dataset: { id: string; name: string } }).dataset;
        toast(`Imported ${d.name}`);
        navigate(`datasets/${d.id}`);
      } catch (e) {
        if (e instanceof RestError) showError(form, e);
        else toastError(e);
      }
    });
  });
  return card("Import a file", form);
}
