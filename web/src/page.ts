// What every page gets: where to draw, the route's arguments, and a signal that aborts when
// the user navigates away (open streams end with it).
import { Code, ConnectError } from "@connectrpc/connect";
import { h, type Attrs } from "./dom";
import { problemOf } from "./errors";

export interface PageContext {
  root: HTMLElement;
  args: string[];
  /** The route's `?a=b` part (e.g. #/backtest?dataset=...), for links that prefill a form. */
  query: URLSearchParams;
  signal: AbortSignal;
}

export type Page = (ctx: PageContext) => void | Promise<void>;

export function navigate(path: string): void {
  window.location.hash = `#/${path}`;
}

/** True for the error a stream ends with when the page aborted it on purpose. */
export function isAbort(e: unknown, signal: AbortSignal): boolean {
  return signal.aborted || ConnectError.from(e).code === Code.Canceled;
}

export type ToastKind = "info" | "warning" | "error";

/**
 * A transient message in the corner of the page (errors outside any form, notifications).
 * Warnings and errors are alerts (read out at once), the rest a status; `ms` overrides how
 * long it stays.
 */
export function toast(
  content: string | Node,
  kind: ToastKind = "info",
  attrs: Attrs = {},
  ms?: number,
): void {
  const host = document.getElementById("toasts");
  if (!host) return;
  const role = kind === "info" ? "status" : "alert";
  const el = h("div", { ...attrs, class: `toast ${kind}`, role }, content);
  host.appendChild(el);
  window.setTimeout(() => el.remove(), ms ?? (kind === "info" ? 3000 : 8000));
}

export function toastError(e: unknown): void {
  const p = problemOf(e);
  toast(`${p.code}: ${p.message}`, "error");
}
