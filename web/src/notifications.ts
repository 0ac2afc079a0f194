// The signed-in user's notifications (jobs that ended, exports ready, strategy alerts and
// status changes): one StreamNotifications for all the tabs of a browser signed in as the same
// user, opened at sign-in and kept across page changes (pages abort their own streams when the
// user leaves them; this one is the shell's), ended at logout or sign-out. Each new notification
// is a toast and an entry in the header's bell menu, in every one of those tabs.
//
// One stream, not one per tab: over HTTP/1.1 a browser opens at most six connections to the
// gateway, shared by all its tabs, and an open stream holds one for good. The tabs elect a
// leader with a Web Lock per user (`stratopt.notifications.<user id>`): the tab holding it runs
// the stream and passes each notification on over a BroadcastChannel; the others wait for the
// lock, which frees itself when the leader closes, crashes or signs out, and the next one
// takes over. Without Web Locks or BroadcastChannel (an insecure context: plain HTTP to an
// address other than localhost) each tab runs its own stream, as before.
//
// A tab whose menu is empty at sign-in (or page load) lists the user's stored notifications
// (ListNotifications, newest first) into it as history: read, no toasts. Those newer than the
// last sequence this browser had shown for the user (kept in localStorage, across sign-outs)
// came while the user was away: they are unread, summed up in one toast.
//
// The stream sends the stored notifications after `after_sequence`, then new ones (with
// `include_stored`, also after 0: a user with none yet misses none written while it opens).
// The last sequence received is kept in localStorage for the user (every tab writes it, so a
// new leader subscribes after the last one any tab saw) and, with the entries shown, in this
// tab's sessionStorage, so a reload, a reconnect or a new leader subscribes after it: what was
// written meanwhile comes once, and nothing comes twice. With no last sequence yet the leader
// subscribes after the listing's `newest_sequence`, so nothing written between the listing and
// the stream's start is lost. The sequences are numbered per user from 1 without holes, so
// ones the server dropped for a slow reader show as a gap, and are fetched by listing again.
// A stream that ends (the server ends streams when it shuts down) or breaks is subscribed
// again with backoff; one refused as UNAUTHENTICATED (an access token that expired while the
// laptop slept) after a refresh, as streams are not retried by the auth interceptor.
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import { NotificationSeverity, type Notification } from "@stratopt/api/stratopt/v1/system_pb";
import { api, refresh, type Session } from "./api";
import { h, mount } from "./dom";
import { toast, type ToastKind } from "./page";

/** This tab's menu and last sequence (sessionStorage). */
const STORE_KEY = "stratopt.notifications";
/** + user id: the leader's Web Lock, and the user's last sequence in localStorage. */
const SHARED_PREFIX = "stratopt.notifications.";
/** The BroadcastChannel the leader passes notifications on over (each message names its user). */
const CHANNEL = "stratopt.notifications";
/** Whether the tabs can share one stream (Web Locks need a secure context). */
const SHARED = "locks" in navigator && typeof BroadcastChannel === "function";
/** Dispatched on `window` for each new notification (detail: its kind and resource). */
export const NOTIFICATION_EVENT = "stratopt:notification";
/** Entries kept for the menu (this tab's session). */
const KEEP = 50;
/** Stored notifications listed into an empty menu at sign-in. */
const HISTORY = 20;
/** Listed to fetch those a subscription for new ones only may have missed. */
const CATCH_UP = 50;
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

/** What the leader sends the other tabs of its user. */
type Message =
  | { type: "notification"; user: string; entry: Entry }
  | { type: "reconnecting"; user: string; reconnecting: boolean };

let user = "";
let after = 0n;
let entries: Entry[] = [];
let feed: AbortController | undefined;
let channel: BroadcastChannel | undefined;
/** The stream broke or ended and is being opened again (said in the menu). */
let reconnecting = false;
/** Whether the menu is open, and the entries that were unread when it opened (shown so). */
let open = false;
let fresh = new Set<string>();
/** The menu was empty when this tab started following: a listing fills it with history. */
let historyWanted = false;
/** That listing while in flight: a leader subscribes once it has moved `after` on. */
let history: Promise<void> | undefined;
/** This tab has listed the user's notifications: `after` is no older than their newest then. */
let listed = false;

// -- the stream ------------------------------------------------------------------------------

