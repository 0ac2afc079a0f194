// The signed-in user's notifications (jobs that ended, exports ready, strategy alerts and
// status changes): one StreamNotifications per tab, opened at sign-in and kept across page
// changes (pages abort their own streams when the user leaves them; this one is the shell's),
// ended at logout or sign-out. Each new notification is a toast and an entry in the header's
// bell menu.
//
// `after_sequence` 0 sends only notifications written from then on, N first the stored ones
// after N. The last sequence received is kept in sessionStorage (with the entries shown), so
// a reload or a reconnect subscribes after it: what was written meanwhile comes once, and
// nothing comes twice. A stream that ends (the server ends streams when it shuts down) or
// breaks is subscribed again with backoff; one refused as UNAUTHENTICATED (an access token
// that expired while the laptop slept) after a refresh, as streams are not retried by the
// auth interceptor.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { NotificationSeverity, type Notification } from "@stratopt/api/stratopt/v1/system_pb";
import { api, refresh, type Session } from "./api";
import { h, mount } from "./dom";
import { toast, type ToastKind } from "./page";

const STORE_KEY = "stratopt.notifications";
/** Dispatched on `window` for each new notification (detail: its kind and resource). */
export const NOTIFICATION_EVENT = "stratopt:notification";
/** Entries kept for the menu (this tab's session). */
const KEEP = 50;
/** Toasts shown at once; more in a burst (a resume after a long break) are summed up in one. */
const TOAST_BURST = 3;
const TOAST_WINDOW_MS = 4000;
const TOAST_MS = 6000;
const MAX_BACKOFF_MS = 30_000;
/** A stream open this long counts as healthy: its end starts the backoff from the beginning. */
const HEALTHY_MS = 30_000;
const STEADY_MS = 3000;

interface Entry {
  sequence: string; // int64, as text
  kind: string;
  severity: ToastKind;
  title: string;
  message: string;
  resource: string;
  time: string; // ISO 8601
  read: boolean;
}

export interface NotificationDetail {
  kind: string;
  resource: string;
}

interface Stored {
  user: string;
  after: string;
  entries: Entry[];
}

let user = "";
let after = 0n;
let entries: Entry[] = [];
let feed: AbortController | undefined;
/** The stream broke or ended and is being opened again (said in the menu). */
let reconnecting = false;
/** Whether the menu is open, and the entries that were unread when it opened (shown so). */
let open = false;
let fresh = new Set<string>();

// -- the stream ------------------------------------------------------------------------------

/** Opens this tab's stream for `s` unless it is open already (every route calls this). */
export function startNotifications(s: Session): void {
  const id = s.user.id;
  if (feed && user === id) return;
  stopNotifications();
  load(id);
  feed = new AbortController();
  void follow(feed.signal);
  render();
}

/** Ends the stream (the login page); what was seen is kept for this user's next subscription. */
export function stopNotifications(): void {
  feed?.abort();
  feed = undefined;
  reconnecting = false;
  setOpen(false);
}

/** Ends the stream and forgets this session's notifications (logout, or a session that ended). */
export function endNotifications(): void {
  stopNotifications();
  sessionStorage.removeItem(STORE_KEY);
  user = "";
  after = 0n;
  entries = [];
  render();
}

async function follow(signal: AbortSignal): Promise<void> {
  for (let attempt = 0; !signal.aborted; attempt++) {
    const opened = Date.now();
    // The server sends no headers before the first notification, so a stream that has not
    // failed for a few seconds is taken to be open.
    const steady = window.setTimeout(() => setReconnecting(false), STEADY_MS);
    try {
      for await (const r of api.system.streamNotifications({ afterSequence: after }, { signal })) {
        if (signal.aborted) return; // signed out meanwhile: nothing more for this session
        attempt = 0;
        setReconnecting(false);
        if (r.notification) accept(r.notification);
      }
    } catch (e) {
      if (signal.aborted) return;
      // A stream is not retried by the auth interceptor: renew an expired token here. A
      // failed refresh signs out (api.ts), which ends this feed.
      if (ConnectError.from(e).code === Code.Unauthenticated && !(await refresh())) return;
    } finally {
      window.clearTimeout(steady);
    }
    if (signal.aborted) return;
    setReconnecting(true);
    if (Date.now() - opened > HEALTHY_MS) attempt = 0;
    await sleep(backoff(attempt), signal);
  }
}

