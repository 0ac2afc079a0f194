// Number, time and enum formatting shared by the pages.
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { timestampDate } from "@bufbuild/protobuf/wkt";

export function pct(x: number, digits = 2): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(digits)}%` : "–";
}

export function num(x: number | bigint, digits = 2): string {
  if (typeof x === "bigint") return x.toLocaleString("en-US");
  if (!Number.isFinite(x)) return "–";
  return (x + 0).toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: 0 });
}

export function when(ts: Timestamp | undefined): string {
  if (!ts) return "–";
  return timestampDate(ts)
    .toISOString()
    .replace("T", " ")
    .replace(/\.\d+Z$/, "Z");
}

/** Seconds since the epoch, the time unit of lightweight-charts. */
export function epochSeconds(ts: Timestamp | undefined): number {
  return ts ? Number(ts.seconds) : 0;
}

/** "TRADE_SIDE_LONG"-style enum member names without their prefix, in lower case. */
export function enumLabel(e: Record<number, string>, value: number): string {
  const name = e[value] ?? String(value);
  return name.toLowerCase().replace(/_/g, " ");
}
