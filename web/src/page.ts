// What every page gets: where to draw, the route's arguments, and a signal that aborts when
// the user navigates away (open streams end with it).
import { Code, ConnectError } from "@connectrpc/connect";
import { h } from "./dom";
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

/** A transient message at the top of the page (errors outside any form). */
export function toast(text: string, kind: "info" | "error" = "info"): void {
  const host = document.getElementById("toasts");
  if (!host) return;
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  host.appendChild(el);
  window.setTimeout(() => el.remove(), kind === "error" ? 8000 : 3000);
}

export function toastError(e: unknown): void {
  const p = problemOf(e);
  toast(`${p.code}: ${p.message}`, "error");
}