/** 1, 2, 4, ... 30 s, with jitter so tabs and users do not all come back at once. */
function backoff(attempt: number): number {
  const base = Math.min(1000 * 2 ** attempt, MAX_BACKOFF_MS);
  return base * (0.8 + Math.random() * 0.4);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = window.setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        window.clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

function accept(n: Notification): void {
  if (n.sequence <= after) return; // sent again (a resume): shown already
  after = n.sequence;
  const entry: Entry = {
    sequence: String(n.sequence),
    kind: n.kind,
    severity: severity(n.severity),
    title: n.title,
    message: n.message,
    resource: n.resource,
    time: n.time ? timestampDate(n.time).toISOString() : new Date().toISOString(),
    read: false,
  };
  const href = linkFor(entry.resource);
  // A page may bring itself up to date (the exports page lists a new file) ...
  window.dispatchEvent(
    new CustomEvent<NotificationDetail>(NOTIFICATION_EVENT, {
      detail: { kind: entry.kind, resource: entry.resource },
    }),
  );
  // ... so what the user is looking at shows it already (the job's page, the strategy's live
  // page, the exports list): no toast, and nothing unread.
  const onIt = href !== "" && window.location.hash.split("?")[0] === href;
  entry.read = onIt || open;
  if (open) fresh.add(entry.sequence);
  entries = [entry, ...entries].slice(0, KEEP);
  save();
  render();
  if (!onIt) announce(entry, href);
}

function severity(s: NotificationSeverity): ToastKind {
  if (s === NotificationSeverity.ERROR) return "error";
  if (s === NotificationSeverity.WARNING) return "warning";
  return "info";
}

/** The console's page for a notification's resource ("jobs/<id>", ...), or "" for none. */
function linkFor(resource: string): string {
  const [kind = "", id = ""] = resource.split("/", 2);
  const arg = encodeURIComponent(id);
  switch (kind) {
    case "jobs":
      return id ? `#/optimize/${arg}` : "";
    case "strategies":
      return id ? `#/live/${arg}` : "";
    case "exports":
      return "#/exports";
    case "datasets":
      return id ? `#/datasets/${arg}` : "";
    case "backtests":
      return id ? `#/backtest/${arg}` : "";
    default:
      return "";
  }
}

// -- toasts ----------------------------------------------------------------------------------

let burst: number[] = [];
let held = 0;
let heldTimer: number | undefined;

function announce(e: Entry, href: string): void {
  const now = Date.now();
  burst = burst.filter((t) => now - t < TOAST_WINDOW_MS);
  if (burst.length >= TOAST_BURST) {
    held++;
    heldTimer ??= window.setTimeout(() => {
      if (held) toast(`${held} more notification${held === 1 ? "" : "s"}: see the bell menu`, "info");
      held = 0;
      heldTimer = undefined;
    }, TOAST_WINDOW_MS);
    return;
  }
  burst.push(now);
  toast(
    h(
      "div",
      { class: "notice" },
      h("strong", {}, e.title),
      e.message ? h("span", {}, e.message) : null,
      href ? h("a", { href }, "Open") : null,
    ),
    e.severity,
    { "data-testid": "notification-toast", "data-sequence": e.sequence },
    e.severity === "info" ? TOAST_MS : 10_000,
  );
}

// -- storage ---------------------------------------------------------------------------------

function load(id: string): void {
  user = id;
  after = 0n;
  entries = [];
  try {
    const s = JSON.parse(sessionStorage.getItem(STORE_KEY) ?? "null") as Stored | null;
    if (s && s.user === id) {
      after = BigInt(s.after);
      entries = s.entries.slice(0, KEEP);
    }
  } catch {
    // unreadable: start afresh
  }
}

function save(): void {
  const s: Stored = { user, after: String(after), entries };
  try {
    sessionStorage.setItem(STORE_KEY, JSON.stringify(s));
  } catch {
    // storage full or disabled: the feed still works for this page's life
  }
}

// -- the header's bell menu ------------------------------------------------------------------

let ui: { root: HTMLElement; button: HTMLButtonElement; count: HTMLElement; panel: HTMLElement } | undefined;

/** The bell and its menu, one element for the tab's life: each page's header takes it in. */
export function notificationsMenu(): HTMLElement {
  if (!ui) ui = build();
  setOpen(false);
  render();
  return ui.root;
}

function build(): NonNullable<typeof ui> {
  const count = h("span", { class: "badge", "data-testid": "notification-count", hidden: true }, "0");
  const button = h(
    "button",
    {
      type: "button",
      class: "bell secondary",
      "data-testid": "notifications",
      "aria-expanded": "false",
      "aria-controls": "notification-menu",
      title: "Notifications",
    },
    bellIcon(),
    count,
  );
  const panel = h("div", {
    id: "notification-menu",
    class: "notif-menu",
    role: "region",
    "aria-label": "Notifications",
    hidden: true,
  });
  const root = h("div", { class: "notif" }, button, panel);
  button.addEventListener("click", () => setOpen(!open));
  root.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && open) {
      setOpen(false);
      button.focus();
    }
  });
  document.addEventListener("click", (ev) => {
    if (open && !root.contains(ev.target as Node)) setOpen(false);
  });
  panel.addEventListener("click", (ev) => {
    if ((ev.target as Element).closest("a")) setOpen(false); // followed a link
  });
  return { root, button, count, panel };
}