/** Follows `s`'s notifications unless this tab does already (every route calls this). */
export function startNotifications(s: Session): void {
  const id = s.user.id;
  if (feed && user === id) return;
  stopNotifications();
  load(id);
  feed = new AbortController();
  listed = false;
  historyWanted = entries.length === 0;
  // An empty menu (a sign-in, a new tab): what is stored, as history. A failure leaves it
  // empty; a leader that needs the listing's sequence tries again.
  if (historyWanted) history = list(feed.signal, false).catch(() => undefined);
  if (SHARED) {
    channel = new BroadcastChannel(CHANNEL);
    channel.onmessage = (ev: MessageEvent<unknown>) => receive(ev.data);
    void lead(id, feed.signal);
  } else {
    void follow(feed.signal);
  }
  render();
}

/** Ends the stream (the login page); what was seen is kept for this user's next subscription. */
export function stopNotifications(): void {
  feed?.abort(); // the leader's lock is released once its stream has ended
  feed = undefined;
  history = undefined;
  channel?.close();
  channel = undefined;
  reconnecting = false;
  setOpen(false);
}

/**
 * Ends the stream and forgets this session's notifications (logout, or a session that ended).
 * The user's last sequence stays in localStorage (a number, no content): at their next sign-in
 * in this browser, what was written since is unread ("while you were away").
 */
export function endNotifications(): void {
  stopNotifications();
  sessionStorage.removeItem(STORE_KEY);
  user = "";
  after = 0n;
  entries = [];
  render();
}

/**
 * Waits to be the tab that runs the stream for user `id`, then runs it until `signal` ends
 * it. The lock is held for as long as the callback runs, and freed by the browser when the
 * tab goes away; the next tab waiting for it takes over.
 */
async function lead(id: string, signal: AbortSignal): Promise<void> {
  try {
    await navigator.locks.request(SHARED_PREFIX + id, { signal }, () => follow(signal));
  } catch {
    // aborted while waiting: signed out, or a page (the login page) that follows no one
  }
}

/** Passes `m` on to the other tabs following this user (none without a channel). */
function broadcast(m: Message): void {
  try {
    channel?.postMessage(m);
  } catch {
    // closed meanwhile
  }
}

/** A message from the leader in another tab: only its user's, only while following it. */
function receive(data: unknown): void {
  const m = data as Partial<Message> | null;
  if (!feed || !m || typeof m !== "object" || !user || m.user !== user) return;
  if (m.type === "notification" && m.entry && typeof m.entry.sequence === "string") {
    accept({ ...m.entry, read: false });
  } else if (m.type === "reconnecting" && typeof m.reconnecting === "boolean") {
    setReconnecting(m.reconnecting);
  }
}

