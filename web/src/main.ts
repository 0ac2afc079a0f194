// The console's shell: sign-in gate, navigation, and a hash router (#/datasets, #/backtest/<id>,
// ...) so every view has a URL that survives a reload; the gateway serves one index.html.
import "./style.css";
import { can, logout, onSignedOut, Permission, resume, roleName, session, type Session } from "./api";
import { disposeCharts } from "./charts";
import { button, h, mount } from "./dom";
import { endNotifications, notificationsMenu, startNotifications, stopNotifications } from "./notifications";
import { navigate, toastError, type Page } from "./page";
import { backtestPage } from "./pages/backtest";
import { datasetsPage } from "./pages/datasets";
import { exportsPage } from "./pages/exports";
import { livePage } from "./pages/live";
import { loginPage } from "./pages/login";
import { optimizePage } from "./pages/optimize";
import { strategiesPage } from "./pages/strategies";

const routes: Record<string, [string, Page, Permission?]> = {
  datasets: ["Datasets", datasetsPage],
  strategies: ["Strategies", strategiesPage],
  backtest: ["Backtest", backtestPage],
  optimize: ["Optimize", optimizePage],
  live: ["Live", livePage],
  exports: ["Exports", exportsPage],
};

const app = document.getElementById("app")!;
let pageAbort = new AbortController();
/** One host for the tab's life, so a toast (a notification) outlives a change of page. */
const toasts = h("div", { id: "toasts" });

function shell(s: Session, active: string): HTMLElement {
  const main = h("main", { id: "page" });
  const nav = h(
    "nav",
    { class: "nav", "aria-label": "pages" },
    Object.entries(routes).map(([path, [label]]) =>
      h("a", { href: `#/${path}`, class: path === active ? "active" : "", "data-nav": path }, label),
    ),
  );
  const who = h(
    "div",
    { class: "who" },
    notificationsMenu(),
    h("span", { "data-testid": "user" }, s.user.displayName || s.user.username),
    h("span", { class: "role", "data-testid": "role" }, roleName(s.user.role)),
    button(
      "Log out",
      () => {
        endNotifications();
        void logout().then(() => navigate("login"));
      },
      { "data-testid": "logout", class: "secondary" },
    ),
  );
  mount(
    app,
    h("header", { class: "top" }, h("a", { class: "brand", href: "#/datasets" }, "stratopt"), nav, who),
    toasts,
    main,
  );
  return main;
}

async function route(): Promise<void> {
  pageAbort.abort();
  pageAbort = new AbortController();
  // This page's own signal: by the time its aborted read rejects, `pageAbort` is the next page's.
  const { signal } = pageAbort;
  disposeCharts();
  const [path = "", search = ""] = window.location.hash.replace(/^#\/?/, "").split("?");
  const [name = "", ...args] = path.split("/").map(decodeURIComponent);
  const query = new URLSearchParams(search);
  let s = session();
  if (!s && name !== "login") s = await resume();
  if (name === "login" || !s) {
    if (name !== "login") sessionStorage.setItem("stratopt.next", window.location.hash);
    stopNotifications();
    mount(app, toasts, h("main", { id: "page", class: "narrow" }));
    await loginPage({ root: document.getElementById("page")!, args, query, signal });
    return;
  }
  const key = name in routes ? name : "datasets";
  const [, page] = routes[key]!;
  const root = shell(s, key);
  startNotifications(s); // once per tab session: a no-op when already open for this user
  document.title = `${routes[key]![0]} · stratopt`;
  try {
    await page({ root, args, query, signal });
  } catch (e) {
    if (!signal.aborted) toastError(e);
  }
}

onSignedOut(() => {
  endNotifications();
  navigate("login");
});
window.addEventListener("hashchange", () => void route());
void route();

export { can };