function setOpen(value: boolean): void {
  if (!ui) return;
  const wasOpen = open;
  open = value;
  ui.button.setAttribute("aria-expanded", String(open));
  ui.panel.hidden = !open;
  if (open && !wasOpen) {
    // Opening the menu reads them all; those that were unread stay marked while it is open.
    fresh = new Set(entries.filter((e) => !e.read).map((e) => e.sequence));
    if (fresh.size) {
      entries = entries.map((e) => (e.read ? e : { ...e, read: true }));
      save();
    }
    render();
  } else if (!open) {
    fresh.clear();
  }
}

function setReconnecting(value: boolean): void {
  if (reconnecting === value) return;
  reconnecting = value;
  if (open) renderList();
}

function render(): void {
  renderCount();
  if (open) renderList();
}

function renderCount(): void {
  if (!ui) return;
  const unread = entries.filter((e) => !e.read).length;
  ui.count.textContent = String(unread);
  ui.count.hidden = unread === 0;
  ui.button.setAttribute("aria-label", unread ? `Notifications, ${unread} unread` : "Notifications");
}

function renderList(): void {
  if (!ui) return;
  mount(
    ui.panel,
    h(
      "div",
      { class: "notif-head" },
      h("strong", {}, "Notifications"),
      reconnecting ? h("span", { class: "muted", "data-testid": "reconnecting" }, "reconnecting…") : null,
    ),
    entries.length
      ? h(
          "ul",
          {},
          entries.map((e) => {
            const href = linkFor(e.resource);
            const unread = !e.read || fresh.has(e.sequence);
            return h(
              "li",
              {
                class: `notif-item ${e.severity}${unread ? " unread" : ""}`,
                "data-testid": "notification",
                "data-sequence": e.sequence,
                "data-kind": e.kind,
              },
              href ? h("a", { href, class: "notif-title" }, e.title) : h("strong", {}, e.title),
              e.message ? h("span", { class: "notif-message" }, e.message) : null,
              h("time", { datetime: e.time }, e.time.replace("T", " ").replace(/\.\d+Z$/, "Z")),
            );
          }),
        )
      : h("p", { class: "muted" }, "Nothing yet this session."),
  );
}

function bellIcon(): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("width", "18");
  svg.setAttribute("height", "18");
  svg.setAttribute("aria-hidden", "true");
  const path = document.createElementNS(ns, "path");
  path.setAttribute(
    "d",
    "M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3a1.5 1.5 0 0 0-3 0v1.16A7 7 0 0 0 5 11v5l-2 2v1h18v-1l-2-2Z",
  );
  path.setAttribute("fill", "currentColor");
  svg.appendChild(path);
  return svg;
}