async function follow(signal: AbortSignal): Promise<void> {
  // The stream's state, said in this tab's menu and, when it changes and once at the start
  // (a new leader: the old one may have said it was reconnecting), in the other tabs'.
  let told = false;
  const streamReconnecting = (value: boolean): void => {
    if (reconnecting === value && told) return;
    told = true;
    setReconnecting(value);
    broadcast({ type: "reconnecting", user, reconnecting: value });
  };
  for (let attempt = 0; !signal.aborted; attempt++) {
    const opened = Date.now();
    // The server sends no headers before the first notification, so a stream that has not
    // failed for a few seconds is taken to be open.
    const steady = window.setTimeout(() => streamReconnecting(false), STEADY_MS);
    try {
      // The menu's history first: its listing moves `after` on to the user's newest.
      if (history) await history;
      // After the last one this tab or (shared) any tab of this user received.
      after = maxBig(after, sharedAfter());
      // None known (a first sign-in): after the newest stored one, from a listing.
      if (after === 0n && !listed) await list(signal, false);
      // A position now, 0 included (none stored): every one after it comes.
      const request = { afterSequence: after, includeStored: true };
      for await (const r of api.system.streamNotifications(request, { signal })) {
        if (signal.aborted) return; // signed out meanwhile: nothing more for this session
        attempt = 0;
        streamReconnecting(false);
        if (!r.notification) continue;
        // Numbered per user from 1 without holes: a jump means the server dropped some for
        // this reader (it read too slowly). List them first.
        if (r.notification.sequence > after + 1n) await list(signal, true);
        if (signal.aborted) return;
        deliver(toEntry(r.notification));
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
    streamReconnecting(true);
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

/**
 * Lists the user's newest stored notifications. Into a menu that wants history: those this
 * browser had shown, or all of them when it knows none, as read; newer ones (written while
 * the user was away) unread, with one toast for them all. Otherwise (`catchUp`) those newer
 * than the last one shown, oldest first, each as a new notification. Either way `after` moves
 * on to the user's newest, so the stream continues from there.
 */
async function list(signal: AbortSignal, catchUp: boolean): Promise<void> {
  const asHistory = historyWanted && !catchUp;
  const r = await api.system.listNotifications({ pageSize: asHistory ? HISTORY : CATCH_UP }, { signal });
  if (signal.aborted) return; // signed out, or another user, meanwhile
  // What the user's tabs had shown (across sessions), whatever they showed since.
  const known = maxBig(after, storedAfter());
  const newest = maxBig(r.newestSequence, r.notifications[0]?.sequence ?? 0n);
  const shown = new Set(entries.map((e) => e.sequence));
  const unseen = r.notifications.filter((n) => n.sequence > after && !shown.has(String(n.sequence)));
  if (!asHistory) {
    for (const n of unseen.reverse()) deliver(toEntry(n));
  } else {
    let away = 0;
    const old: Entry[] = [];
    for (const n of r.notifications) {
      const e = toEntry(n);
      if (shown.has(e.sequence)) continue; // came live meanwhile (from the leader)
      const isAway = known > 0n && n.sequence > known;
      if (isAway) away++;
      e.read = !isAway || open;
      if (isAway && open) fresh.add(e.sequence);
      old.push(e);
    }
    entries = [...entries, ...old]
      .sort((a, b) => (BigInt(b.sequence) > BigInt(a.sequence) ? 1 : -1))
      .slice(0, KEEP);
    historyWanted = false;
    if (away) {
      // A full page of them: the numbering says how many there are in all.
      const n = away === r.notifications.length ? Math.max(away, Number(newest - known)) : away;
      toast(
        `${n} notification${n === 1 ? "" : "s"} while you were away: see the bell menu`,
        "info",
        {
          "data-testid": "notification-summary",
        },
        TOAST_MS,
      );
    }
  }
  listed = true;
  after = maxBig(after, newest);
  shareAfter(after);
  save();
  render();
}

/** Shows `entry` unless this tab has already, and passes it on to the other tabs. */
function deliver(entry: Entry): void {
  if (accept(entry)) broadcast({ type: "notification", user, entry });
}

function toEntry(n: Notification): Entry {
  return {
    sequence: String(n.sequence),
    kind: n.kind,
    severity: severity(n.severity),
    title: n.title,
    message: n.message,
    resource: n.resource,
    time: n.time ? timestampDate(n.time).toISOString() : new Date().toISOString(),
    read: false,
  };
}

/** Shows `entry` unless this tab has already; whether it was new. */
function accept(entry: Entry): boolean {
  const sequence = BigInt(entry.sequence);
  if (sequence <= after) return false; // sent again (a resume, a new leader): shown already
  after = sequence;
  shareAfter(sequence);
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
  return true;
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
  // What the user's other tabs received meanwhile was shown there: not again here.
  after = maxBig(after, sharedAfter());
}

function save(): void {
  const s: Stored = { user, after: String(after), entries };
  try {
    sessionStorage.setItem(STORE_KEY, JSON.stringify(s));
  } catch {
    // storage full or disabled: the feed still works for this page's life
  }
}

/** The last sequence any tab following this user received (0 when not shared or none). */
function sharedAfter(): bigint {
  return SHARED ? storedAfter() : 0n;
}

/**
 * The last sequence this browser's tabs showed the user. Without a shared stream each tab
 * streams after its own (another tab's would skip what this one has not shown), but this
 * still says what came while the user was away.
 */
function storedAfter(): bigint {
  if (!user) return 0n;
  try {
    return BigInt(localStorage.getItem(SHARED_PREFIX + user) ?? "0");
  } catch {
    return 0n; // unreadable
  }
}

function shareAfter(sequence: bigint): void {
  if (!user || sequence <= storedAfter()) return;
  try {
    localStorage.setItem(SHARED_PREFIX + user, String(sequence));
  } catch {
    // storage full or disabled: a new leader resumes after its own last sequence
  }
}

function maxBig(a: bigint, b: bigint): bigint {
  return a > b ? a : b;
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
      : h("p", { class: "muted" }, "No notifications yet."),
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
